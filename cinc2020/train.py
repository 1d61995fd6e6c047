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
from .batches import TrainingBatches, batch_loader
from .config import ENVIRONMENT_VARIABLE, Config
from .data import SOURCES_TOLD_BY, TrainingSet, load_training_set
from .decisions import decide
from .distributed import Processes, agree, failing_together, make_deterministic, on_rank_zero
from .inference import predict_probabilities
from .labels import refuse_unlearnable_classes
from .models import build_model
from .resume import RESUME_FOLDER, STATE_FILE, restore_state, save_state
from .scoring import score_predictions
from .seeds import DROPOUT, INITIAL_WEIGHTS, random_stream


def binary_cross_entropy(labels: np.ndarray, probabilities: np.ndarray, positive_weights: np.ndarray,
                         mask: np.ndarray) -> float:
    """The training loss of probabilities (see ``masked_loss``), on arrays."""
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    terms = positive_weights * labels * np.log(p) + (1 - labels) * np.log(1 - p)
    return float(-np.sum(mask * terms) / max(mask.sum(), 1))


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                positive_weights: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the known labels; a left-out one (mask 0) adds no loss and no gradient.

    Positives are weighed by ``positive_weights`` (the function of that name).
    """
    terms = nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=positive_weights, reduction="none")
    return (terms * mask).sum() / mask.sum().clamp(min=1)


def positive_weights(labels: np.ndarray, mask: np.ndarray, config: Config) -> np.ndarray:
    """Per class, the loss weight of a positive record (1 without class weights)."""
    if not config.class_weights:
        return np.ones(labels.shape[1])
    positives = labels.sum(axis=0)
    negatives = (mask * (1 - labels)).sum(axis=0)
    return np.sqrt(negatives / np.maximum(positives, 1))



def load_data(train_dir: str | Path, config: Config) -> TrainingSet:
    """The training set (every process reads its own; see ``start_processes``), its records counted per source
    (on stderr, by rank 0); refused when a class could teach the network nothing."""
    data = load_training_set(train_dir, config)
    if len(data.names) < 2:
        raise ValueError(f"need at least two labelled records to train, found {len(data.names)}")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"records per source (sources from {SOURCES_TOLD_BY[config.sources]}): " + ", ".join(
            f"{source} {count:,}" for source, count in sorted(Counter(data.sources).items())), file=sys.stderr)
    refuse_unlearnable_classes(data.classes, data.labels, data.mask, data.sources, SOURCES_TOLD_BY[config.sources])
    return data



def learning_rate(step: int, steps_per_epoch: int, config: Config) -> float:
    """The learning rate of optimiser step ``step`` (from 0): constant, or a linear warm-up over
    ``warmup_epochs`` and a cosine decay that reaches zero after ``epochs``."""
    if config.schedule == "constant":
        return config.lr
    warmup, total = config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch
    if step < warmup:
        return config.lr * min(1.0, (step + 1) / warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(total - warmup, 1))))



class NonFiniteLoss(ValueError):
    """Training produced a loss that is not a number: the run stops rather than ship such weights."""


def train_epoch(training: "Training", epoch: int) -> tuple[torch.Tensor, int]:
    """One pass over this process's batches of ``epoch``; returns (summed loss, records) and the first
    batch (from 1) whose loss was not finite, or 0. The loss stays on the device: no step waits for it."""
    t, config, run_on = training, training.config, training.processes.device
    t.network.train()
    t.loader.sampler.epoch = epoch
    steps = len(t.loader.sampler)
    total = torch.zeros((), dtype=torch.float64, device=run_on)
    records = 0
    first_non_finite = torch.zeros((), dtype=torch.int64, device=run_on)
    show = t.processes.rank == 0
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
        loss = masked_loss(logits, targets, mask, t.positive_weights_on_device)
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


def evaluate(model: nn.Module, data: TrainingSet, rows: np.ndarray, positive_weights: np.ndarray, config: Config,
             run_on: torch.device) -> dict:
    """Validation loss (the training loss over the classes) and the scheme's scores at thresholds 0.5."""
    probabilities = predict_probabilities(model, config, data.signals.subset(rows), data.demographics[rows], run_on)
    outputs = decide(probabilities, np.full(len(data.classes), 0.5))
    scores = score_predictions([data.dx[i] for i in rows], data.classes, outputs, probabilities, config.labels)
    answered = positive_weights[:len(data.classes)]  # the classes' share of the loss: the auxiliary codes are never answered
    return {"loss": binary_cross_entropy(data.labels[rows], probabilities, answered, data.mask[rows]),
            "challenge_metric": scores.challenge_metric, "auroc": scores.auroc,
            "f_beta": scores.f_beta, "g_beta": scores.g_beta, "f_measure": scores.f_measure}


