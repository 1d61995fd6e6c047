"""The training loop of one network: Nesterov Adam (decoupled weight decay, gradient
clipping and a warm-up plus cosine learning-rate schedule if chosen), duration-grouped
batches, augmentation, class weights if chosen, and the checkpoint with the lowest
validation binary cross-entropy.

Runs on the CPU (every core), on a GPU (pinned memory; mixed precision with ``Config.training_precision``) or, under
``torchrun``, on several processes with DistributedDataParallel (NCCL on GPUs,
gloo on CPUs): each process takes its share of every epoch's batches, all see the
same validation, and only rank 0 writes. After every epoch the whole training
state is saved, so a killed run resumes to the model an uninterrupted run gives.
"""

from __future__ import annotations

import copy
import datetime
import math
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import checkpoint
from .config import ENVIRONMENT_VARIABLE, Config
from .cpus import training_threads, use_threads
from .augment import training_input
from .data import TrainingSet, collate, duration_batches, load_training_set, stratified_folds
from .inference import decide, predict_probabilities
from .labels import source_of
from .models import build_model
from .scoring import score_predictions

RESUME_FOLDER = "resume"  # inside the model folder: the state after the last completed epoch
STATE_FILE = "state.json"
STATE_VERSION = 2  # states of another version (other random streams, other tensor names) are not resumed
# The random streams of a training run, each drawn afresh every epoch from the seed (``random_stream``), so that
# a resumed run needs no saved generator to draw what an uninterrupted one would.
INITIAL_WEIGHTS, BATCH_ORDER, AUGMENTATION, DROPOUT = range(4)


def random_stream(seed: list[int], stream: int, *where: int) -> np.random.Generator:
    """An independent generator for ``stream`` (at epoch, rank: ``where``) of the run seeded by ``seed``.

    The seed's length leads its entropy: numpy pads entropy with zeros, which would make [s] and [s, 0] alike.
    """
    return np.random.default_rng(np.random.SeedSequence([len(seed), *seed], spawn_key=(stream, *where)))


def binary_cross_entropy(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray,
                         mask: np.ndarray) -> float:
    """The training loss of probabilities (see ``masked_loss``), on arrays."""
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    terms = weights * labels * np.log(p) + (1 - labels) * np.log(1 - p)
    return float(-np.sum(mask * terms) / max(mask.sum(), 1))


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the known labels; a left-out one (mask 0) adds no loss and no gradient.

    Positives are weighed by ``weights`` (see ``positive_weights``).
    """
    terms = nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights, reduction="none")
    return (terms * mask).sum() / mask.sum().clamp(min=1)


def positive_weights(labels: np.ndarray, mask: np.ndarray, config: Config) -> np.ndarray:
    """Per class, the loss weight of a positive record (1 without class weights)."""
    if not config.class_weights:
        return np.ones(labels.shape[1])
    positives = labels.sum(axis=0)
    negatives = (mask * (1 - labels)).sum(axis=0)
    return np.sqrt(negatives / np.maximum(positives, 1))


def start_processes() -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process; joins the process group under torchrun.

    Each process reads its training records itself (``data.cached_records`` lets one
    process per machine build the cache while the others wait on a file lock, not in a
    collective), so no file that only rank 0 wrote is read elsewhere, except the model
    folder on ``--resume``: across machines it must be on storage every machine sees.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        # Machines build their caches at the same time; the wait covers the slowest one.
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=60))
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        # A scheduler that shows each process its own GPU leaves one device visible to every local rank.
        local = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    use_threads(training_threads(int(os.environ.get("LOCAL_WORLD_SIZE", world))))  # the available cores, shared out
    return rank, world, torch.device("cpu")


def make_deterministic() -> None:
    """What makes a GPU run repeat: deterministic algorithms only, cuDNN's fixed choice of them, no TF32."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspace
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def load_data(train_dir: str | Path, config: Config) -> TrainingSet:
    """The training set (every process reads its own; see ``start_processes``)."""
    data = load_training_set(train_dir, config)
    if len(data.names) < 2:
        raise ValueError(f"need at least two labelled records to train, found {len(data.names)}")
    return data


