"""The training recipe behind ``train_model.py``: k-fold cross-validation of each
architecture, per-class decision thresholds tuned on the out-of-fold probabilities
combined across architectures as the driver combines them (mean, or with two
architectures and ``stacking`` a meta-classifier), and as the networks that ship
either the fold models (an ensemble: the mean of their probabilities) or, with
``refit``, one network per architecture retrained on every record for the
cross-validated schedule (its last epoch kept: nothing is left to validate on).

Refit networks see all the records, the fold models a share; the thresholds come
from the fold models' out-of-fold probabilities either way, so for a refit (and
for the mean over fold models, which no record sees out of fold) they are tuned on
the outputs of close relatives of the shipped networks, not of those networks.
The out-of-fold probabilities are saved beside the model (``OUT_OF_FOLD_FILE``)
so that the thresholds can be checked.

The defaults are the screened recipe (docs/screening.md and docs/screening_2.md,
experiments/screen_recipes.py): 4-fold cross-validation of the attention network (each fold model
trained on all its records to its last epoch), the fold models shipped as an ensemble, and their
out-of-fold probabilities tuning the thresholds they are applied with, per class shrunk halfway
toward one global threshold (``Config.threshold_shrink``): judged on a source never trained on,
that beat the refit network with per-class thresholds (issue 39, docs/results.md, scored once by
experiments/evaluate_recipe.py).
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
from .crossval import OutOfFold, cross_validate, report, report_2021
from .data import TrainingSet
from .decisions import tune_thresholds
from .distributed import on_rank_zero, start_processes
from .ensemble import cross_validated_stacking, fit_stacker, stacker_probabilities
from .models import ARCHITECTURES
from .records import as_folders, probabilities_key
from .resume import resume_mismatch
from .train import fit, load_data

# The SE attention network runs at about 100 records/s once loaded, its four fold networks at about 36 (500
# PTB-XL records, docs/performance.md; the inference budget, bench/bench_entry.py: 12).
MODELS = ("cnn_attention",)
STACKING = False  # the meta-classifier lost to the plain mean in an earlier comparison
OUT_OF_FOLD_FILE = "out_of_fold.npz"
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


def assemble(data: TrainingSet, configs: list[Config], oofs: list[OutOfFold], stacking: bool,
             refits: list[Path] | None = None) -> tuple[checkpoint.SavedModel, dict]:
    """One saved model from cross-validated fold models (or, given ``refits``, from one refit network per
    architecture): members, thresholds, stacker; and its scores."""
    rows, fold_of = oofs[0].rows, oofs[0].fold_of
    if any(not (np.array_equal(o.rows, rows) and np.array_equal(o.fold_of, fold_of)) for o in oofs):
        raise ValueError("the architectures were cross-validated on different folds")
    members = []
    for i, (config, oof) in enumerate(zip(configs, oofs)):
        sources = [("all records", refits[i])] if refits else list(enumerate(oof.model_dirs, start=1))
        for fold, model_dir in sources:
            network = checkpoint.load(model_dir)
            trained = {k: network.description.get(k) for k in ("training_data", "validation", "history",
                                                           "positive_weights", "reached_maximum")}
            members.append(checkpoint.Member(config, network.members[0].state, {"fold": fold, **trained}))
    labels = data.labels[rows]
    combined, stacker = combined_out_of_fold([o.probabilities for o in oofs], labels, fold_of, stacking)
    shrink = configs[0].threshold_shrink
    thresholds, _ = tune_thresholds(combined, [data.dx[i] for i in rows], data.classes, configs[0].labels,
                                    data.mask[rows] > 0, shrink=shrink)
    saved = checkpoint.SavedModel(
        data.classes, thresholds.tolist(), members,
        None if stacker is None else {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in stacker.items()},
        [c.model for c in configs] if stacker is not None else [], auxiliary=data.auxiliary)
    summary = {"recipe": {"models": [c.model for c in configs], "folds": len(oofs[0].model_dirs),
                          "networks": "one per architecture, refit on every record" if refits else "the fold models",
                          "combination": "stacking" if stacker is not None else "mean"},
               "cross_validation": report(data, OutOfFold(rows, combined, fold_of, []), configs[0])}
    if oofs[0].reduced:  # the 2021 contract: thresholds per lead set, for the 2021 metric (team_code.py)
        by_lead_set = {"12 leads": combined, **{
            name: combined_out_of_fold([o.reduced[name] for o in oofs], labels, fold_of, stacking)[0]
            for name in oofs[0].reduced}}
        summary["thresholds_2021"] = {
            name: tune_thresholds(p, [data.dx[i] for i in rows], data.classes, "2021", data.mask[rows] > 0,
                                  shrink=shrink)[0].tolist()
            for name, p in by_lead_set.items()}
        if len(np.unique(fold_of)) > 1:
            summary["cross_validation_2021"] = report_2021(data, rows, fold_of, by_lead_set, shrink)
    return saved, summary


def save_model(model_dir: Path, saved: checkpoint.SavedModel, summary: dict, configs: list[Config],
               oofs: list[OutOfFold], data: TrainingSet, refits: list[Path] | None = None) -> None:
    """The model; beside it the out-of-fold probabilities its thresholds were tuned on and every trained
    network's training curves."""
    checkpoint.save(model_dir, saved, **summary)
    np.savez_compressed(model_dir / OUT_OF_FOLD_FILE, names=np.array(data.names)[oofs[0].rows],
                        classes=np.array(data.classes), fold=oofs[0].fold_of,
                        models=np.array([c.model for c in configs]),
                        probabilities=np.stack([o.probabilities for o in oofs]),
                        **{probabilities_key(name): np.stack([o.reduced[name] for o in oofs])
                           for name in oofs[0].reduced})
    curves = model_dir / CURVES_FOLDER
    shutil.rmtree(curves, ignore_errors=True)
    curves.mkdir()
    for i, (config, oof) in enumerate(zip(configs, oofs)):
        for fold, fold_dir in enumerate(oof.model_dirs, start=1):
            shutil.copyfile(fold_dir / "training_curves.png", curves / f"{config.model}-fold{fold}.png")
        if refits:
            shutil.copyfile(refits[i] / "training_curves.png", curves / f"{config.model}-all-records.png")


