#!/usr/bin/env python
"""How fast the training cache is built, in one process and in worker processes on every available core.

    python bench/bench_cache.py [--synthetic 1000]

Builds the cache (read, resample to 100 Hz, normalise; cinc2020/cache.py) from scratch, into a
temporary cache folder, for the 6,100 real PTB-XL records of ../shared/data/ptbxl (100 Hz, 10 s)
and for synthetic 10-s records at 500 Hz (speed only, the rate of most challenge records), once
with one process and once with every available core; prints records/s and checks that both
caches hold the same bytes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = Path(os.environ.get("CINC2020_SHARED", ROOT.parent / "shared"))

from bench_entry import write_record  # noqa: E402
from cinc2020 import cache  # noqa: E402
from cinc2020.config import Config  # noqa: E402
from cinc2020.cpus import available_cpus  # noqa: E402


def build(folder: Path, workers: int) -> tuple[float, bytes]:
    """Seconds to build the cache of ``folder`` with ``workers`` processes, and the cache's signal bytes."""
    original = cache.available_cpus
    cache.available_cpus = lambda: workers
    try:
        with tempfile.TemporaryDirectory() as scratch:
            os.environ["CINC2020_CACHE"] = scratch
            started = time.perf_counter()
            store, names, *_ = cache.cached_records(folder, Config())
            seconds = time.perf_counter() - started
            store.file.seek(0)
            return seconds, store.file.read()
    finally:
        cache.available_cpus = original


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=1000, help="synthetic 500 Hz records")
    args = parser.parse_args()
    cores = available_cpus()
    print(f"{cores} core(s) available")
    with tempfile.TemporaryDirectory() as synthetic:
        rng = np.random.default_rng(0)
        for i in range(args.synthetic):
            write_record(Path(synthetic), f"S{i:05d}", 500, 10.0, rng)
        folders = {"PTB-XL, 100 Hz": SHARED / "data" / "ptbxl", "synthetic, 500 Hz": Path(synthetic)}
        for name, folder in folders.items():
            count = len(list(folder.glob("*.hea")))
            serial_seconds, serial = build(folder, 1)
            parallel_seconds, parallel = build(folder, cores)
            print(f"{name}, {count} records: {count / serial_seconds:.0f} records/s in one process, "
                  f"{count / parallel_seconds:.0f} records/s in {cores} "
                  f"({serial_seconds / parallel_seconds:.2f}x); caches equal: {serial == parallel}")


if __name__ == "__main__":
    main()
