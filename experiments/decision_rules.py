#!/usr/bin/env python
"""Decision rules and ensembles re-scored on saved predictions, no training (issue 39, items 2 and 3).

    python experiments/decision_rules.py WORK_DIR [--draws 1000]

WORK_DIR is ``experiments/evaluate_recipe.py``'s: the recipe trained on the development records (its
out-of-fold probabilities in ``model/out_of_fold.npz``, every network kept in ``model/folds``), each network's
probabilities on the test records (``predictions/test.npz``) and, when run, the recipe trained on one source
alone (``only-SOURCE``) with its predictions on the other (``predictions/only-SOURCE-on-others.npz``).

Every rule is tuned on the out-of-fold probabilities alone (as the recipe tunes), never on a scored record:

* per class (what ships), over the pooled records or source-balanced (the mean of the per-source Challenge
  metrics, ``decisions.source_balanced_weights``);
* one global threshold, pooled or source-balanced;
* per class shrunk halfway toward the global one;
* each with and without the most probable class when none passes.

Each is applied to the refit network, the 4 fold networks averaged, and the 4 and the refit averaged (those the
run kept); scored per source by the official scorer on the records' own labels, with the paired difference
from what the run ships with per-class thresholds (the refit where it has one, else the 4 fold networks;
bootstrap, the same draws of the same records). Writes WORK_DIR/decision_rules.json and
prints a table; parts already in that file are kept (``--again`` scores them afresh).

The 2021 contract per lead set (issue 40): thresholds tuned for the 2021 metric on each lead set's out-of-fold
probabilities (per class, and shrunk halfway toward the global; pooled and source-balanced), applied to each
ensemble's probabilities on the test records read with that set's leads, per source
(WORK_DIR/decision_rules_2021.json). A model that predates the saving of its lead sets' out-of-fold
probabilities has them predicted again by its fold networks, once (WORK_DIR/predictions/out_of_fold_lead_sets.npz).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from cinc2020.decisions import (decide, shrunk_thresholds, source_balanced_weights, tune_global_threshold,  # noqa: E402
                                tune_thresholds)
from cinc2020.intervals import paired_difference  # noqa: E402
from cinc2020.labels import label_matrix, loss_mask, source_of  # noqa: E402
from cinc2020.records import LEAD_SETS_2021, find_records, parse_header, probabilities_key  # noqa: E402
from cinc2020.scoring import score_predictions  # noqa: E402

SCHEME = "snomed"
DEVELOPMENT_FOLDERS = [ROOT.parent / "shared" / "data" / "ptbxl", ROOT.parent / "shared" / "data" / "chapman"]
ENSEMBLES = {"refit": ["refit"], "4 folds": ["fold1", "fold2", "fold3", "fold4"],
             "4 folds + refit": ["fold1", "fold2", "fold3", "fold4", "refit"]}


def development_labels(names) -> list[list[str]]:
    headers = {h.stem: h for h in find_records(DEVELOPMENT_FOLDERS)}
    return [parse_header(headers[str(n)].read_text()).dx for n in names]


def known_labels_of(dx: list[list[str]], classes: list[str], sources) -> np.ndarray:
    """Which labels the records' sources give (the recipe's tuning counts only those)."""
    return loss_mask(list(sources), dx, label_matrix(dx, classes, SCHEME), classes, SCHEME) > 0


def rules(probabilities: np.ndarray, dx: list[list[str]], classes: list[str], sources) -> dict[str, tuple]:
    """Each decision rule, tuned on these (out-of-fold) probabilities: name -> (thresholds, fallback)."""
    known = known_labels_of(dx, classes, sources)
    balanced = source_balanced_weights(dx, classes, SCHEME, sources, known) if len(set(sources)) > 1 else None
    found = {}
    for fallback in (True, False):
        suffix = "" if fallback else ", no fallback"
        for pooling, weights in (("pooled", None), ("source-balanced", balanced)):
            if pooling == "source-balanced" and weights is None:
                continue
            per_class, _ = tune_thresholds(probabilities, dx, classes, SCHEME, known, record_weights=weights,
                                           fallback=fallback)
            overall, _ = tune_global_threshold(probabilities, dx, classes, SCHEME, known, record_weights=weights,
                                               fallback=fallback)
            found[f"per class, {pooling}{suffix}"] = (per_class, fallback)
            found[f"global {overall:.2f}, {pooling}{suffix}"] = (np.full(len(classes), overall), fallback)
            found[f"per class shrunk halfway to the global, {pooling}{suffix}"] = (
                shrunk_thresholds(per_class, overall, 0.5), fallback)
    return found


def scored(dx, classes, probabilities, thresholds, fallback) -> dict:
    outputs = decide(probabilities, thresholds, fallback)
    scores = score_predictions(dx, classes, outputs, probabilities, SCHEME)
    return {"challenge": scores.challenge_metric, "auroc": scores.auroc, "outputs": outputs}


def judge(out_of_fold: Path, predictions: Path, draws: int, baseline: str = "per class, pooled") -> dict:
    """Every rule and ensemble on each source of ``predictions``, with the paired difference from what the model
    ships with the baseline rule (the refit where there is one, else the fold networks averaged)."""
    oof = np.load(out_of_fold)
    classes = [str(c) for c in oof["classes"]]
    oof_dx = development_labels(oof["names"])
    oof_sources = [source_of(str(n)) for n in oof["names"]]
    tuned = rules(oof["probabilities"].mean(axis=0), oof_dx, classes, oof_sources)
    saved = np.load(predictions)
    assert [str(c) for c in saved["classes"]] == classes
    networks = [str(n) for n in saved["networks"]]
    dx = [d.split(",") for d in saved["dx"]]
    read = ~np.isnan(saved["probabilities_12_leads"]).any(axis=(0, 2))  # records that failed are left out
    sources = np.where(read, [source_of(str(n)) for n in saved["names"]], "")
    shipped = "refit" if "refit" in networks else "4 folds"
    shipped_probabilities = saved["probabilities_12_leads"][[networks.index(m) for m in ENSEMBLES[shipped]]]
    shipped_probabilities = shipped_probabilities.mean(axis=0)
    results = {}
    for source in sorted(set(sources) - {""}):
        mine = sources == source
        chosen_dx = [d for d, m in zip(dx, mine) if m]
        ships = scored(chosen_dx, classes, shipped_probabilities[mine], *tuned[baseline])
        for ensemble, members in ENSEMBLES.items():
            if not set(members) <= set(networks):
                continue
            probabilities = saved["probabilities_12_leads"][[networks.index(m) for m in members]].mean(axis=0)[mine]
            for rule, (thresholds, fallback) in tuned.items():
                result = scored(chosen_dx, classes, probabilities, thresholds, fallback)
                key = f"{source} ({mine.sum()}) | {ensemble} | {rule}"
                results[key] = {"challenge": result["challenge"], "auroc": result["auroc"]}
                if (rule, ensemble) != (baseline, shipped):
                    results[key]["paired_difference_95"] = paired_difference(
                        chosen_dx, classes, (result["outputs"], probabilities),
                        (ships["outputs"], shipped_probabilities[mine]), SCHEME, draws=draws)["headline"]
    return results


LEAD_SET_RULES = {"per class": 0.0, "per class shrunk halfway to the global": 0.5}


def lead_set_out_of_fold(work: Path) -> Path:
    """The judge's out-of-fold probabilities read with each lead set's leads (predicted again by its fold
    networks where the model predates their saving), kept in WORK_DIR/predictions."""
    from evaluate_recipe import lead_set_out_of_fold as predicted_again

    path = work / "predictions" / "out_of_fold_lead_sets.npz"
    if not path.exists():
        development = work / "model-records"
        fold_of, by_lead_set = predicted_again(work / "model", development)
        oof = np.load(work / "model" / "out_of_fold.npz")
        np.savez_compressed(path, names=oof["names"], classes=oof["classes"], fold=fold_of,
                            **{probabilities_key(k): v for k, v in by_lead_set.items()})
    return path


def judge_lead_sets(work: Path) -> dict:
    """The 2021 contract per lead set on the test records: thresholds tuned for the 2021 metric on each lead
    set's out-of-fold probabilities by each rule (pooled, and source-balanced), applied to each ensemble's
    probabilities on the test records read with that set's leads; per source, with the ratio to 12 leads."""
    oof = np.load(lead_set_out_of_fold(work))
    classes = [str(c) for c in oof["classes"]]
    dx = development_labels(oof["names"])
    sources = [source_of(str(n)) for n in oof["names"]]
    known = known_labels_of(dx, classes, sources)
    balanced = source_balanced_weights(dx, classes, "2021", sources, known)
    saved = np.load(work / "predictions" / "test.npz")
    networks = [str(n) for n in saved["networks"]]
    test_dx = [d.split(",") for d in saved["dx"]]
    read = ~np.isnan(np.stack([saved[k] for k in saved.files if k.startswith("probabilities")])).any(axis=(0, 1, 3))
    test_sources = np.where(read, [source_of(str(n)) for n in saved["names"]], "")  # a failed record: no set
    results = {}
    for lead_set in LEAD_SETS_2021:
        slug = probabilities_key(lead_set)
        for (rule, shrink), (pooling, weights) in itertools.product(LEAD_SET_RULES.items(),
                                                                    (("pooled", None), ("source-balanced", balanced))):
            thresholds, _ = tune_thresholds(oof[slug], dx, classes, "2021", known, record_weights=weights,
                                            shrink=shrink)
            for ensemble, members in ENSEMBLES.items():
                if not set(members) <= set(networks):
                    continue
                probabilities = saved[slug][[networks.index(m) for m in members]].mean(axis=0)
                for source in sorted(set(test_sources) - {""}):
                    mine = test_sources == source
                    chosen = [d for d, m in zip(test_dx, mine) if m]
                    scores = score_predictions(chosen, classes, decide(probabilities[mine], thresholds),
                                               probabilities[mine], "2021")
                    results.setdefault(f"{source} ({mine.sum()}) | {ensemble} | {rule}, {pooling}", {})[lead_set] = \
                        scores.challenge_metric
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--again", action="store_true", help="score afresh the parts already saved")
    args = parser.parse_args(argv)
    saved = args.work_dir / "decision_rules.json"
    report = json.loads(saved.read_text()) if saved.exists() and not args.again else {}
    parts = {"test split": (args.work_dir / "model" / "out_of_fold.npz", args.work_dir / "predictions" / "test.npz")}
    for alone in sorted(args.work_dir.glob("only-*")):
        parts[f"trained on {alone.name[5:]} alone"] = (alone / "model" / "out_of_fold.npz",
                                                       args.work_dir / "predictions" / f"{alone.name}-on-others.npz")
    for part, (out_of_fold, predictions) in parts.items():
        if part not in report and out_of_fold.exists() and predictions.exists():
            report[part] = judge(out_of_fold, predictions, args.draws)
    lead_sets = args.work_dir / "decision_rules_2021.json"
    if (not lead_sets.exists() or args.again) and (args.work_dir / "predictions" / "test.npz").exists():
        lead_sets.write_text(json.dumps(judge_lead_sets(args.work_dir), indent=1))
    saved.write_text(json.dumps(report, indent=1))
    print("\nThe 2021 metric per lead set, test records: records | networks | rule: " + ", ".join(LEAD_SETS_2021))
    for key, per_set in (json.loads(lead_sets.read_text()) if lead_sets.exists() else {}).items():
        print(f"  {key}: " + ", ".join(f"{v:.3f} ({v / per_set['12 leads']:.2f}x)" for v in per_set.values()))
    for where, results in report.items():
        print(f"\n{where}: records | networks | rule: Challenge (paired difference from what ships, 95 %), AUROC")
        for key, r in results.items():
            low_high = r.get("paired_difference_95")
            print(f"  {key}: {r['challenge']:.3f}" + (f" ({low_high[0]:+.3f} to {low_high[1]:+.3f})" if low_high else "")
                  + f", {r['auroc']:.3f}")


if __name__ == "__main__":
    main()
