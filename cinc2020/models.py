"""The networks. Each takes a batch of signals (batch x 12 leads x samples, zero-padded
on the right) with each record's true length in samples, and returns one logit per class.

CRNN, the sliding-window design: the record is cut into overlapping windows; each
window goes through 15 convolutions with leaky ReLU and a global average pooling
that leaves ``features_per_window`` (12) numbers; a bidirectional GRU reads the
sequence of windows, and its two final states go through leaky ReLU, batch
normalisation and a dense layer whose sigmoid gives the class probabilities.

CNNAttentionGRU, the attention design: convolutions run over the whole record,
halving the time axis in each block after the first; a bidirectional GRU reads
the resulting sequence, and an attention layer pools its states into one vector
(a learned weighting of the time steps) for the dense sigmoid layer. Its
preprocessing only removes the mean (``Config.normalisation = "mean"``).

Records in a batch are zero-padded to the longest one (the design padded to the
longest in the data set; a 30-minute record would make every input 180,000
samples). The attention network re-zeroes the padding after every convolution
and masks it out of the GRU and the attention, so its output for a record is the
same however much padding the batch adds: padding to the batch costs nothing in
accuracy and saves most of the memory and time.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import Config

N_LEADS = 12
LEAKY_SLOPE = 0.01


def n_windows(length: int, window: int, hop: int) -> int:
    """Windows needed to cover ``length`` samples (the last one may run into padding)."""
    return 1 + max(0, math.ceil((length - window) / hop))


def convolutions(config: Config, last_channels: int | None = None):
    """(channels in, channels out, kernel, stride, ends a block) of both designs' 15 convolutions.

    Blocks of three, one per ``config.conv_channels`` entry; the first convolution
    of each block after the first halves the time axis. ``last_channels``, if
    given, is the width of the very last convolution.
    """
    channels_in = N_LEADS
    for block, channels in enumerate(config.conv_channels):
        for position in range(3):
            last = (block, position) == (len(config.conv_channels) - 1, 2)
            channels_out = last_channels if last and last_channels else channels
            kernel = config.first_kernel_size if (block, position) == (0, 0) else config.kernel_size
            yield channels_in, channels_out, kernel, 2 if block > 0 and position == 0 else 1, position == 2
            channels_in = channels_out


class CRNN(nn.Module):
    def __init__(self, config: Config, n_classes: int):
        super().__init__()
        self.window, self.hop = config.window, config.hop
        layers: list[nn.Module] = []
        for channels_in, channels_out, kernel, stride, ends_block in convolutions(config, config.features_per_window):
            layers += [nn.Conv1d(channels_in, channels_out, kernel, stride, padding=kernel // 2),
                       nn.LeakyReLU(LEAKY_SLOPE)]
            if ends_block:
                layers.append(nn.Dropout(config.dropout))
        self.convolutions = nn.Sequential(*layers)
        self.gru = nn.GRU(config.features_per_window, config.gru_units, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.BatchNorm1d(2 * config.gru_units),
            nn.Dropout(config.dropout),
            nn.Linear(2 * config.gru_units, n_classes),
        )
        for module in self.convolutions:
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

    def forward(self, signals: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        counts = [n_windows(int(n), self.window, self.hop) for n in lengths]
        longest = max(counts)
        needed = self.window + (longest - 1) * self.hop
        if signals.shape[-1] < needed:
            signals = nn.functional.pad(signals, (0, needed - signals.shape[-1]))
        windows = signals[..., :needed].unfold(-1, self.window, self.hop)  # batch, leads, windows, samples
        batch = signals.shape[0]
        windows = windows.permute(0, 2, 1, 3).reshape(batch * longest, N_LEADS, self.window)
        features = self.convolutions(windows).mean(dim=-1).reshape(batch, longest, -1)
        packed = pack_padded_sequence(features, torch.tensor(counts), batch_first=True, enforce_sorted=False)
        _, final = self.gru(packed)  # (2 directions, batch, units)
        return self.head(torch.cat([final[0], final[1]], dim=1))


def convolution_output_length(lengths: torch.Tensor, convolution: nn.Conv1d) -> torch.Tensor:
    kernel, stride, padding = convolution.kernel_size[0], convolution.stride[0], convolution.padding[0]
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


def time_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """batch x 1 x steps: 1 inside each record, 0 in its padding."""
    return (torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1)


class CNNAttentionGRU(nn.Module):
    def __init__(self, config: Config, n_classes: int):
        super().__init__()
        self.blocks = nn.ModuleList()
        for channels_in, channels_out, kernel, stride, _ in convolutions(config):
            self.blocks.append(nn.ModuleList([
                nn.Conv1d(channels_in, channels_out, kernel, stride, padding=kernel // 2, bias=False),
                nn.BatchNorm1d(channels_out),
            ]))
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.conv_channels[-1], config.gru_units, batch_first=True, bidirectional=True)
        self.attention = nn.Sequential(nn.Linear(2 * config.gru_units, config.gru_units), nn.Tanh(),
                                       nn.Linear(config.gru_units, 1, bias=False))
        self.head = nn.Linear(2 * config.gru_units, n_classes)
        for convolution, _ in self.blocks:
            nn.init.kaiming_normal_(convolution.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")

    def forward(self, signals: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to(signals.device)
        features = signals
        for convolution, normalise in self.blocks:
            features = nn.functional.leaky_relu(normalise(convolution(features)), LEAKY_SLOPE)
            lengths = convolution_output_length(lengths, convolution)
            features = features * time_mask(lengths, features.shape[-1])
        features = self.dropout(features).transpose(1, 2)  # batch, steps, channels
        packed = pack_padded_sequence(features, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                        total_length=features.shape[1])
        scores = self.attention(states).squeeze(-1)
        scores = scores.masked_fill(~time_mask(lengths, scores.shape[-1]).squeeze(1), -torch.inf)
        pooled = (torch.softmax(scores, dim=1).unsqueeze(-1) * states).sum(dim=1)
        return self.head(self.dropout(pooled))


ARCHITECTURES = {"crnn": CRNN, "cnn_attention": CNNAttentionGRU}


def build_model(config: Config, n_classes: int) -> nn.Module:
    if config.model not in ARCHITECTURES:
        raise ValueError(f"unknown model {config.model!r}: use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[config.model](config, n_classes)