def split(labels: np.ndarray, config: Config, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified training and validation rows (drawn with ``seed``, default ``config.seed``);
    tiny sets validate on their training rows, and ``val_fraction`` 0 validates on none."""
    if config.val_fraction == 0:
        return np.arange(len(labels)), np.array([], dtype=np.int64)
    seed = config.seed if seed is None else seed
    fold = stratified_folds(labels, [1 - config.val_fraction, config.val_fraction], seed)
    train_rows, val_rows = np.flatnonzero(fold == 0), np.flatnonzero(fold == 1)
    return train_rows, (val_rows if len(val_rows) else train_rows)


def learning_rate(step: int, steps_per_epoch: int, config: Config) -> float:
    """The learning rate of optimiser step ``step`` (from 0): constant, or a linear warm-up over
    ``warmup_epochs`` and a cosine decay that reaches zero after ``epochs``."""
    if config.schedule == "constant":
        return config.lr
    warmup, total = config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch
    if step < warmup:
        return config.lr * min(1.0, (step + 1) / warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(total - warmup, 1))))


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
        targets, mask = (torch.from_numpy(a) for a in self.data.loss_targets(rows))
        return signals, lengths, targets, mask, torch.from_numpy(self.data.demographics[rows])


class EpochKeys(torch.utils.data.Sampler):
    """The keys of one epoch's batches, in order; ``epoch`` is set before each pass."""

    def __init__(self, batches: TrainingBatches):
        self.source, self.epoch = batches, 1

    def __iter__(self):
        return iter([(self.epoch, k) for k in range(len(self))])

    def __len__(self) -> int:
        return len(self.source.batches(self.epoch))


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


class NonFiniteLoss(ValueError):
    """Training produced a loss that is not a number: the run stops rather than ship such weights."""


def train_epoch(training: "Training", epoch: int) -> tuple[torch.Tensor, int]:
    """One pass over this process's batches of ``epoch``; returns (summed loss, records) and the first
    batch (from 1) whose loss was not finite, or 0. The loss stays on the device: no step waits for it."""
    t, config, run_on = training, training.config, training.processes[2]
    t.network.train()
    t.loader.sampler.epoch = epoch
    steps = len(t.loader.sampler)
    total = torch.zeros((), dtype=torch.float64, device=run_on)
    records = 0
    first_non_finite = torch.zeros((), dtype=torch.int64, device=run_on)
    show = t.processes[0] == 0
    progress = tqdm(t.loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch", file=sys.stderr, leave=False,
                    disable=not show)
    for k, (signals, signal_lengths, targets, mask, demographics) in enumerate(progress):
        signals, targets, mask, demographics = (x.to(run_on, non_blocking=True)
                                                for x in (signals, targets, mask, demographics))
        for group in t.optimiser.param_groups:
            group["lr"] = learning_rate((epoch - 1) * steps + k, steps, config)
        with torch.autocast(run_on.type, dtype=getattr(torch, config.training_precision),
                            enabled=config.training_precision != "float32"):
            logits = t.network(signals, signal_lengths, demographics).float()
        loss = masked_loss(logits, targets, mask, t.loss_weights)
        t.optimiser.zero_grad()
        t.scaler.scale(loss).backward()
        if config.gradient_clip:
            t.scaler.unscale_(t.optimiser)
            nn.utils.clip_grad_norm_(t.network.parameters(), config.gradient_clip)
        t.scaler.step(t.optimiser)
        t.scaler.update()
        loss = loss.detach()
        total += loss.double() * len(targets)
        records += len(targets)
        first_non_finite = torch.where((first_non_finite == 0) & ~torch.isfinite(loss), k + 1, first_non_finite)
        if show and k % 25 == 24:
            progress.set_postfix(loss=f"{float(total) / records:.4f}")
    return torch.stack([total.cpu(), torch.tensor(records, dtype=torch.float64)]), int(first_non_finite)


def evaluate(model: nn.Module, data: TrainingSet, rows: np.ndarray, weights: np.ndarray, config: Config,
             run_on: torch.device) -> dict:
    """Validation loss (the training loss over the classes) and the scheme's scores at thresholds 0.5."""
    probabilities = predict_probabilities(model, config, data.signals.subset(rows), data.demographics[rows], run_on)
    outputs = decide(probabilities, np.full(len(data.classes), 0.5))
    scores = score_predictions([data.dx[i] for i in rows], data.classes, outputs, probabilities, config.labels)
    answered = weights[:len(data.classes)]  # the classes' share of the loss: the auxiliary codes are never answered
    return {"loss": binary_cross_entropy(data.labels[rows], probabilities, answered, data.mask[rows]),
            "challenge_metric": scores.challenge_metric, "auroc": scores.auroc,
            "f_beta": scores.f_beta, "g_beta": scores.g_beta, "f_measure": scores.f_measure}


def stop_decision(epoch: int, loss: float, best: dict, patience: int) -> tuple[bool, bool]:
    """(improved, stop) after ``epoch``: a lower finite validation loss than ``best``'s improves;
    ``patience`` epochs without one stop."""
    improved = math.isfinite(loss) and loss < best["loss"]
    return improved, not improved and epoch - best["epoch"] >= patience


def agree(values: list[bool], world: int, run_on: torch.device) -> list[bool]:
    """Rank 0's ``values`` in every process, so that all stop (or go on, or fail) together."""
    if world == 1:
        return values
    flags = torch.tensor([float(v) for v in values], device=run_on)  # NCCL reduces only GPU tensors
    dist.broadcast(flags, src=0)
    return [bool(v) for v in flags.tolist()]


def on_rank_zero(work, processes: tuple[int, int, torch.device], what: str):
    """``work()`` on rank 0 alone (its result there, None elsewhere). Every rank learns whether it failed and
    raises then, so that no rank waits in a later collective for one that has stopped."""
    rank, world, run_on = processes
    result, failure = None, None
    if rank == 0:
        try:
            result = work()
        except Exception as error:
            failure = error
    (failed,) = agree([failure is not None], world, run_on)
    if failed:
        raise failure if failure is not None else RuntimeError(f"rank 0 failed {what}")
    return result


def describe(record: dict, scheme: str) -> str:
    """One epoch's line: the validation scores of the model's label scheme (if it validates)."""
    keys = (("challenge_metric", "challenge"),) if scheme == "snomed" else (("g_beta", "G-beta"),)
    line = f"epoch {record['epoch']:3d}  train loss {record['train_loss']:.4f}  "
    if "val_loss" in record:
        line += f"val loss {record['val_loss']:.4f}  " + "  ".join(
            f"{name} {record[f'val_{key}']:.3f}" for key, name in keys + (("auroc", "AUROC"), ("f_beta", "F-beta")))
    return line + f"  {record['seconds']:.0f}s"


@dataclass
class Training:
    """One network's training as it stands between epochs."""
    config: Config
    processes: tuple[int, int, torch.device]
    model: nn.Module             # the network itself, whose weights are saved
    network: nn.Module           # what trains: the model, or its DistributedDataParallel wrapper
    optimiser: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: torch.utils.data.DataLoader
    weights: np.ndarray          # each class's (and auxiliary code's) loss weight of a positive
    loss_weights: torch.Tensor   # the same, on the device
    state_dir: Path
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"loss": math.inf, "epoch": 0})
    best_state: dict | None = None
    stopped: bool = False

    def log(self, text: str) -> None:
        if self.processes[0] == 0:
            print(text, file=sys.stderr)


