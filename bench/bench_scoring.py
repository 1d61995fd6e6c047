#!/usr/bin/env python
"""Seconds to score 20,000 records x 24 classes, from arrays and from files.

Synthetic labels and outputs (random, ~2 labels a record): this measures speed only.
    python bench/bench_scoring.py [--records 20000]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cinc2020.scoring import evaluate_directories, load_weights, score_official  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    classes, weights = load_weights()
    rng = np.random.default_rng(0)
    labels = rng.random((args.records, len(classes))) < 2 / len(classes)
    scores = np.clip(labels * 0.4 + rng.random(labels.shape) * 0.6, 0, 1)
    outputs = scores > 0.5

    started = time.perf_counter()
    result = score_official(labels, outputs, scores, classes, weights)
    from_arrays = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        label_dir, output_dir = Path(folder, "labels"), Path(folder, "outputs")
        label_dir.mkdir()
        output_dir.mkdir()
        for i in range(args.records):
            name = f"R{i:06d}"
            dx = ",".join(c for c, v in zip(classes, labels[i]) if v) or "164865005"
            (label_dir / f"{name}.hea").write_text(f"{name} 12 500 5000\n#Dx: {dx}\n")
            (output_dir / f"{name}.csv").write_text(
                f"#{name}\n{','.join(classes)}\n{','.join(str(int(v)) for v in outputs[i])}\n"
                f"{','.join(f'{v:.6f}' for v in scores[i])}\n")
        started = time.perf_counter()
        from_files = evaluate_directories(label_dir, output_dir)
        files_seconds = time.perf_counter() - started

    print(f"records x classes        {args.records} x {len(classes)} (synthetic)")
    print(f"from arrays              {from_arrays:.3f} s   (Challenge metric {result.challenge_metric:.4f})")
    print(f"from files (read+score)  {files_seconds:.3f} s   (Challenge metric {from_files.challenge_metric:.4f})")


if __name__ == "__main__":
    main()