def refit(data: TrainingSet, config: Config, out_dir: Path, processes, resume: bool, data_name: str,
          folds: int) -> Path:
    """One network trained on every record for ``config.epochs`` epochs (a finished one is kept on resume);
    its seed follows those of the ``folds`` fold models."""
    if resume and (out_dir / checkpoint.MODEL_FILE).exists():
        if not checkpoint.load(out_dir).members[0].config.same_results(config):
            raise resume_mismatch(out_dir)
    else:
        fit(data, np.arange(len(data.names)), np.array([], dtype=np.int64), config, out_dir, processes, resume,
            f"{data_name} (every record)", seed=(folds, list(ARCHITECTURES).index(config.model)))
    return out_dir


def train_ensemble(train_dir, model_dir: str | Path, configs: list[Config], stacking: bool = STACKING,
                   resume: bool = False, keep_networks: bool = False) -> dict:
    """Train the recipe (``Config.folds`` and ``Config.refit``, alike in every configuration) on the records of
    ``train_dir`` (one folder or several, searched with their subfolders); save the model in ``model_dir``.
    ``keep_networks`` keeps every network trained (the fold models and the refit) in ``model_dir/WORK_FOLDER``,
    each a model folder of its own, for experiments."""
    folds, refit_all = configs[0].folds, configs[0].refit
    if any((c.folds, c.refit, c.threshold_shrink) != (folds, refit_all, configs[0].threshold_shrink) for c in configs):
        raise ValueError("the architectures' configurations set folds, refit or threshold_shrink differently: set "
                         "them alike")
    for config in configs:  # refused before any record is read
        config.check_trainable()
    processes = start_processes()
    model_dir = Path(model_dir)
    data_name = ", ".join(map(str, as_folders(train_dir)))
    datasets = [load_data(train_dir, config) for config in configs]
    if any(d.names != datasets[0].names or d.classes != datasets[0].classes for d in datasets):
        raise ValueError("the architectures' preprocessing kept different records")
    if any(d.auxiliary != datasets[0].auxiliary for d in datasets):
        raise ValueError("the architectures learn different auxiliary codes: set auxiliary_labels alike")
    oofs = [cross_validate(data, config, model_dir / WORK_FOLDER / config.model, processes,
                           resume, data_name, label=f"{config.model}: " if len(configs) > 1 else "",
                           lead_sets=config.labels == "snomed")  # the 2021 scorer reads SNOMED codes
            for data, config in zip(datasets, configs)]
    refits = [refit(data, config, model_dir / WORK_FOLDER / config.model / "all", processes, resume,
                    data_name, folds) for data, config in zip(datasets, configs)] if refit_all else None

    def assemble_and_save() -> dict:  # the others have no out-of-fold predictions, and read nothing rank 0 wrote
        saved, summary = assemble(datasets[0], configs, oofs, stacking, refits)
        save_model(model_dir, saved, summary, configs, oofs, datasets[0], refits)
        if not keep_networks:
            shutil.rmtree(model_dir / WORK_FOLDER, ignore_errors=True)
        scores = summary["cross_validation"]
        tuned = scores.get("tuned_thresholds", scores["thresholds_0.5"])
        print(f"{len(saved.members)} networks; out of fold on {scores['records']} records: "
              + (f"Challenge metric {tuned['challenge_metric']:.3f}, " if configs[0].labels == "snomed" else "")
              + f"AUROC {tuned['auroc']:.3f}, F-beta {tuned['f_beta']:.3f}, G-beta {tuned['g_beta']:.3f}",
              file=sys.stderr)
        return summary

    summary = on_rank_zero(assemble_and_save, processes, "assembling or saving the model") or {}
    if processes.world > 1:
        dist.destroy_process_group()
    return summary