def fit(data: TrainingSet, train_rows: np.ndarray, val_rows: np.ndarray, config: Config,
        model_dir: str | Path, processes: tuple[int, int, torch.device], resume: bool = False,
        source: str = "", seed: tuple[int, ...] = ()) -> dict | None:
    """Train on ``train_rows``, keep the epoch with the lowest loss on ``val_rows``, save it in ``model_dir``.

    With no ``val_rows`` (a refit on every record, or ``val_fraction`` 0), every epoch runs and the
    last is kept. Rank 0 validates and decides for every process which epoch is best and when
    to stop, and returns the model's description (other ranks: None). ``source``
    names the data for the description; ``seed`` (with ``config.seed``) seeds the
    initialisation, batch order and augmentation, so that each fold and
    architecture of a recipe draws its own.
    """
    seed = [config.seed, *seed]
    training = start_training(data, train_rows, val_rows, config, Path(model_dir), processes, resume, seed)
    improved_once = training.best_state is not None
    for epoch in range(len(training.history) + 1, config.epochs + 1):
        if training.stopped:
            break
        improved_once |= run_epoch(training, data, val_rows, epoch, seed, source)
    if not training.stopped and len(val_rows):
        training.log(f"reached the maximum of {config.epochs} epochs; the lowest validation loss came at epoch "
                     f"{training.best['epoch']}")
    if not improved_once:
        raise NonFiniteLoss(f"{source}: the validation loss was never a finite number: training diverged "
                            "(lower lr, or look for broken records)")
    summary = describe_training(data, train_rows, val_rows, training, source)

    def save() -> None:
        saved = checkpoint.SavedModel(data.classes, [0.5] * len(data.classes),
                                      [checkpoint.Member(config, training.best_state)], auxiliary=data.auxiliary)
        checkpoint.save(model_dir, saved, **summary)
        plot_history(training.history, training.best["epoch"], Path(model_dir) / "training_curves.png")
        shutil.rmtree(training.state_dir, ignore_errors=True)

    on_rank_zero(save, processes, "saving the model")  # every rank waits for it, and learns if it failed
    return summary if processes[0] == 0 else None


