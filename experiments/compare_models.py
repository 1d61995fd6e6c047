#!/usr/bin/env python
"""Two trained models compared out of fold on the records both were cross-validated on, per source.

    python experiments/compare_models.py OLD_MODEL_DIR NEW_MODEL_DIR [--draws 1000]

Each model's out-of-fold probabilities (``out_of_fold.npz``) are decided as its recipe decided them: thresholds
tuned on its other folds, shrunk as its ``threshold_shrink`` says (0 where the model predates it). Both are
scored per source by the official scorer on the records' own labels (``../shared/data/ptbxl``, ``chapman``), with the paired
difference NEW - OLD (bootstrap, the same draws of the same records). The records must be the same; the folds
need not be. This is how a retrained ``model/`` is checked against the one it replaces on the sources it
trained on (issue 39: the two-source test split is the judge's, this is the cheaper check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from cinc2020.decisions import cross_validated_outputs  # noqa: E402
from cinc2020.intervals import paired_difference  # noqa: E402
from cinc2020.labels import source_of  # noqa: E402
from cinc2020.scoring import score_predictions  # noqa: E402
from decision_rules import SCHEME, development_labels, known_labels_of  # noqa: E402


def decided(model_dir: Path) -> tuple[list[str], list[str], list[list[str]], np.ndarray, np.ndarray]:
    """(names, classes, labels, outputs, probabilities) of a model's out-of-fold predictions, as its recipe
    decided them."""
    saved = np.load(model_dir / "out_of_fold.npz")
    config = json.loads((model_dir / "model.json").read_text())["members"][0]["config"]
    names, classes = [str(n) for n in saved["names"]], [str(c) for c in saved["classes"]]
    probabilities = saved["probabilities"].mean(axis=0)
    dx = development_labels(names)
    known = known_labels_of(dx, classes, [source_of(n) for n in names])
    outputs = cross_validated_outputs(probabilities, dx, classes, SCHEME, saved["fold"], known=known,
                                      shrink=config.get("threshold_shrink", 0.0))[0]
    return names, classes, dx, outputs, probabilities


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args(argv)
    old_names, classes, dx, old_outputs, old_probabilities = decided(args.old)
    new_names, new_classes, _, new_outputs, new_probabilities = decided(args.new)
    if sorted(old_names) != sorted(new_names) or classes != new_classes:
        raise SystemExit("the two models were cross-validated on other records or classes")
    order = [new_names.index(n) for n in old_names]
    new_outputs, new_probabilities = new_outputs[order], new_probabilities[order]
    sources = np.array([source_of(n) for n in old_names])
    print("source (records): Challenge old -> new (paired difference, 95 %), AUROC old -> new")
    for source in ["all", *sorted(set(sources))]:
        chosen = np.ones(len(sources), dtype=bool) if source == "all" else sources == source
        chosen_dx = [d for d, c in zip(dx, chosen) if c]
        old = score_predictions(chosen_dx, classes, old_outputs[chosen], old_probabilities[chosen], SCHEME)
        new = score_predictions(chosen_dx, classes, new_outputs[chosen], new_probabilities[chosen], SCHEME)
        low, high = paired_difference(chosen_dx, classes, (new_outputs[chosen], new_probabilities[chosen]),
                                      (old_outputs[chosen], old_probabilities[chosen]), SCHEME,
                                      draws=args.draws)["headline"]
        print(f"{source} ({chosen.sum():,}): {old.challenge_metric:.3f} -> {new.challenge_metric:.3f} "
              f"({low:+.3f} to {high:+.3f}), AUROC {old.auroc:.3f} -> {new.auroc:.3f}")


if __name__ == "__main__":
    main()
