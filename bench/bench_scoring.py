#!/usr/bin/env python
"""Seconds to score 20,000 records x 24 classes, from arrays and from files; and, given the organisers' 2021
scorer (../shared/challenge/2021), 20,000 records x 26 classes by theirs and by ours (--phase 2021), in one run.

Synthetic labels and outputs (random, ~2 labels a record): this measures speed only.
    python bench/bench_scoring.py [--records 20000]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cinc2020.scorer import evaluate_directories, read_run_2021, score_run_2021  # noqa: E402
from cinc2020.scoring import WEIGHTS_2021_FILE, load_weights, score_official  # noqa: E402

OFFICIAL_2021 = Path(__file__).resolve().parents[2] / "shared" / "challenge" / "2021"


def write_run(folder: Path, classes: list[str], labels: np.ndarray, outputs: np.ndarray, scores: np.ndarray):
    label_dir, output_dir = folder / "labels", folder / "outputs"
    label_dir.mkdir()
    output_dir.mkdir()
    for i in range(len(labels)):
        name = f"R{i:06d}"
        dx = ",".join(c.split("|")[0] for c, v in zip(classes, labels[i]) if v) or "164865005"
        (label_dir / f"{name}.hea").write_text(f"{name} 12 500 5000\n#Dx: {dx}\n")
        (output_dir / f"{name}.csv").write_text(
            f"#{name}\n{','.join(classes)}\n{','.join(str(int(v)) for v in outputs[i])}\n"
            f"{','.join(f'{v:.6f}' for v in scores[i])}\n")
    return label_dir, output_dir


def synthetic(records: int, classes: list[str]):
    rng = np.random.default_rng(0)
    labels = rng.random((records, len(classes))) < 2 / len(classes)
    scores = np.clip(labels * 0.4 + rng.random(labels.shape) * 0.6, 0, 1)
    return labels, scores > 0.5, scores


def compare_2021(records: int) -> None:
    """Ours against the organisers' evaluate_model(), unchanged, in a folder holding their table."""
    classes = load_weights(WEIGHTS_2021_FILE)[0]
    with tempfile.TemporaryDirectory() as folder:
        label_dir, output_dir = write_run(Path(folder), classes, *synthetic(records, classes))
        started = time.perf_counter()
        ours = score_run_2021(*read_run_2021(label_dir, output_dir))
        ours_seconds = time.perf_counter() - started
        scratch = Path(folder) / "official"
        scratch.mkdir()
        for name in ("evaluate_model.py", "helper_code.py", "weights.csv"):
            shutil.copy(OFFICIAL_2021 / name, scratch)
        sys.path.insert(0, str(scratch))
        here = os.getcwd()
        os.chdir(scratch)
        try:
            import evaluate_model
            started = time.perf_counter()
            theirs = evaluate_model.evaluate_model(str(label_dir), str(output_dir))[-1]
            theirs_seconds = time.perf_counter() - started
        finally:
            os.chdir(here)
    print(f"2021, {records} x {len(classes)} from files: ours {ours_seconds:.2f} s, the organisers' {theirs_seconds:.2f} s "
          f"({theirs_seconds / ours_seconds:.1f}x); Challenge metric {ours.challenge_metric:.6f} against {theirs:.6f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    classes, weights = load_weights()
    labels, outputs, scores = synthetic(args.records, classes)

    started = time.perf_counter()
    result = score_official(labels, outputs, scores, classes, weights)
    from_arrays = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        label_dir, output_dir = write_run(Path(folder), classes, labels, outputs, scores)
        started = time.perf_counter()
        from_files = evaluate_directories(label_dir, output_dir)
        files_seconds = time.perf_counter() - started

    print(f"records x classes        {args.records} x {len(classes)} (synthetic)")
    print(f"from arrays              {from_arrays:.3f} s   (Challenge metric {result.challenge_metric:.4f})")
    print(f"from files (read+score)  {files_seconds:.3f} s   (Challenge metric {from_files.challenge_metric:.4f})")
    if OFFICIAL_2021.is_dir():
        compare_2021(args.records)


if __name__ == "__main__":
    main()