def start_training(data: TrainingSet, train_rows: np.ndarray, val_rows: np.ndarray, config: Config,
                   model_dir: Path, processes: tuple[int, int, torch.device], resume: bool,
                   seed: list[int]) -> Training:
    """The network initialised from the seed, its optimiser, loss weights and batches; on ``resume``, the state
    after the last completed epoch restored."""
    rank, world, run_on = processes
    if config.deterministic:
        make_deterministic()
    torch.manual_seed(int(random_stream(seed, INITIAL_WEIGHTS).integers(2**63)))
    model = build_model(config, len(data.classes), len(data.auxiliary)).to(run_on)
    network = DistributedDataParallel(model, device_ids=[run_on] if run_on.type == "cuda" else None) \
        if world > 1 else model
    optimiser = torch.optim.NAdam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  decoupled_weight_decay=True)
    # Only float16's narrow range needs the loss scaled; bfloat16 keeps float32's exponent.
    scaler = torch.amp.GradScaler(run_on.type, enabled=config.training_precision == "float16")
    weights = positive_weights(*data.loss_targets(train_rows), config)
    training = Training(config, processes, model, network, optimiser, scaler,
                        batch_loader(TrainingBatches(data, train_rows, config, seed, rank, world), config, run_on),
                        weights, torch.tensor(weights, dtype=torch.float32, device=run_on), model_dir / RESUME_FOLDER)
    training.log(f"{len(data.names)} records ({len(data.skipped)} skipped), {len(data.classes)} classes"
                 + (f" and {len(data.auxiliary)} auxiliary codes; " if data.auxiliary else "; ") +
                 f"{len(train_rows)} for training, {len(val_rows)} for validation; {world} process(es) on {run_on.type}")
    if data.unknown_labels:
        training.log("labels the model does not learn (too rare or unscored): " + ", ".join(
            f"{c} ({n})" for c, n in sorted(data.unknown_labels.items(), key=lambda kv: -kv[1])))
    if resume and (training.state_dir / STATE_FILE).exists():
        training.history, training.best, training.best_state = restore_state(
            training.state_dir, config, data, model, optimiser, scaler)
        training.log(f"resuming after epoch {len(training.history)} of {training.state_dir}")
        # A resumed run that had already stopped (states saved before the flag existed: by patience).
        training.stopped = training.history[-1].get(
            "stopped", len(training.history) - training.best["epoch"] >= config.patience)
    return training


