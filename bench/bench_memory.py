#!/usr/bin/env python
"""Peak memory of training as the data set grows: the PTB-XL records of ../shared/data/ptbxl,
then the same records 4 times over under other names (real signals, repeated only to make volume).

    python bench/bench_memory.py [--copies 1 4] [--epochs 1]

Each size runs train_model.py in a fresh process with an empty preprocessing cache, so the
figure includes building the cache; it prints records, seconds and peak resident memory.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CINC2020_SHARED", ROOT.parent / "shared"))


def peak_of_child(command: list[str], env: dict) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one child process, measured by a fresh helper process."""
    probe = ("import resource, subprocess, sys, json, time; t = time.time(); "
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(json.dumps([time.time() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))")
    out = subprocess.run([sys.executable, "-c", probe, *command], env=env, check=True,
                         capture_output=True, text=True).stdout
    seconds, peak = json.loads(out)
    return seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    ptbxl = SHARED / "data" / "ptbxl"
    names = sorted(p.stem for p in ptbxl.glob("*.hea"))
    for copies in args.copies:
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            records = work / "records"
            records.mkdir()
            for copy in range(copies):
                for name in names:
                    alias = f"{name}_{copy}"
                    header = (ptbxl / f"{name}.hea").read_text().replace(name, alias)
                    (records / f"{alias}.hea").write_text(header)
                    os.symlink(ptbxl / f"{name}.mat", records / f"{alias}.mat")
            env = {**os.environ, "CINC2020_CACHE": str(work / "cache"),
                   "CINC2020_CONFIG": json.dumps({"epochs": args.epochs, "val_fraction": 0.2})}
            seconds, peak = peak_of_child([sys.executable, str(ROOT / "train_model.py"), str(records),
                                           str(work / "model"), "--folds", "1", "--no-refit"], env)  # one network
            print(f"{copies * len(names):6d} records: {args.epochs} epoch(s) with cache build {seconds:6.0f} s, "
                  f"peak RSS {peak:6.0f} MiB")


if __name__ == "__main__":
    main()
