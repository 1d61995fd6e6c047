#!/usr/bin/env python
"""What counting a label a source never gives as neither hit nor miss does to the tuned thresholds (issue 32).

    python experiments/unknown_labels.py [MODEL_DIR] [TRAIN_DIR ...]

Reads a model's out-of-fold probabilities (``recipe.OUT_OF_FOLD_FILE``) and its training records' labels,
tunes thresholds on the other folds twice (``decisions.cross_validated_outputs``): blind, every label
taken as given, and aware, the labels the records' sources do not give (``labels.loss_mask``) counting neither
as a hit nor as a miss, as training does. Prints the official scorer's figures of each, on the records' own
labels, over all records and per source. Defaults: model/ and the two development folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cinc2020.checkpoint import load  # noqa: E402
from cinc2020.data import load_training_set  # noqa: E402
from cinc2020.recipe import OUT_OF_FOLD_FILE  # noqa: E402
from cinc2020.scoring import score_predictions  # noqa: E402
from cinc2020.decisions import cross_validated_outputs  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    model_dir = Path(argv[0]) if argv else ROOT / "model"
    folders = [Path(a) for a in argv[1:]] or [DATA / "ptbxl", DATA / "chapman"]
    saved = np.load(model_dir / OUT_OF_FOLD_FILE)
    config = load(model_dir).members[0].config
    data = load_training_set(folders, config, classes=list(saved["classes"]))
    row = {name: i for i, name in enumerate(data.names)}
    rows = np.array([row[str(name)] for name in saved["names"]])
    probabilities = saved["probabilities"].mean(axis=0)
    dx, classes, known = [data.dx[i] for i in rows], list(saved["classes"]), data.mask[rows] > 0
    sources = np.array([data.sources[i] for i in rows])
    print(f"{len(rows)} out-of-fold records of {model_dir}; {int((~known).sum())} labels unknown to their source; "
          "official scorer on the records' own labels, thresholds tuned on the other folds")
    for view, mask in (("blind", None), ("aware", known)):
        outputs = cross_validated_outputs(probabilities, dx, classes, config.labels, saved["fold"], known=mask)[0]
        for source in ["all", *sorted(set(sources))]:
            chosen = np.ones(len(rows), dtype=bool) if source == "all" else sources == source
            scores = score_predictions([d for d, c in zip(dx, chosen) if c], classes, outputs[chosen],
                                       probabilities[chosen], config.labels)
            headline = f"Challenge {scores.challenge_metric:.3f}" if config.labels == "snomed" else \
                f"F-beta {scores.f_beta:.3f}, G-beta {scores.g_beta:.3f}"
            print(f"  {view:5s} {source:18s} {chosen.sum():5d} records: {headline}, F {scores.f_measure:.3f}")


if __name__ == "__main__":
    main()
