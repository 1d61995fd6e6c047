#!/usr/bin/env python
"""A rehearsal of the challenge's full training data on these cores (issue 33): time and memory, never quality.

    python bench/bench_full_data.py [--scratch /tmp/cinc2020-full-data] [--records-trained 1000] [--scale 1]

Writes once, to a scratch folder, a corpus shaped like the 2020 training set: per source its record count,
sampling rate and lengths (CPSC 6,877 and CPSC-Extra 3,453 at 500 Hz, 6-60 s with a tail to 144 s; INCART
74 at 257 Hz, 30 min; PTB 516 at 1000 Hz, about 2 min; PTB-XL 21,837 and Georgia 10,344 at 500 Hz, 10 s),
labels drawn per source with the official counts of dx_mapping_scored.csv, signals cut from real records of
../shared/data (resampled to the source's rate and repeated end to end). Then it measures and prints:

* the cache build (every record read, resampled to 100 Hz, cleaned): seconds and size;
* the input pipeline alone (``batches.TrainingBatches``): records/s from one process, what one loader worker gives;
* training: seconds per 1,000 training records (one epoch over ``--records-trained`` records drawn from the
  corpus, lengths as they come), extrapolated to the default recipe over all 43,101 records, and the
  training process's peak resident memory;
* threshold tuning on 43,101 records x the scored classes (the corpus's labels, made-up probabilities);
* the driver on the 74 records of 30 minutes: seconds a record.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.io import savemat
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cinc2020.config import Config  # noqa: E402

SHARED = Path(os.environ.get("CINC2020_SHARED", ROOT.parent / "shared"))
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# (name prefix, records, sampling rate, lengths in seconds: a function of the generator and a count)
SOURCES = {
    "CPSC": ("A", 6877, 500, lambda rng, n: np.clip(rng.lognormal(np.log(15), 0.45, n), 6, 144)),
    "CPSC-Extra": ("Q", 3453, 500, lambda rng, n: np.clip(rng.lognormal(np.log(15), 0.45, n), 6, 144)),
    "StPetersburg": ("I", 74, 257, lambda rng, n: np.full(n, 1800.0)),
    "PTB": ("S", 516, 1000, lambda rng, n: np.clip(rng.normal(110, 15, n), 32, 120)),
    "PTB-XL": ("HR", 21837, 500, lambda rng, n: np.full(n, 10.0)),
    "Georgia": ("E", 10344, 500, lambda rng, n: np.full(n, 10.0)),
}
# the default recipe's passes over the records: each fold model trains on (folds - 1) / folds of them, then a
# refit (if any) on all
RECIPE_PASSES = Config().epochs * (Config().folds - 1 + Config().refit)


def counts(scale: float) -> dict[str, int]:
    return {source: max(1, round(spec[1] * scale)) for source, spec in SOURCES.items()}


def draw_labels(rng, scale: float) -> dict[str, list[list[str]]]:
    """Each source's records' #Dx codes, with the official per-source counts (times ``scale``; CPSC's sinus
    rhythm only on records with no other class, as CPSC writes it)."""
    rows = list(csv.DictReader((ROOT / "dx_mapping_scored.csv").open()))
    labels = {}
    for source, count in counts(scale).items():
        codes: list[list[str]] = [[] for _ in range(count)]
        for row in sorted(rows, key=lambda r: r["SNOMED CT Code"] == "426783006"):
            pool = [i for i in range(count) if not codes[i]] if (source, row["SNOMED CT Code"]) == \
                ("CPSC", "426783006") else range(count)
            for i in rng.choice(pool, min(len(pool), round(int(row[source]) * scale)), replace=False):
                codes[i].append(row["SNOMED CT Code"])
        labels[source] = [c or ["164865005"] for c in codes]  # an unscored code: no record goes unlabelled
    return labels


def base_signals(rng, count: int = 40) -> list[tuple[np.ndarray, float]]:
    """Real records' ADC values and rates: Chapman-Shaoxing's (500 Hz) and PTB-XL's (100 Hz)."""
    from cinc2020.records import find_records
    from cinc2020.records import parse_header, read_record
    headers = find_records(SHARED / "data" / "chapman")[:count // 2] + find_records(SHARED / "data" / "ptbxl")[:count // 2]
    signals = []
    for header in headers:
        data, lines = read_record(header)
        signals.append((np.asarray(data, dtype=np.float64), parse_header(lines).fs))
    return signals


def write_corpus(scratch: Path, scale: float, seed: int = 0) -> None:
    marker = scratch / "WRITTEN"
    if marker.exists():
        if json.loads(marker.read_text()) != counts(scale):
            raise SystemExit(f"{scratch} holds a corpus of another --scale: name another --scratch")
        return
    rng = np.random.default_rng(seed)
    labels = draw_labels(rng, scale)
    bases = base_signals(rng)
    resampled: dict[tuple[int, int], np.ndarray] = {}
    from tqdm import tqdm
    for source, count in counts(scale).items():
        prefix, _, fs, lengths = SOURCES[source]
        folder = scratch / source
        folder.mkdir(parents=True, exist_ok=True)
        for i, seconds in enumerate(tqdm(lengths(rng, count), desc=f"writing {source}", file=sys.stderr)):
            b = int(rng.integers(len(bases)))
            if (b, fs) not in resampled:
                data, base_fs = bases[b]
                resampled[b, fs] = resample_poly(data, fs, int(base_fs), axis=1)
            base = resampled[b, fs]
            n = int(seconds * fs)
            data = np.tile(base, (1, n // base.shape[1] + 1))[:, :n]
            name = f"{prefix}{i + 1:05d}"
            savemat(folder / f"{name}.mat", {"val": np.clip(data, -32768, 32767).astype(np.int16)}, format="4")
            lines = [f"{name} 12 {fs} {n}"] + [f"{name}.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in LEADS]
            lines += [f"#Age: {int(rng.integers(18, 90))}", f"#Sex: {rng.choice(['Male', 'Female'])}",
                      f"#Dx: {','.join(labels[source][i])}"]
            (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    marker.write_text(json.dumps(counts(scale)))


def stage(name: str, scratch: Path, records_trained: int) -> dict:
    """One measurement, run in a process of its own (``--stage``) so that its memory is its own."""
    import torch
    from cinc2020.batches import TrainingBatches
    from cinc2020.distributed import start_processes
    from cinc2020.train import fit, load_data
    config = Config(epochs=1)
    started = time.perf_counter()
    data = load_data(scratch, config)
    if name == "cache":
        return {"seconds": time.perf_counter() - started, "records": len(data.names)}
    if name == "pipeline":
        batches = TrainingBatches(data, np.arange(len(data.names)), config, [0], 0, 1)
        started, records = time.perf_counter(), 0
        for k in range(min(100, len(batches.batches(1)))):
            records += len(batches[1, k][1])
        return {"records_per_second": records / (time.perf_counter() - started)}
    rows = np.sort(np.random.default_rng(0).choice(len(data.names), min(records_trained, len(data.names)),
                                                   replace=False))
    with tempfile.TemporaryDirectory() as out:
        summary = fit(data, rows, np.array([], dtype=np.int64), config, out, start_processes())
    return {"seconds": summary["history"][0]["seconds"], "records": len(rows), "threads": torch.get_num_threads()}


def measure_in_child(name: str, args, env: dict) -> tuple[dict, float]:
    """``stage`` in a fresh process: its result and the peak resident memory of the children so far (MiB)."""
    run = subprocess.run([sys.executable, __file__, "--stage", name, "--scratch", str(args.scratch),
                          "--records-trained", str(args.records_trained)], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1]), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "cinc2020-full-data")
    parser.add_argument("--records-trained", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=1.0, help="a share of every source's records (a quick try)")
    parser.add_argument("--stage", choices=("cache", "pipeline", "train"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.scratch, args.records_trained)))
        return
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"synthetic corpus in {args.scratch} (time and memory only)")
    started = time.time()
    write_corpus(args.scratch, args.scale)
    print(f"corpus: {sum(counts(args.scale).values()):,} records, written in {time.time() - started:.0f} s "
          "(0 when it was there)")

    with tempfile.TemporaryDirectory() as cache:
        env = {"CINC2020_CACHE": cache}
        built, _ = measure_in_child("cache", args, env)
        size = sum(p.stat().st_size for p in Path(cache).rglob("*") if p.is_file())
        print(f"cache build: {built['records']:,} records in {built['seconds']:.0f} s "
              f"({built['records'] / built['seconds']:.0f} records/s), {size / 2**30:.2f} GiB")
        pipeline, _ = measure_in_child("pipeline", args, env)
        print(f"input pipeline: {pipeline['records_per_second']:.0f} records/s from one process (100 batches read "
              "from the cache, cropped, augmented, normalised, collated; no training): what one loader worker gives")
        trained, peak = measure_in_child("train", args, env)
    per_1000 = trained["seconds"] / trained["records"] * 1000
    recipe_hours = per_1000 * built["records"] / 1000 * RECIPE_PASSES / 3600
    print(f"training: one epoch over {trained['records']:,} corpus records (the default configuration, "
          f"{trained['threads']} threads): {trained['seconds']:.1f} s, {per_1000:.1f} s per 1,000 records; "
          f"extrapolated, the default recipe over {built['records']:,} records ({RECIPE_PASSES:.0f} passes) about "
          f"{recipe_hours:.1f} hours on these cores; peak RSS of the measuring processes {peak:.0f} MiB")

    from cinc2020.records import find_records
    from cinc2020.scorer import read_dx
    from cinc2020.scoring import load_weights
    from cinc2020.decisions import tune_thresholds
    dx = [read_dx(h) for h in find_records(args.scratch)]
    classes = load_weights()[0]
    from cinc2020.labels import label_matrix
    truth = label_matrix(dx, classes, "snomed")
    probabilities = np.clip(0.4 * truth + np.random.default_rng(1).uniform(0, 0.6, truth.shape), 0, 1)
    started = time.perf_counter()
    tune_thresholds(probabilities, dx, classes, "snomed")
    print(f"threshold tuning: {len(dx):,} records x {len(classes)} classes in {time.perf_counter() - started:.1f} s")

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        run = subprocess.run([sys.executable, str(ROOT / "driver.py"), str(ROOT / "model"),
                              str(args.scratch / "StPetersburg"), out], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
    long = counts(args.scale)["StPetersburg"]
    print(f"driver: the {long} records of 30 minutes (257 Hz) in {seconds:.0f} s whole run, "
          f"{seconds / long:.2f} s a record; its own line: {run.stdout.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