def stop_decision(epoch: int, loss: float, best: dict, patience: int) -> tuple[bool, bool]:
    """(improved, stop) after ``epoch``: a lower finite validation loss than ``best``'s improves;
    ``patience`` epochs without one stop."""
    improved = math.isfinite(loss) and loss < best["loss"]
    return improved, not improved and epoch - best["epoch"] >= patience



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
    processes: Processes
    model: nn.Module             # the network itself, whose weights are saved
    network: nn.Module           # what trains: the model, or its DistributedDataParallel wrapper
    optimiser: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: torch.utils.data.DataLoader
    positive_weights: np.ndarray   # each class's (and auxiliary code's) loss weight of a positive
    positive_weights_on_device: torch.Tensor
    state_dir: Path
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"loss": math.inf, "epoch": 0})
    best_state: dict | None = None
    stopped: bool = False

    def log(self, text: str) -> None:
        if self.processes.rank == 0:
            print(text, file=sys.stderr)


def fit(data: TrainingSet, train_rows: np.ndarray, val_rows: np.ndarray, config: Config,
        model_dir: str | Path, processes: Processes, resume: bool = False,
        data_name: str = "", seed: tuple[int, ...] = ()) -> dict | None:
    """Train on ``train_rows``, keep the epoch with the lowest loss on ``val_rows``, save it in ``model_dir``.

    With no ``val_rows`` (a refit on every record, or ``val_fraction`` 0), every epoch runs and the
    last is kept. Rank 0 validates and decides for every process which epoch is best and when
    to stop, and returns the model's description (other ranks: None). ``data_name``
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
        improved_once |= run_epoch(training, data, val_rows, epoch, seed, data_name)
    if not training.stopped and len(val_rows):
        training.log(f"reached the maximum of {config.epochs} epochs; the lowest validation loss came at epoch "
                     f"{training.best['epoch']}")
    if not improved_once:
        raise NonFiniteLoss(f"{data_name}: the validation loss was never a finite number: training diverged "
                            "(lower lr, or look for broken records)")
    summary = describe_training(data, train_rows, val_rows, training, data_name)

    def save() -> None:
        saved = checkpoint.SavedModel(data.classes, [0.5] * len(data.classes),
                                      [checkpoint.Member(config, training.best_state)], auxiliary=data.auxiliary)
        checkpoint.save(model_dir, saved, **summary)
        from .plot import plot_history  # matplotlib, only where a run saves
        plot_history(training.history, training.best["epoch"], Path(model_dir) / "training_curves.png")
        shutil.rmtree(training.state_dir, ignore_errors=True)

    on_rank_zero(save, processes, "saving the model")  # every rank waits for it, and learns if it failed
    return summary if processes.rank == 0 else None


def start_training(data: TrainingSet, train_rows: np.ndarray, val_rows: np.ndarray, config: Config,
                   model_dir: Path, processes: Processes, resume: bool,
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
    weighed = positive_weights(*data.loss_targets(train_rows), config)
    training = Training(config, processes, model, network, optimiser, scaler,
                        batch_loader(TrainingBatches(data, train_rows, config, seed, rank, world), config, run_on),
                        weighed, torch.tensor(weighed, dtype=torch.float32, device=run_on), model_dir / RESUME_FOLDER)
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
              data_name: str) -> bool:
    """One epoch: train; then rank 0 validates, decides for every process whether the epoch is the best so
    far and whether to stop, and saves the state; returns whether it improved."""
    rank, world, run_on = training.processes
    config = training.config
    started = time.time()
    torch.manual_seed(int(random_stream(seed, DROPOUT, epoch, rank).integers(2**63)))
    with failing_together(training.processes):
        total, non_finite = train_epoch(training, epoch)
        if world > 1:
            total = total.to(run_on)
            dist.all_reduce(total)
            total = total.cpu()
    if not math.isfinite(float(total[0])):  # every process sees the reduced loss: all stop here
        raise NonFiniteLoss(
            f"{data_name}: the training loss was not a number in epoch {epoch} ("
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
        scores = evaluate(training.model, data, val_rows, training.positive_weights, config, training.processes.device)
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
                      data_name: str) -> dict:
    """What model.json says of a trained network: its data, loss weights, best epoch and history."""
    return {
        "training_data": {
            "folder": data_name,
            "records": len(data.names), "skipped": len(data.skipped),
            "records_per_source": dict(sorted(Counter(data.sources).items())),
            "train_records": int(len(train_rows)), "validation_records": int(len(val_rows)),
            "positives_per_class": dict(zip(data.classes, data.labels[train_rows].sum(axis=0).astype(int).tolist())),
            **({"positives_per_auxiliary_code": dict(zip(data.auxiliary, data.auxiliary_labels[train_rows].sum(axis=0)
                                                            .astype(int).tolist()))} if data.auxiliary else {}),
            "labels_not_learned": data.unknown_labels,
            "labels_left_out_of_the_loss": int((data.mask[train_rows] == 0).sum()),
            "processes": training.processes.world, "device": training.processes.device.type,
        },
        "positive_weights": dict(zip(data.classes + data.auxiliary, training.positive_weights.round(3).tolist())),
        "validation": training.best,
        "reached_maximum": not training.stopped,
        "history": training.history,
    }



