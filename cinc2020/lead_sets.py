"""How a model scores when leads are missing: the 2021 challenge's reduced-lead sets.

    python -m cinc2020.lead_sets MODEL_DIR DATA_DIR [--limit N]

Each record of DATA_DIR is read as it would be stored with only a set's leads (the
header and the signal keep those leads alone: ``records.with_leads``) and classified
exactly as the driver classifies it, with the model's own thresholds: never tuned
per lead set. Prints, per lead set, the label scheme's headline score (Challenge
metric, or F-beta for the cpsc scheme), macro AUROC and the ratio to 12 leads.
Score records the model never trained on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .inference import LoadedModel, classify, load_model
from .intervals import bootstrap_intervals
from .records import LEAD_SETS_2021, RecordError, find_records, parse_header, read_record, with_leads
from .scoring import headline, score_predictions


INTERVALS_BELOW = 1000  # records: fewer get 95 % bootstrap intervals


def labelled_records(headers: list[Path]) -> list[tuple[np.ndarray, list[str], list[str]]]:
    """(signal, header lines, #Dx entries) of each readable labelled record; the others are left out with a
    warning."""
    records = []
    for path in headers:
        try:
            data, lines = read_record(path)
            dx = parse_header(lines).dx
        except RecordError as error:
            print(f"warning: skipping {path.stem}: {error}", file=sys.stderr)
            continue
        if dx:
            records.append((data, lines, dx))
    if not records:
        raise ValueError("no readable labelled record to score")
    return records


def score_lead_sets(model: LoadedModel, headers: list[Path], lead_sets=tuple(LEAD_SETS_2021)) -> dict[str, dict]:
    """Per lead set (``lead_sets``, names of ``records.LEAD_SETS_2021``): the headline score, macro AUROC, F-beta, G-beta and records scored (unreadable records are
    left out), with 95 % bootstrap intervals of the headline and AUROC (``headline_95``, ``auroc_95``) when
    fewer than ``INTERVALS_BELOW`` records are scored."""
    scheme = model.configs[0].labels
    records = labelled_records(headers)
    results = {}
    dx_lists = [dx for *_, dx in records]
    for lead_set in lead_sets:
        leads = LEAD_SETS_2021[lead_set]
        outputs, probabilities = [], []
        for data, lines, _ in tqdm(records, desc=lead_set, unit="rec", file=sys.stderr, leave=False):
            labels, scores, _ = classify(*with_leads(data, lines, leads), model)
            outputs.append(labels)
            probabilities.append(scores)
        outputs, probabilities = np.array(outputs), np.array(probabilities)
        scores = score_predictions(dx_lists, model.classes, outputs, probabilities, scheme)
        results[lead_set] = {"headline": headline(scores, scheme), "auroc": scores.auroc, "f_beta": scores.f_beta,
                             "g_beta": scores.g_beta, "records": len(records)}
        if len(records) < INTERVALS_BELOW:
            intervals = bootstrap_intervals(dx_lists, model.classes, outputs, probabilities, scheme)
            results[lead_set] |= {"headline_95": intervals["headline"], "auroc_95": intervals["auroc"]}
    for result in results.values():
        full = results["12 leads"]["headline"]
        result["of_12_leads"] = result["headline"] / full if full > 0 else float("nan")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("data_dir")
    parser.add_argument("--limit", type=int, help="score only the first N records (sorted by name)")
    args = parser.parse_args(argv)
    model = load_model(args.model_dir)
    headers = find_records(args.data_dir)[: args.limit]
    results = score_lead_sets(model, headers)
    name = "Challenge metric" if model.configs[0].labels == "snomed" else "F-beta"
    print(f"{args.model_dir} on {results['12 leads']['records']} records of {args.data_dir}, "
          "thresholds of the model (not tuned per lead set):")
    print(f"  {'lead set':10s} {name:>16s} {'AUROC':>7s} {'of 12 leads':>12s}")
    for lead_set, result in results.items():
        print(f"  {lead_set:10s} {result['headline']:16.3f} {result['auroc']:7.3f} {result['of_12_leads']:12.2f}")


if __name__ == "__main__":
    main()