def run_epoch(training: Training, data: TrainingSet, val_rows: np.ndarray, epoch: int, seed: list[int],
              source: str) -> bool:
    """One epoch: train; then rank 0 validates, decides for every process whether the epoch is the best so
    far and whether to stop, and saves the state; returns whether it improved."""
    rank, world, run_on = training.processes
    config = training.config
    started = time.time()
    torch.manual_seed(int(random_stream(seed, DROPOUT, epoch, rank).integers(2**63)))
    total, non_finite = train_epoch(training, epoch)
    if world > 1:
        total = total.to(run_on)
        dist.all_reduce(total)
        total = total.cpu()
    if not math.isfinite(float(total[0])):  # every process sees the reduced loss: all stop here
        raise NonFiniteLoss(
            f"{source}: the training loss was not a number in epoch {epoch} ("
            + (f"first at batch {non_finite} of {len(training.loader.sampler)}" if non_finite else "on another process")
            + f"). Nothing of that epoch is kept: --resume starts it again from epoch {epoch - 1} (after a "
            f"broken record is mended, say); or start afresh with a lower lr (now {config.lr}) or gradient_clip "
            f"(now {config.gradient_clip}) set in ${ENVIRONMENT_VARIABLE}")
    improved, failure = False, None
    if rank == 0:
        try:  # a failure here must reach the other ranks, or they would wait for rank 0 forever
            improved = record_epoch(training, data, val_rows, epoch, float(total[0] / total[1]), started)
        except Exception as error:
            failure = error
    improved, training.stopped, failed = agree([improved, training.stopped, failure is not None], world, run_on)
    if failed:
        raise failure if failure is not None else RuntimeError("rank 0 failed validating or saving")
    if training.stopped:
        training.log(f"no lower validation loss for {config.patience} epochs: stopping")
    return improved


def record_epoch(training: Training, data: TrainingSet, val_rows: np.ndarray, epoch: int, train_loss: float,
                 started: float) -> bool:
    """Rank 0's part of an epoch: validation and the stop decision, the history, the best weights and the
    state that ``--resume`` continues from; returns whether the epoch improved."""
    config = training.config
    if len(val_rows):
        scores = evaluate(training.model, data, val_rows, training.weights, config, training.processes[2])
        improved, training.stopped = stop_decision(epoch, scores["loss"], training.best, config.patience)
    else:
        scores, improved = {}, True
    # the loss optimised, over the auxiliary codes too (if any); the validation loss reads the classes
    record = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in scores.items()},
              "seconds": time.time() - started, "lr": training.optimiser.param_groups[0]["lr"],
              "stopped": training.stopped}
    training.history.append(record)
    training.log(describe(record, config.labels) + ("  *" if improved else ""))
    if improved:
        training.best, training.best_state = {**scores, "epoch": epoch}, copy.deepcopy(training.model.state_dict())
    save_state(training.state_dir, config, data, training.model, training.optimiser, training.scaler,
               training.history, training.best, training.best_state)
    return improved


