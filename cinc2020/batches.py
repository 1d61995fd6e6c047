"""The input pipeline of training: each record cropped, augmented and normalised (``training_input``), records
grouped by duration into batches (``duration_batches``), zero-padded into tensors (``collate``), and each
epoch's batches of one process made ahead of the step, by the main process or by loader workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .augment import augment, network_leads
from .config import Config
from .preprocess import normalise
from .seeds import AUGMENTATION, BATCH_ORDER, random_stream

if TYPE_CHECKING:  # the pipeline reads a training set; inference imports collate without the training code
    from .data import TrainingSet


def duration_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     spread: float = 0.1) -> list[np.ndarray]:
    """Batches of records of similar length (little padding), in random order.

    Records are ordered by their length times a random factor within ``spread`` (10 %) either
    side, drawn afresh each call, so that records of distinct lengths meet other neighbours every
    epoch; a lone last record joins the previous batch (batch normalisation needs two).
    """
    shuffled = rng.permutation(len(lengths))
    jittered = lengths[shuffled] * np.exp(rng.uniform(-spread, spread, len(lengths)))
    order = shuffled[np.argsort(jittered, kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        lone = batches.pop()
        batches[-1] = np.concatenate([batches[-1], lone])
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(signals: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad a list of (12 x n) signals to one tensor; returns it and the lengths."""
    lengths = torch.tensor([s.shape[1] for s in signals])
    batch = torch.zeros(len(signals), signals[0].shape[0], int(lengths.max()))
    for i, s in enumerate(signals):
        batch[i, :, :s.shape[1]] = torch.from_numpy(s)
    return batch, lengths


def random_crop(signal: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``length`` samples from a random start."""
    if signal.shape[1] <= length:
        return signal
    start = int(rng.integers(0, signal.shape[1] - length + 1))
    return signal[:, start:start + length]


def training_input(signal: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    """A clean record as the network trains on it: cropped at random to ``train_crop_s``,
    augmented if the configuration says so, with the leads the network reads, normalised."""
    signal = random_crop(signal, int(config.train_crop_s * config.fs), rng)
    if config.augment:
        signal = augment(signal, config, rng)
    return normalise(network_leads(signal, config), config.normalisation)


def mixup(signals: torch.Tensor, lengths: torch.Tensor, targets: np.ndarray, mask: np.ndarray,
          demographics: np.ndarray, alpha: float, rng: np.random.Generator):
    """Each record of a batch mixed with a random partner of the same batch (Zhang et al. 2018, mixup): signals,
    targets and demographics weighed by lambda ~ Beta(alpha, alpha) and 1 - lambda. The mix is as long as the
    longer of the two (the batch is zero-padded), and a label counts only where both records' sources give it."""
    partner = rng.permutation(len(targets))
    weight = rng.beta(alpha, alpha, size=len(targets)).astype(np.float32)
    along = torch.from_numpy(weight)[:, None, None]
    mixed = along * signals + (1 - along) * signals[partner]
    column = weight[:, None]
    return (mixed, torch.maximum(lengths, lengths[partner]), column * targets + (1 - column) * targets[partner],
            mask * mask[partner], column * demographics + (1 - column) * demographics[partner])


class TrainingBatches(torch.utils.data.Dataset):
    """The training batches of one process: each epoch's duration-grouped batches of ``rows`` (grouped by
    the length a record keeps after its training crop), this process's share of them, and each batch read,
    cropped, augmented and collated by ``self[epoch, k]`` with a random stream of its own. A batch is
    therefore the same whether the main process or any of the loader's workers makes it."""

    def __init__(self, data: TrainingSet, rows: np.ndarray, config: Config, seed: list[int], rank: int, world: int):
        self.data, self.rows, self.config, self.seed, self.rank, self.world = data, rows, config, seed, rank, world
        self.cropped_lengths = np.minimum(data.lengths[rows], int(config.train_crop_s * config.fs))
        self.epoch, self.mine = 0, []

    def batches(self, epoch: int) -> list[np.ndarray]:
        """This process's batches of ``epoch`` (rows of the training set): the batch order is alike in every
        process, and each takes an equal share, which keeps DistributedDataParallel in step."""
        if epoch != self.epoch:
            batches = duration_batches(self.cropped_lengths, self.config.batch_size,
                                       random_stream(self.seed, BATCH_ORDER, epoch))
            if len(batches) < self.world:
                raise ValueError(f"{len(batches)} batches cannot feed {self.world} processes: lower batch_size")
            self.epoch = epoch
            self.mine = [self.rows[b] for b in batches[: len(batches) - len(batches) % self.world][self.rank::self.world]]
        return self.mine

    def __getitem__(self, key: tuple[int, int]):
        epoch, k = key
        rows = self.batches(epoch)[k]
        rng = random_stream(self.seed, AUGMENTATION, epoch, self.rank, k)
        signals, lengths = collate([training_input(self.data.signals[i], self.config, rng) for i in rows])
        targets, mask = self.data.loss_targets(rows)
        demographics = self.data.demographics[rows]
        if self.config.mixup_alpha > 0:
            signals, lengths, targets, mask, demographics = mixup(signals, lengths, targets, mask, demographics,
                                                                  self.config.mixup_alpha, rng)
        return signals, lengths, torch.from_numpy(targets), torch.from_numpy(mask), torch.from_numpy(demographics)


class EpochKeys(torch.utils.data.Sampler):
    """The keys of one epoch's batches, in order; ``epoch`` is set before each pass."""

    def __init__(self, batches: TrainingBatches):
        self.batches, self.epoch = batches, 1

    def __iter__(self):
        return iter([(self.epoch, k) for k in range(len(self))])

    def __len__(self) -> int:
        return len(self.batches.batches(self.epoch))


def batch_loader(batches: TrainingBatches, config: Config, run_on: torch.device) -> torch.utils.data.DataLoader:
    """The batches, made by ``Config.loader_workers`` worker processes ahead of the step that needs them
    (kept from epoch to epoch, into pinned memory beside a GPU), or by the main process."""
    workers = config.loader_workers if config.loader_workers is not None else \
        (LOADER_WORKERS_BESIDE_A_GPU if run_on.type == "cuda" else 0)
    # A generator of its own: the loader draws its workers' seeds from it, never from the global one, which
    # seeds dropout each epoch (the workers' own random numbers are unused: each batch has its stream).
    return torch.utils.data.DataLoader(batches, batch_size=None, sampler=EpochKeys(batches), num_workers=workers,
                                       pin_memory=run_on.type == "cuda", persistent_workers=workers > 0,
                                       prefetch_factor=4 if workers else None, generator=torch.Generator())


LOADER_WORKERS_BESIDE_A_GPU = 4
