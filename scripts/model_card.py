#!/usr/bin/env python
"""The figures of a model's card, read from its model.json alone: python scripts/model_card.py MODEL_DIR

Prints, as Markdown, the out-of-fold scores (thresholds tuned on the other folds; over every record and per
source) and the per-class table (records, threshold, out-of-fold AUROC and F-measure), so that a model card
quotes what the model says of itself and nothing a retrain leaves stale.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def abbreviations() -> dict[str, str]:
    rows = csv.DictReader((ROOT / "dx_mapping_scored.csv").open())
    return {row["SNOMED CT Code"]: row["Abbreviation"] for row in rows}


def main(argv=None):
    model_dir = Path((argv or sys.argv[1:] or ["model"])[0])
    document = json.loads((model_dir / "model.json").read_text())
    cv = document["cross_validation"]
    tuned = cv["tuned_thresholds"]
    snomed = document["members"][0]["config"]["labels"] == "snomed"
    heads = (["Challenge"] if snomed else []) + ["AUROC", "F-beta", "G-beta", "F-measure"]
    keys = (["challenge_metric"] if snomed else []) + ["auroc", "f_beta", "g_beta", "f_measure"]
    print(f"Out of fold, {cv['folds']} folds, thresholds tuned on the other folds:\n")
    print("| records | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    rows = [(f"all {cv['records']:,}", tuned)] + [(f"{source} {r['records']:,}", r)
                                                  for source, r in tuned.get("per_source", {}).items()]
    for name, r in rows:
        print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    names = abbreviations()
    print("\n| class | " + ("SNOMED CT | " if snomed else "") + "records | threshold | AUROC | F-measure |")
    print("|---|" + ("---|" if snomed else "") + "---|---|---|---|")
    for c, threshold in zip(document["classes"], document["thresholds"]):
        per_class = tuned["per_class"].get(c, {})
        shown = "never" if threshold > 1 else f"{threshold:.2f}"
        print(f"| {names.get(c, c)} | " + (f"{c} | " if snomed else "") + f"{cv['positives_per_class'][c]:,} | "
              f"{shown} | {per_class.get('auroc', float('nan')):.3f} | {per_class.get('f_measure', float('nan')):.3f} |")


if __name__ == "__main__":
    main()
