#!/usr/bin/env python
"""How a record's probabilities drift when it is longer than the training crop (issue 33, item 6).

    python experiments/long_records.py [--model model] [--records 40] [--minutes 2 10 30] [--ways whole mean max]

A record's rhythm and morphology do not change by being longer, so a development record repeated
end to end to 2, 10 and 30 minutes should get about its own 10-s probabilities. For each way of
predicting a long record (``inference.LONG_RECORDS``: the whole record at once, or pieces of the
training crop combined by their mean or max per class) this prints how far the long record's
probabilities move from the 10-s record's (mean and 95th percentile of the absolute difference over
records and classes) and how many of the model's 0/1 answers change, and the seconds a 30-minute
record takes. Records: the first ``--records`` development records of each development source
(PTB-XL and Chapman-Shaoxing, the first 80 % of ``splits.development_and_test``), never the fixtures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cinc2020.data import load_training_set  # noqa: E402
from cinc2020.splits import development_and_test  # noqa: E402
from cinc2020.decisions import decide  # noqa: E402
from cinc2020.inference import load_model, predict_probabilities  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MINUTES = (2, 10, 30)
WAYS = ("whole", "mean", "max")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "model")
    parser.add_argument("--records", type=int, default=40, help="development records of each source")
    parser.add_argument("--minutes", type=float, nargs="+", default=MINUTES,
                        help="lengths to repeat each record to (a record ends after its last whole repeat)")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=WAYS)
    args = parser.parse_args(argv)
    model = load_model(args.model)
    network, config = model.networks[0], model.configs[0]
    data = load_training_set([DATA / "ptbxl", DATA / "chapman"], config)
    development, _ = development_and_test(data.names, data.dx)
    sources = np.array(data.sources)
    rows = np.concatenate([development[sources[development] == s][: args.records] for s in sorted(set(sources))])
    signals = [data.signals[i] for i in rows]
    people = data.demographics[rows]
    base = predict_probabilities(network, config, signals, people, model.device)
    answers = decide(base, model.thresholds)
    print(f"{len(rows)} development records ({', '.join(f'{(sources[rows] == s).sum()} {s}' for s in sorted(set(sources)))}"
          f"), model {args.model}, pieces of {config.train_crop_s:.0f} s")
    print(f"{'way':6s} {'minutes':>7s} {'mean |dp|':>10s} {'p95 |dp|':>9s} {'answers changed':>16s} {'s / record':>10s}")
    for way in args.ways:
        for minutes in args.minutes:
            repeats = [np.tile(s, int(np.ceil(minutes * 60 * config.fs / s.shape[1]))) for s in signals]
            started = time.perf_counter()
            long = predict_probabilities(network, config, repeats, people, model.device, long_records=way)
            seconds = (time.perf_counter() - started) / len(rows)
            drift = np.abs(long - base)
            changed = (decide(long, model.thresholds) != answers).any(axis=1).mean()
            print(f"{way:6s} {minutes:7g} {drift.mean():10.4f} {np.percentile(drift, 95):9.4f} "
                  f"{changed:15.1%} {seconds:10.2f}")


if __name__ == "__main__":
    main()
