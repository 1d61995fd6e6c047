"""The training recipe behind ``train_model.py``: k-fold cross-validation of each
architecture, the fold models kept as an ensemble (mean of their probabilities),
per-class decision thresholds tuned on the out-of-fold probabilities, and, with
two architectures, a stacking meta-classifier over them.

The defaults are the best recipe of the cross-validated comparison in docs/results.md
(experiments/compare_recipes.py) that fits the inference budget: one network.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import checkpoint
from .config import Config
from .crossval import OutOfFold, cross_validate, report
from .data import TrainingSet
from .ensemble import cross_validated_stacking, fit_stacker, stacker_probabilities
from .thresholds import tune_thresholds
from .train import load_data, start_processes

# The best recipe of one network, the most the inference budget (100 records/s on 2 cores) allows;
# the two-architecture fold ensemble scores higher but runs at about 30 records/s (docs/results.md).
MODELS = ("cnn_attention",)
FOLDS = 1
STACKING = False  # the meta-classifier lost to the plain mean in the comparison
WORK_FOLDER = "folds"        # inside the model folder while training: one model per architecture and fold
CURVES_FOLDER = "training_curves"


def combined_out_of_fold(probabilities: list[np.ndarray], labels: np.ndarray, fold_of: np.ndarray,
                         stacking: bool) -> tuple[np.ndarray, dict | None]:
    """The ensemble's out-of-fold probabilities, and the stacker fitted on all of them (or None).

    Stacked probabilities come from meta-classifiers fitted on the other folds, so
    the thresholds tuned on them are tuned on honest outputs.
    """
    if not (stacking and len(probabilities) > 1):
        return np.mean(probabilities, axis=0), None
    stacker = fit_stacker(probabilities, labels)
    if len(np.unique(fold_of)) < 2:  # one validation split: no other fold to fit on
        return stacker_probabilities(stacker, probabilities), stacker
    return cross_validated_stacking(probabilities, labels, fold_of), stacker


def assemble(data: TrainingSet, configs: list[Config], oofs: list[OutOfFold],
             stacking: bool) -> tuple[checkpoint.SavedModel, dict]:
    """One saved model from cross-validated fold models: members, thresholds, stacker; and its scores."""
    rows, fold_of = oofs[0].rows, oofs[0].fold_of
    if any(not (np.array_equal(o.rows, rows) and np.array_equal(o.fold_of, fold_of)) for o in oofs):
        raise ValueError("the architectures were cross-validated on different folds")
    members = []
    for config, oof in zip(configs, oofs):
        for fold, model_dir in enumerate(oof.model_dirs, start=1):
            fold_model = checkpoint.load(model_dir)
            trained = {k: fold_model.description[k] for k in ("training_data", "validation", "history",
                                                              "positive_weights")}
            members.append(checkpoint.Member(config, fold_model.members[0].state, {"fold": fold, **trained}))
    labels = data.labels[rows]
    combined, stacker = combined_out_of_fold([o.probabilities for o in oofs], labels, fold_of, stacking)
    thresholds, _ = tune_thresholds(combined, [data.dx[i] for i in rows], data.classes, configs[0].labels)
    saved = checkpoint.SavedModel(
        data.classes, thresholds.tolist(), members,
        None if stacker is None else {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in stacker.items()},
        [c.model for c in configs] if stacker is not None else [])
    summary = {"recipe": {"models": [c.model for c in configs], "folds": len(oofs[0].model_dirs),
                          "combination": "stacking" if stacker is not None else "mean"},
               "cross_validation": report(data, OutOfFold(rows, combined, fold_of, []), configs[0])}
    return saved, summary


def save_model(model_dir: Path, saved: checkpoint.SavedModel, summary: dict, configs: list[Config],
               oofs: list[OutOfFold]) -> None:
    """The model, and beside it each fold model's training curves."""
    checkpoint.save(model_dir, saved, **summary)
    curves = model_dir / CURVES_FOLDER
    shutil.rmtree(curves, ignore_errors=True)
    curves.mkdir()
    for config, oof in zip(configs, oofs):
        for fold, fold_dir in enumerate(oof.model_dirs, start=1):
            shutil.copyfile(fold_dir / "training_curves.png", curves / f"{config.model}-fold{fold}.png")


def train_ensemble(train_dir: str | Path, model_dir: str | Path, configs: list[Config], folds: int = FOLDS,
                   stacking: bool = STACKING, resume: bool = False) -> dict:
    """Train the recipe on the records of ``train_dir``; save the model in ``model_dir``."""
    rank, world, run_on = start_processes()
    model_dir = Path(model_dir)
    datasets = [load_data(train_dir, config) for config in configs]
    if any(d.names != datasets[0].names or d.classes != datasets[0].classes for d in datasets):
        raise ValueError("the architectures' preprocessing kept different records")
    oofs = [cross_validate(data, config, folds, model_dir / WORK_FOLDER / config.model, (rank, world, run_on),
                           resume, str(train_dir), label=f"{config.model}: " if len(configs) > 1 else "")
            for data, config in zip(datasets, configs)]
    summary: dict = {}
    if rank == 0:  # the others have no out-of-fold predictions, and read nothing rank 0 wrote
        saved, summary = assemble(datasets[0], configs, oofs, stacking)
        save_model(model_dir, saved, summary, configs, oofs)
        shutil.rmtree(model_dir / WORK_FOLDER, ignore_errors=True)
        scores = summary["cross_validation"]
        tuned = scores.get("tuned_thresholds", scores["thresholds_0.5"])
        print(f"{len(saved.members)} networks; out of fold on {scores['records']} records: "
              + (f"Challenge metric {tuned['challenge_metric']:.3f}, " if configs[0].labels == "snomed" else "")
              + f"AUROC {tuned['auroc']:.3f}, F-beta {tuned['f_beta']:.3f}, G-beta {tuned['g_beta']:.3f}",
              file=sys.stderr)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary
