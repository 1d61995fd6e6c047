"""k-fold cross-validation: honest scores for a configuration on one folder of records.

    python -m cinc2020.crossval TRAIN_DIR OUT_DIR [--folds 5] [--labels cpsc] [--epochs N]

Records are split into k folds with multi-label stratification. For each fold a
model is trained on the other folds (its checkpoint chosen on a stratified 20 %
of those, never on the held-out fold) and predicts the held-out fold, so every
record gets one out-of-fold prediction. OUT_DIR receives the fold models
(``fold1`` ...), ``out_of_fold.npz`` (names, classes, probabilities, labels) and
``crossval.json`` (the scores, per-class record counts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from . import checkpoint
from .config import Config, config_from_environment
from .data import stratified_folds
from .inference import decide, load_model, predict_probabilities
from .scoring import score_predictions
from .train import fit, load_data, split, start_processes


def cross_validate(train_dir: str | Path, out_dir: str | Path, config: Config, folds: int = 5,
                   resume: bool = False) -> dict:
    rank, world, run_on = start_processes()
    out_dir = Path(out_dir)
    data = load_data(train_dir, config, rank, world)
    fold_of = stratified_folds(data.labels, [1.0] * folds, config.seed)
    probabilities = np.zeros(data.labels.shape)
    for fold in tqdm(range(folds), desc="folds", unit="fold", file=sys.stderr, disable=rank != 0):
        held_out = np.flatnonzero(fold_of == fold)
        rest = np.flatnonzero(fold_of != fold)
        inner_train, inner_val = split(data.labels[rest], config)
        fold_dir = out_dir / f"fold{fold + 1}"
        if not (resume and (fold_dir / checkpoint.MODEL_FILE).exists()):  # a resumed run keeps finished folds
            fit(data, rest[inner_train], rest[inner_val], config, fold_dir, (rank, world, run_on), resume,
                f"{train_dir} (cross-validation fold {fold + 1} of {folds} held out)")
        model = load_model(fold_dir)
        probabilities[held_out] = predict_probabilities(model.network, data.signals.subset(held_out), model.device)

    outputs = decide(probabilities, np.full(len(data.classes), 0.5))
    scores = score_predictions(data.dx, data.classes, outputs, probabilities, config.labels)
    report = {
        "folder": str(train_dir), "folds": folds, "records": len(data.names), "config": config.to_json(),
        "positives_per_class": dict(zip(data.classes, data.labels.sum(axis=0).astype(int).tolist())),
        "scored_classes": scores.classes,
        "thresholds": "0.5 for every class; the most probable class when none passes",
        "challenge_metric": scores.challenge_metric, "auroc": scores.auroc, "auprc": scores.auprc,
        "f_measure": scores.f_measure, "f_beta": scores.f_beta, "g_beta": scores.g_beta,
        "accuracy": scores.accuracy,
        "per_class": {c: {"auroc": a, "auprc": p, "f_measure": f} for c, a, p, f in
                      zip(scores.classes, scores.auroc_classes.tolist(), scores.auprc_classes.tolist(),
                          scores.f_measure_classes.tolist())},
    }
    if rank == 0:
        np.savez(out_dir / "out_of_fold.npz", names=np.array(data.names), classes=np.array(data.classes),
                 probabilities=probabilities, labels=data.labels, fold=fold_of)
        checkpoint.atomic_write(out_dir / "crossval.json", lambda p: p.write_text(json.dumps(report, indent=2)))
    if world > 1:
        dist.destroy_process_group()
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--labels", choices=("snomed", "cpsc"))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--resume", action="store_true", help="keep finished folds, resume the one under way")
    args = parser.parse_args(argv)
    config = config_from_environment(labels=args.labels, epochs=args.epochs)
    report = cross_validate(args.train_dir, args.out_dir, config, args.folds, args.resume)
    print(f"{report['records']} records, {args.folds}-fold cross-validation, labels {config.labels}:")
    keys = ("challenge_metric",) if config.labels == "snomed" else ()  # the Challenge metric needs SNOMED codes
    for key in keys + ("auroc", "auprc", "f_measure", "f_beta", "g_beta"):
        print(f"  {key:17s} {report[key]:.3f}")
    print("  per class: " + ", ".join(f"{c} {report['positives_per_class'][c]} records, F {v['f_measure']:.3f}"
                                      for c, v in report["per_class"].items()))


if __name__ == "__main__":
    main()
