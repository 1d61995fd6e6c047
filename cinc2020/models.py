"""The networks. Each takes a batch of signals (batch x 12 leads x samples, zero-padded
on the right) with each record's true length in samples, and returns one logit per class.

Every network shares one convolutional stack (``ConvolutionStack``): five stages of three
convolutions, one stage per ``Config.conv_channels`` entry, each stage's first convolution
striding by its ``Config.stage_strides`` entry (by default every stage halves the time
axis). ``Config.block`` chooses the stage:

- ``"plain"``: three convolutions with leaky ReLU, as the source abstracts describe
  (the CRNN's without batch normalisation, the attention network's with it);
- ``"se_residual"``: what the strongest 2020 entries had: one convolution, then a
  residual block of two with squeeze-and-excitation (the block's channels reweighed
  by a gate computed from their mean over the record).

Every operation of the stack is masked: the padding is re-zeroed after each
convolution, batch-normalisation statistics and the squeeze's means are taken over
the samples inside the records only. A record's output is therefore the same
however much padding its batch adds, and in evaluation the same in any batch.

CRNN, the sliding-window design: the record is cut into overlapping windows; each
window goes through the stack and a global average pooling that leaves
``features_per_window`` (12) numbers; a bidirectional GRU reads the sequence of
windows, and its two final states go through leaky ReLU, batch normalisation and a
dense layer whose sigmoid gives the class probabilities. Only a record's own
windows are computed (the last may run into padding, which is masked). Dropout
follows the whole stack, as in the attention network (the CRNN once had it after
each stage).

CNNAttentionGRU, the attention design: the stack runs over the whole record; a
bidirectional GRU reads the resulting sequence, and an attention layer pools its
states into one vector (a learned weighting of the time steps) for the dense
sigmoid layer. Its design only removes the mean (``Config.normalisation`` "mean"); the shipped recipe
standardises each lead, which judged better on a source never trained on (issue 39).

SEResNet: the stack with ``"se_residual"`` stages and global average pooling, no
recurrence: the family of the 2020 rank-2 entry, kept as a reference for the
comparison, never shipped as the entry's model.

With ``Config.demographics``, age and sex (``demographic_inputs``) join the
features that the dense layer reads. With ``Config.auxiliary_labels``, the dense layer
has more outputs than classes: logits of codes that training learns and nothing answers
(``answered_classes`` says how many of the first outputs are classes).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .config import CHOICES, Config
from .preprocess import N_DEMOGRAPHICS, N_LEADS

LEAKY_SLOPE = 0.01


def n_windows(length: int, window: int, hop: int) -> int:
    """Windows needed to cover ``length`` samples (the last one may run into padding)."""
    return 1 + max(0, math.ceil((length - window) / hop))


def time_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor | None:
    """batch x 1 x steps, float: 1 inside each record, 0 in its padding; None for a batch without padding
    (records of one length, as in most batches of duration-grouped records), which skips the masking."""
    if bool((lengths >= steps).all()):
        return None
    return (torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).float()


def apply_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """batch x channels: the mean over each record's own time steps."""
    if mask is None:
        return x.mean(dim=-1)
    return (x * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


# ---------------------------------------------------------------------------
# Masked building blocks


class MaskedBatchNorm(nn.BatchNorm1d):
    """Batch normalisation whose batch statistics (and running statistics) come from the
    samples inside the records only; the output is zero in the padding."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if not self.training or mask is None:  # running statistics, or a batch without padding
            return apply_mask(super().forward(x), mask)
        count = mask.sum() * 1.0
        mean = (x * mask).sum(dim=(0, 2)) / count
        variance = (((x - mean[None, :, None]) * mask) ** 2).sum(dim=(0, 2)) / count
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            unbiased = variance * count / (count - 1).clamp(min=1)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked += 1
        x = (x - mean[None, :, None]) * torch.rsqrt(variance[None, :, None] + self.eps)
        return (x * self.weight[None, :, None] + self.bias[None, :, None]) * mask


class SqueezeExcitation(nn.Module):
    """Reweigh channels by a gate computed from their means over the record (Hu et al., 2018)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(channels, max(channels // reduction, 4)), nn.ReLU(),
                                  nn.Linear(max(channels // reduction, 4), channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return x * self.gate(masked_mean(x, mask)).unsqueeze(-1)


class Convolution(nn.Module):
    """Convolution, batch normalisation if asked, leaky ReLU (unless ``activate`` is False); padding re-zeroed."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1,
                 normalise: bool = True, activate: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(channels_in, channels_out, kernel, stride, padding=kernel // 2, bias=not normalise)
        self.norm = MaskedBatchNorm(channels_out) if normalise else None
        self.activate = activate
        nn.init.kaiming_normal_(self.conv.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        kernel, stride, padding = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0]
        return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.output_lengths(lengths)
        x = self.conv(x)
        mask = time_mask(lengths, x.shape[-1])
        x = self.norm(x, mask) if self.norm is not None else apply_mask(x, mask)
        if self.activate:
            x = nn.functional.leaky_relu(x, LEAKY_SLOPE)
        return x, lengths


class Stage(nn.Module):
    """Three convolutions; the first may halve the time axis and change the width.

    plain: three ``Convolution``s. se_residual: one ``Convolution``, then a residual
    block: convolution, convolution without activation, squeeze-and-excitation,
    added to the block's input, leaky ReLU.
    """

    def __init__(self, channels_in: int, channels: int, first_kernel: int, kernel: int, stride: int,
                 residual: bool, normalise: bool, channels_out: int | None = None):
        super().__init__()
        channels_out = channels_out or channels
        self.residual = residual
        if residual:
            self.entry = Convolution(channels_in, channels, first_kernel, stride)
            self.block = nn.ModuleList([Convolution(channels, channels, kernel),
                                        Convolution(channels, channels, kernel, activate=False)])
            self.excite = SqueezeExcitation(channels)
        else:
            self.convolutions = nn.ModuleList([
                Convolution(channels_in, channels, first_kernel, stride, normalise),
                Convolution(channels, channels, kernel, normalise=normalise),
                Convolution(channels, channels_out, kernel, normalise=normalise)])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.residual:
            for convolution in self.convolutions:
                x, lengths = convolution(x, lengths)
            return x, lengths
        x, lengths = self.entry(x, lengths)
        mask = time_mask(lengths, x.shape[-1])
        y = x
        for convolution in self.block:
            y, _ = convolution(y, lengths)
        return nn.functional.leaky_relu(x + self.excite(y, mask), LEAKY_SLOPE), lengths


class ConvolutionStack(nn.Module):
    """Five stages (``Config.conv_channels``), then dropout; returns features, lengths and mask.

    ``last_channels``, if given, is the width of the plain stack's very last convolution.
    """

    def __init__(self, config: Config, normalise: bool = True, last_channels: int | None = None):
        super().__init__()
        self.stages = nn.ModuleList()
        channels_in = N_LEADS
        for position, (channels, stride) in enumerate(zip(config.conv_channels, config.stage_strides)):
            last = position == len(config.conv_channels) - 1
            self.stages.append(Stage(
                channels_in, channels, config.first_kernel_size if position == 0 else config.kernel_size,
                config.kernel_size, stride, config.block == "se_residual", normalise,
                last_channels if last and config.block == "plain" else None))
            channels_in = channels
        self.channels = last_channels if last_channels and config.block == "plain" else channels_in
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        x = apply_mask(x, time_mask(lengths, x.shape[-1]))  # whatever the padding holds, it reads as zeros
        for stage in self.stages:
            x, lengths = stage(x, lengths)
        return self.dropout(x), lengths, time_mask(lengths, x.shape[-1])


def head_inputs(features: torch.Tensor, demographics: torch.Tensor | None, used: bool) -> torch.Tensor:
    """The dense layer's input: the pooled features, and age and sex if the model uses them
    (all unknown when none are given)."""
    if not used:
        return features
    if demographics is None:
        demographics = torch.zeros(features.shape[0], N_DEMOGRAPHICS)
    return torch.cat([features, demographics.to(features)], dim=1)


# ---------------------------------------------------------------------------
# The sliding-window CRNN


class CRNN(nn.Module):
    def __init__(self, config: Config, n_classes: int):
        super().__init__()
        self.window, self.hop = config.window, config.hop
        self.demographics = config.demographics
        # The source design has no batch normalisation in its plain convolutions; its last one gives the features.
        plain = config.block == "plain"
        self.convolutions = ConvolutionStack(config, normalise=not plain, last_channels=config.features_per_window)
        self.features = nn.Identity() if plain else nn.Linear(self.convolutions.channels, config.features_per_window)
        self.gru = nn.GRU(config.features_per_window, config.gru_units, batch_first=True, bidirectional=True)
        width = 2 * config.gru_units
        self.head = nn.Sequential(nn.LeakyReLU(LEAKY_SLOPE), nn.BatchNorm1d(width), nn.Dropout(config.dropout))
        self.classify = nn.Linear(width + N_DEMOGRAPHICS * config.demographics, n_classes)

    def forward(self, signals: torch.Tensor, lengths: torch.Tensor,
                demographics: torch.Tensor | None = None) -> torch.Tensor:
        lengths = lengths.to(signals.device)
        counts = torch.tensor([n_windows(int(n), self.window, self.hop) for n in lengths], device=signals.device)
        longest = int(counts.max())
        needed = self.window + (longest - 1) * self.hop
        if signals.shape[-1] < needed:
            signals = nn.functional.pad(signals, (0, needed - signals.shape[-1]))
        windows = signals[..., :needed].unfold(-1, self.window, self.hop).transpose(1, 2)  # batch, windows, leads, samples
        starts = torch.arange(longest, device=signals.device) * self.hop
        real = torch.arange(longest, device=signals.device)[None, :] < counts[:, None]  # the others are never computed
        window_lengths = (lengths[:, None] - starts[None, :]).clamp(max=self.window)[real]
        x, _, mask = self.convolutions(windows[real], window_lengths)
        window_features = self.features(masked_mean(x, mask))
        features = window_features.new_zeros(len(signals), longest, window_features.shape[-1])  # autocast's dtype
        features[real] = window_features
        packed = pack_padded_sequence(features, counts.cpu(), batch_first=True, enforce_sorted=False)
        _, final = self.gru(packed)  # (2 directions, batch, units)
        pooled = self.head(torch.cat([final[0], final[1]], dim=1))
        return self.classify(head_inputs(pooled, demographics, self.demographics))


# ---------------------------------------------------------------------------
# CNN + bidirectional GRU + attention


class CNNAttentionGRU(nn.Module):
    def __init__(self, config: Config, n_classes: int):
        super().__init__()
        self.demographics = config.demographics
        self.convolutions = ConvolutionStack(config)
        self.gru = nn.GRU(self.convolutions.channels, config.gru_units, batch_first=True, bidirectional=True)
        self.attention = nn.Sequential(nn.Linear(2 * config.gru_units, config.gru_units), nn.Tanh(),
                                       nn.Linear(config.gru_units, 1, bias=False))
        self.dropout = nn.Dropout(config.dropout)
        self.classify = nn.Linear(2 * config.gru_units + N_DEMOGRAPHICS * config.demographics, n_classes)

    def forward(self, signals: torch.Tensor, lengths: torch.Tensor,
                demographics: torch.Tensor | None = None) -> torch.Tensor:
        x, lengths, mask = self.convolutions(signals, lengths.to(signals.device))
        packed = pack_padded_sequence(x.transpose(1, 2), lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                                     total_length=x.shape[-1])
        scores = self.attention(states).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(mask.squeeze(1) == 0, -torch.inf)
        pooled = (torch.softmax(scores, dim=1).unsqueeze(-1) * states).sum(dim=1)
        return self.classify(head_inputs(self.dropout(pooled), demographics, self.demographics))


# ---------------------------------------------------------------------------
# Reference: a pure 1-D SE-ResNet (no recurrence)


class SEResNet(nn.Module):
    def __init__(self, config: Config, n_classes: int):
        super().__init__()
        self.demographics = config.demographics
        self.convolutions = ConvolutionStack(config)
        self.classify = nn.Linear(self.convolutions.channels + N_DEMOGRAPHICS * config.demographics, n_classes)

    def forward(self, signals: torch.Tensor, lengths: torch.Tensor,
                demographics: torch.Tensor | None = None) -> torch.Tensor:
        x, _, mask = self.convolutions(signals, lengths.to(signals.device))
        return self.classify(head_inputs(masked_mean(x, mask), demographics, self.demographics))


ARCHITECTURES = dict(zip(CHOICES["model"], (CRNN, CNNAttentionGRU, SEResNet)))  # the names in CHOICES' order


def build_model(config: Config, n_classes: int, n_auxiliary: int = 0) -> nn.Module:
    """The network of ``config``: ``n_classes`` logits, then ``n_auxiliary`` more (``data.auxiliary_codes``)."""
    network = ARCHITECTURES[config.model](config, n_classes + n_auxiliary)
    network.answered_classes = n_classes
    return network
