#!/usr/bin/env python
"""Score a Challenge 2020 entry, as the organisers' evaluate_12ECG_score.py does; or, with --phase 2021, a
2021 entry as their evaluate_model.py does.

    python evaluate_12ECG_score.py LABELS OUTPUTS [scores.csv] [class_scores.csv] [--phase unofficial|2021]
                                   [--plot FILE.png]

LABELS holds the records' .hea files, OUTPUTS the entry's .csv files. With no
file names the summary is printed; weights.csv (2021: weights_2021.csv) is read from this script's folder.
--plot draws the run: per class AUROC, AUPRC and F-measure with record counts, and
the Challenge metric's class-by-class confusion.
"""

import argparse
import sys
from pathlib import Path

from cinc2020.scorer import class_table, read_run, read_run_2021, score_run, score_run_2021, summary_table
from cinc2020.scoring import ScoringError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", help="folder of label files (.hea)")
    parser.add_argument("outputs", help="folder of output files (.csv)")
    parser.add_argument("scores", nargs="?", help="write the summary scores here")
    parser.add_argument("class_scores", nargs="?", help="write the per-class scores here (official phase)")
    parser.add_argument("--phase", choices=("official", "unofficial", "2021"), default="official",
                        help="2020's official or unofficial phase, or the 2021 challenge")
    parser.add_argument("--plot", type=Path, help="draw the scored run into this PNG file")
    args = parser.parse_args(argv)
    here = Path(__file__).resolve()
    try:
        run = read_run_2021(args.labels, args.outputs, here.with_name("weights_2021.csv")) if args.phase == "2021" \
            else read_run(args.labels, args.outputs, args.phase, weights_file=here.with_name("weights.csv"))
    except ScoringError as error:
        sys.exit(f"evaluate_12ECG_score.py: {error}")
    scores = (score_run_2021 if args.phase == "2021" else score_run)(*run)
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
