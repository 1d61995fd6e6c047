"""k-fold cross-validation: out-of-fold predictions for a configuration, and the fold
models that made them (which the recipe keeps as an ensemble).

    python -m cinc2020.crossval TRAIN_DIR OUT_DIR [--folds N] [--labels cpsc] [--model M] [--epochs N]

Records are split into k folds with multi-label stratification. For each fold a
model is trained on the other folds (to its last epoch by default; given a
``val_fraction``, its checkpoint is chosen on a stratified share of those, never on
the held-out fold) and predicts the held-out fold, so every record gets one
out-of-fold prediction. With one "fold", which needs a ``val_fraction``, the model
trains on the rest and its out-of-fold predictions are those of the share (which
also chose its checkpoint). The command writes the fold models (``fold1`` ...),
``out_of_fold.npz`` (names, classes, probabilities, labels, folds) and
``crossval.json`` (scores at thresholds 0.5 and with cross-validated tuned
thresholds, per-class record counts).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from . import checkpoint
from .config import CHOICES, Config, config_from_environment, given_options
from .augment import keep_leads, lead_mask
from .data import TrainingSet
from .decisions import cross_validated_outputs, decide
from .distributed import Processes, on_rank_zero, start_processes
from .inference import load_model, predict_probabilities
from .models import ARCHITECTURES
from .records import LEAD_SETS_2021
from .resume import resume_mismatch
from .scoring import score_predictions
from .splits import split, strata, stratified_folds
from .train import fit, load_data


@dataclass
class OutOfFold:
    rows: np.ndarray           # the records (rows of the training set) that were predicted out of fold
    probabilities: np.ndarray  # len(rows) x classes
    fold_of: np.ndarray        # the fold each of those rows was held out in
    model_dirs: list[Path]     # one model per fold
    # SNOMED models: per reduced 2021 lead set ("6 leads", ...), the same records read with only its leads
    reduced: dict[str, np.ndarray] = field(default_factory=dict)


class WithLeads:
    """Clean signals as a record stored with only ``leads`` reads: the others zero, the limb leads that the
    kept ones determine derived (``augment.keep_leads``); read a record at a time, like the store."""

    def __init__(self, signals, leads):
        self.signals, self.kept, self.lengths = signals, lead_mask(leads), signals.lengths

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, i: int) -> np.ndarray:
        return keep_leads(self.signals[i], self.kept)


REDUCED_LEAD_SETS = tuple(LEAD_SETS_2021)[1:]  # "6 leads" ... "2 leads"


def cross_validate(data: TrainingSet, config: Config, out_dir: str | Path, processes: Processes, resume: bool = False,
                   data_name: str = "", rows: np.ndarray | None = None, label: str = "",
                   train_only: np.ndarray | None = None, fold_seed: int | None = None,
                   lead_sets: bool = False, only_folds: list[int] | None = None) -> OutOfFold | None:
    """Train one model per fold (``config.folds``) of ``rows`` (default: every record) in ``out_dir/fold<k>``.

    ``train_only`` rows join every fold's training records and are never predicted.
    ``fold_seed`` (default ``config.seed``) draws the folds and each fold's validation
    part, so that runs with other training seeds can share one fold assignment.
    ``label`` prefixes the progress lines (say, which architecture of several). ``lead_sets``: each fold
    model also predicts its held-out records read with each reduced 2021 lead set's leads (``OutOfFold.reduced``).
    ``only_folds`` (counted from 0) trains and predicts those folds alone, of the same fold assignment: a screening
    run that costs one network (experiments/screen_unseen.py).
    Rank 0 predicts the held-out folds and returns them; other processes return None.
    """
    rows = np.arange(len(data.names)) if rows is None else np.asarray(rows)
    folds = config.folds
    extra = np.asarray([] if train_only is None else train_only, dtype=np.int64)
    if not 1 <= folds <= len(rows):
        raise ValueError(f"--folds must be between 1 and the number of records ({len(rows)}), not {folds}")
    if only_folds is not None and not (only_folds and set(only_folds) <= set(range(folds))):
        raise ValueError(f"only_folds must name folds from 0 to {folds - 1}, not {only_folds}")
    rank = processes.rank
    fold_seed = config.seed if fold_seed is None else fold_seed
    config.check_trainable(refit=False)

    def balanced(chosen: np.ndarray) -> np.ndarray:  # what the folds and validation shares keep in proportion
        return strata(data.labels[chosen], [data.sources[i] for i in chosen])

    if folds == 1:
        pool = np.concatenate([rows, extra])
        inner_train, inner_val = split(balanced(pool), config, fold_seed)
        fold_of = np.where(np.isin(rows, pool[inner_val]), 0, -1)
        plan = [(pool[inner_train], pool[inner_val], np.flatnonzero(fold_of == 0))]
    else:
        fold_of = stratified_folds(balanced(rows), [1.0] * folds, fold_seed)
        plan = []
        for fold in range(folds):
            pool = np.concatenate([rows[fold_of != fold], extra])
            inner_train, inner_val = split(balanced(pool), config, fold_seed)
            plan.append((pool[inner_train], pool[inner_val], np.flatnonzero(fold_of == fold)))
        if only_folds is not None:
            fold_of = np.where(np.isin(fold_of, only_folds), fold_of, -1)
    probabilities = np.full((len(rows), len(data.classes)), np.nan)
    reduced = {name: np.full_like(probabilities, np.nan) for name in REDUCED_LEAD_SETS} if lead_sets else {}
    model_dirs = []
    progress = tqdm(plan, desc=f"{label}folds", unit="fold", file=sys.stderr, disable=rank != 0)
    for fold, (train_rows, val_rows, held_out) in enumerate(progress):
        if only_folds is not None and fold not in only_folds:
            continue
        fold_dir = Path(out_dir) / f"fold{fold + 1}"
        if resume and (fold_dir / checkpoint.MODEL_FILE).exists():  # a resumed run keeps finished folds
            finished = checkpoint.load(fold_dir)
            if (not finished.members[0].config.same_results(config)
                    or finished.description["training_data"]["train_records"] != len(train_rows)):
                raise resume_mismatch(fold_dir)
        else:
            fit(data, train_rows, val_rows, config, fold_dir, processes, resume,
                f"{data_name} (cross-validation fold {fold + 1} of {folds})",
                seed=(fold, list(ARCHITECTURES).index(config.model)))  # each fold and architecture its own
        model_dirs.append(fold_dir)

        def predict_held_out():
            model = load_model(fold_dir)
            signals, person = data.signals.subset(rows[held_out]), data.demographics[rows[held_out]]
            probabilities[held_out] = predict_probabilities(model.networks[0], config, signals, person, model.device)
            for name, predicted in reduced.items():
                predicted[held_out] = predict_probabilities(model.networks[0], config,
                                                            WithLeads(signals, LEAD_SETS_2021[name]), person, model.device)

        on_rank_zero(predict_held_out, processes, f"predicting fold {fold + 1}'s held-out records")
    if rank != 0:
        return None
    predicted = fold_of >= 0
    return OutOfFold(rows[predicted], probabilities[predicted], fold_of[predicted], model_dirs,
                     {name: p[predicted] for name, p in reduced.items()})


def report(data: TrainingSet, oof: OutOfFold, config: Config) -> dict:
    """Out-of-fold scores at thresholds 0.5, and with thresholds tuned on the other folds (tuned on the labels
    the records' sources give, ``data.mask``), by the official scorer on the records' own labels: over every
    record, and (``per_source``) over each source's records when they come from several."""
    dx = [data.dx[i] for i in oof.rows]
    result = {"records": len(oof.rows), "folds": int(oof.fold_of.max()) + 1,
              "positives_per_class": dict(zip(data.classes, data.labels[oof.rows].sum(axis=0).astype(int).tolist()))}
    at_half = decide(oof.probabilities, np.full(len(data.classes), 0.5))
    tuned = cross_validated_outputs(oof.probabilities, dx, data.classes, config.labels, oof.fold_of,
                                    known=data.mask[oof.rows] > 0, shrink=config.threshold_shrink)[0] \
        if result["folds"] > 1 else None
    sources = np.array([data.sources[i] for i in oof.rows])
    for name, outputs in (("thresholds_0.5", at_half), ("tuned_thresholds", tuned)):
        if outputs is None:
            continue
        result[name] = scores_of(dx, data.classes, outputs, oof.probabilities, config.labels)
        if len(set(sources)) > 1:
            result[name]["per_source"] = {
                source: {"records": int((sources == source).sum()),
                         **scores_of([d for d, s in zip(dx, sources) if s == source], data.classes,
                                     outputs[sources == source], oof.probabilities[sources == source],
                                     config.labels, per_class=False)}
                for source in sorted(set(sources))}
    return result


def report_2021(data: TrainingSet, rows: np.ndarray, fold_of: np.ndarray, by_lead_set: dict[str, np.ndarray],
                shrink: float = 0.0) -> dict:
    """Per 2021 lead set, the 2021 scorer's figures of out-of-fold probabilities read with only that set's
    leads, decided with 2021 thresholds tuned for that set on the other folds: over every record and per
    source; and the 2020 answers on 12 leads (thresholds tuned for the 2020 metric on the other folds) scored
    by the 2021 scorer. ``shrink``: the tuning's (``Config.threshold_shrink``)."""
    dx, known = [data.dx[i] for i in rows], data.mask[rows] > 0
    sources = np.array([data.sources[i] for i in rows])
    result = {}
    for name, probabilities in by_lead_set.items():
        outputs = cross_validated_outputs(probabilities, dx, data.classes, "2021", fold_of, known=known,
                                          shrink=shrink)[0]
        result[name] = scores_of(dx, data.classes, outputs, probabilities, "2021", per_class=False)
        if len(set(sources)) > 1:
            result[name]["per_source"] = {
                source: scores_of([d for d, s in zip(dx, sources) if s == source], data.classes,
                                  outputs[sources == source], probabilities[sources == source], "2021",
                                  per_class=False) for source in sorted(set(sources))}
    if "12 leads" in by_lead_set:
        outputs = cross_validated_outputs(by_lead_set["12 leads"], dx, data.classes, "snomed", fold_of,
                                          known=known, shrink=shrink)[0]
        result["12 leads, the 2020 answers"] = scores_of(dx, data.classes, outputs, by_lead_set["12 leads"], "2021",
                                                         per_class=False)
    return result


def scores_of(dx: list[list[str]], classes: list[str], outputs: np.ndarray, probabilities: np.ndarray, scheme: str,
              per_class: bool = True) -> dict:
    """The official scorer's figures of outputs and probabilities on records with these labels."""
    scores = score_predictions(dx, classes, outputs, probabilities, scheme)
    result = {"challenge_metric": scores.challenge_metric, "auroc": scores.auroc, "auprc": scores.auprc,
              "f_measure": scores.f_measure, "f_beta": scores.f_beta, "g_beta": scores.g_beta,
              "accuracy": scores.accuracy}
    if per_class:
        result["per_class"] = {c: {"auroc": a, "f_measure": f} for c, a, f in
                               zip(scores.classes, scores.auroc_classes.tolist(), scores.f_measure_classes.tolist())}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_dir", nargs="+", help="folders of training records, searched with their subfolders")
    parser.add_argument("out_dir")
    parser.add_argument("--folds", type=int, help="cross-validation folds (default: Config.folds)")
    parser.add_argument("--labels", choices=CHOICES["labels"])
    parser.add_argument("--model", help="architecture (cnn_attention, crnn or se_resnet)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--resume", action="store_true", help="keep finished folds, resume the one under way")
    args = parser.parse_args(argv)
    try:
        config = config_from_environment(**given_options(labels=args.labels, model=args.model, epochs=args.epochs,
                                                         folds=args.folds))
        config.check_trainable(refit=False)  # before the records are read
    except ValueError as error:
        sys.exit(f"cinc2020.crossval: {error}")
    processes = start_processes()
    data = load_data(args.train_dir, config)
    out_dir = Path(args.out_dir)
    oof = cross_validate(data, config, out_dir, processes, args.resume, ", ".join(args.train_dir))
    if processes.rank == 0:
        result = {"folder": ", ".join(args.train_dir), "config": config.to_json(), **report(data, oof, config)}
        np.savez(out_dir / "out_of_fold.npz", names=np.array(data.names)[oof.rows], classes=np.array(data.classes),
                 probabilities=oof.probabilities, labels=data.labels[oof.rows], fold=oof.fold_of)
        checkpoint.atomic_write(out_dir / "crossval.json", lambda p: p.write_text(json.dumps(result, indent=2)))
        print(f"{result['records']} records, {args.folds}-fold cross-validation, labels {config.labels}:")
        keys = ("challenge_metric",) if config.labels == "snomed" else ()  # the Challenge metric needs SNOMED codes
        for key in keys + ("auroc", "f_measure", "f_beta", "g_beta"):
            print(f"  {key:17s} {result['thresholds_0.5'][key]:.3f} at thresholds 0.5"
                  + (f", {result['tuned_thresholds'][key]:.3f} tuned on the other folds"
                     if "tuned_thresholds" in result else ""))
        print("  per class: " + ", ".join(f"{c} {result['positives_per_class'][c]} records, "
                                          f"F {v['f_measure']:.3f}"
                                          for c, v in result["thresholds_0.5"]["per_class"].items()))
    if processes.world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