def describe_training(data: TrainingSet, train_rows: np.ndarray, val_rows: np.ndarray, training: Training,
                      source: str) -> dict:
    """What model.json says of a trained network: its data, loss weights, best epoch and history."""
    return {
        "training_data": {
            "folder": source,
            "records": len(data.names), "skipped": len(data.skipped),
            "records_per_source": dict(sorted(Counter(source_of(name) for name in data.names).items())),
            "train_records": int(len(train_rows)), "validation_records": int(len(val_rows)),
            "positives_per_class": dict(zip(data.classes, data.labels.sum(axis=0).astype(int).tolist())),
            **({"positives_per_auxiliary_code": dict(zip(data.auxiliary, data.auxiliary_labels.sum(axis=0)
                                                            .astype(int).tolist()))} if data.auxiliary else {}),
            "labels_not_learned": data.unknown_labels,
            "labels_left_out_of_the_loss": int((data.mask[train_rows] == 0).sum()),
            "processes": training.processes[1], "device": training.processes[2].type,
        },
        "positive_weights": dict(zip(data.classes + data.auxiliary, training.weights.round(3).tolist())),
        "validation": training.best,
        "reached_maximum": not training.stopped,
        "history": training.history,
    }


def save_state(state_dir: Path, config: Config, data: TrainingSet, model: nn.Module, optimiser, scaler,
               history: list[dict], best: dict, best_state: dict | None) -> None:
    """Everything needed to continue training exactly where it stands (the random streams start afresh
    each epoch from the seed, and the schedule's step follows from the epoch)."""
    optimiser_state = optimiser.state_dict()
    tensors = {f"network.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"best.{k}": v for k, v in (best_state or {}).items()}  # none before a finite validation loss
    tensors |= {f"optimiser.{index}.{key}": value for index, entry in optimiser_state["state"].items()
                for key, value in entry.items()}
    document = {"version": STATE_VERSION, "config": config.to_json(), "records": data.names, "history": history,
                "best": best, "optimiser_groups": optimiser_state["param_groups"], "scaler": scaler.state_dict()}
    checkpoint.write_document(state_dir, STATE_FILE, document, tensors)


def resume_mismatch(saved: Path) -> ValueError:
    """The error for --resume over work saved with other options or records."""
    return ValueError(f"{saved} belongs to another configuration or training set: "
                      "resume with the same ones, or start afresh without --resume")


def restore_state(state_dir: Path, config: Config, data: TrainingSet, model: nn.Module, optimiser,
                  scaler) -> tuple[list[dict], dict, dict | None]:
    document, tensors = checkpoint.read_document(state_dir, STATE_FILE)
    if document.get("version") != STATE_VERSION:
        raise ValueError(f"{state_dir} was saved by another version of this code: start afresh without --resume")
    if Config.from_json(document["config"]) != config or document["records"] != data.names:
        raise resume_mismatch(state_dir)
    model.load_state_dict({k[len("network."):]: v for k, v in tensors.items() if k.startswith("network.")})
    best_state = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} or None
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimiser."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": document["optimiser_groups"]})
    if document["scaler"]:
        scaler.load_state_dict(document["scaler"])
    return document["history"], document["best"], best_state


def plot_history(history: list[dict], best_epoch: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    validated = "val_loss" in history[0]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], label="training")
    if validated:
        left.plot(epochs, [h["val_loss"] for h in history], label="validation")
    left.set(xlabel="epoch", ylabel="binary cross-entropy", title="Loss")
    left.legend()
    if validated:
        for key, name in (("val_challenge_metric", "Challenge metric"), ("val_auroc", "macro AUROC"),
                          ("val_f_beta", "F-beta")):
            right.plot(epochs, [h[key] for h in history], label=name)
        right.set(xlabel="epoch", title="Validation scores (thresholds 0.5)")
        right.legend()
    else:  # a refit, or val_fraction 0: nothing to validate on
        right.plot(epochs, [h["lr"] for h in history])
        right.set(xlabel="epoch", title="Learning rate at the end of each epoch")
    for axis in (left, right):
        axis.axvline(best_epoch, color="grey", linestyle=":", label="_kept")
    left.annotate(f"kept: epoch {best_epoch}", (best_epoch, 0.98), xycoords=("data", "axes fraction"),
                  ha="right", va="top", fontsize=8, color="grey")
    figure.tight_layout()
    checkpoint.atomic_write(path, lambda p: figure.savefig(p, dpi=100, format="png"))
    plt.close(figure)
