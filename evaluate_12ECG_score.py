#!/usr/bin/env python
"""Score a Challenge 2020 entry, as the organisers' evaluate_12ECG_score.py does.

    python evaluate_12ECG_score.py LABELS OUTPUTS [scores.csv] [class_scores.csv] [--phase unofficial]
                                   [--plot FILE.png]

LABELS holds the records' .hea files, OUTPUTS the entry's .csv files. With no
file names the summary is printed; weights.csv is read from this script's folder.
--plot draws the run: per class AUROC, AUPRC and F-measure with record counts, and
the Challenge metric's class-by-class confusion.
"""

import argparse
import sys
from pathlib import Path

from cinc2020.scoring import ScoringError, class_table, read_run, score_run, summary_table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", help="folder of label files (.hea)")
    parser.add_argument("outputs", help="folder of output files (.csv)")
    parser.add_argument("scores", nargs="?", help="write the summary scores here")
    parser.add_argument("class_scores", nargs="?", help="write the per-class scores here (official phase)")
    parser.add_argument("--phase", choices=("official", "unofficial"), default="official")
    parser.add_argument("--plot", type=Path, help="draw the scored run into this PNG file")
    args = parser.parse_args(argv)
    try:
        run = read_run(args.labels, args.outputs, args.phase,
                       weights_file=Path(__file__).resolve().with_name("weights.csv"))
    except ScoringError as error:
        sys.exit(f"evaluate_12ECG_score.py: {error}")
    scores = score_run(*run)
    labels, binary = run[1], run[2]
    if args.plot is not None:
        from cinc2020.plot import save, scored_run
        title = f"{Path(args.outputs).name}: {len(labels)} records"
        save(scored_run(scores, labels, binary, title), args.plot)
    summary = summary_table(scores, args.phase)
    if args.scores is None:
        print(summary)
        return
    Path(args.scores).write_text(summary)
    if args.class_scores is not None:
        Path(args.class_scores).write_text(class_table(scores))


if __name__ == "__main__":
    main()
