#!/usr/bin/env python
"""The entry's speed on an idle machine and beside another busy PyTorch process.

    python bench/bench_threads.py [--records 600] [--train-records 1000]

Starts its own competing load (a PyTorch process multiplying matrices on 2 threads,
with PyTorch's default, spinning, OpenMP waits) and measures, idle and beside it:

  * driver.py over real PTB-XL records (../shared/data/ptbxl, 100 Hz, 10 s): records/s once loaded;
  * one training epoch of the shipped architecture (batch 20) over the first --train-records
    training records of the PTB-XL stratified split: seconds;

for the thread policies compared: the entry's (cinc2020/cpus.py: PyTorch's OpenMP waits, one thread
for the driver, every available core for training), passive waits (the entry's earlier policy),
and every core for the driver.
Prints the cores this process may use and the threads the entry chose. With --image TAG it also
runs the driver in that image under `podman run --cpus=1` (bash scripts/container.sh build makes
it) and prints what the entry chose there and its speed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = Path(os.environ.get("CINC2020_SHARED", ROOT.parent / "shared"))

LOAD = """
import torch
torch.set_num_threads(2)
a = torch.randn(384, 384)
while True:
    a = torch.tanh(a @ a)
"""

EPOCH = """
import sys
sys.path.insert(0, "bench")
from bench_entry import training_epoch
from cinc2020.recipe import MODELS
from cinc2020.distributed import start_processes
print(training_epoch(sys.argv[1], MODELS[0], start_processes(), int(sys.argv[2]))[0])
"""

from bench_entry import time_driver  # noqa: E402

POLICIES = {  # name: environment
    "entry (PyTorch's waits; driver 1 thread, training all)": {},
    "passive waits (the entry's earlier policy)": {"OMP_WAIT_POLICY": "PASSIVE"},
    f"PyTorch's waits, {os.cpu_count()} threads for the driver": {"OMP_NUM_THREADS": str(os.cpu_count())},
}


def environment(changes: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "CINC2020_CONFIG")}
    return {**env, **changes}


def epoch_seconds(records: int, changes: dict) -> float:
    run = subprocess.run([sys.executable, "-c", EPOCH, str(SHARED / "data" / "ptbxl"), str(records)],
                         check=True, capture_output=True, text=True, env=environment(changes), cwd=ROOT)
    return float(run.stdout.strip().splitlines()[-1])


def in_image(tag: str, records: list[Path]) -> None:
    """The driver and the training thread choice inside the image, limited to one CPU by its cgroup."""
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as out:
        for header in records:
            for suffix in (".hea", ".mat"):
                (Path(folder) / (header.stem + suffix)).write_bytes(header.with_suffix(suffix).read_bytes())
        os.chmod(folder, 0o755)  # the image runs as its own user
        os.chmod(out, 0o777)
        run = ["podman", "run", "--rm", "--cpus=1", "--network", "none", "-v", f"{folder}:/data:ro",
               "-v", f"{out}:/out", tag]
        driver = subprocess.run(run + ["python", "driver.py", "model", "/data", "/out"], check=True,
                                capture_output=True, text=True).stdout.strip().splitlines()
        training = subprocess.run(run + ["python", "-c", "from cinc2020.cpus import describe, training_threads, "
                                         "use_threads; use_threads(training_threads()); print(describe())"],
                                  check=True, capture_output=True, text=True).stdout.strip()
    print(f"in image {tag} with --cpus=1, {len(records)} PTB-XL records:")
    print(f"  driver: {next(line for line in driver if line.startswith('Computing on'))} {driver[-1]}")
    print(f"  training would compute on {training}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=600, help="PTB-XL records for the driver")
    parser.add_argument("--train-records", type=int, default=1000, help="PTB-XL records for the training epoch")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--image", help="also run the driver in this podman image under --cpus=1")
    parser.add_argument("--skip-host", action="store_true", help="only the --image run")
    args = parser.parse_args()
    from cinc2020.cpus import describe, inference_threads, training_threads, use_threads
    use_threads(training_threads())
    print(f"this process: {describe()}; the entry would classify on {inference_threads()} "
          f"thread(s) and train on {training_threads()}")
    ptbxl = sorted((SHARED / "data" / "ptbxl").glob("*.hea"))[: args.records]
    if args.image:
        in_image(args.image, ptbxl)
    if args.skip_host:
        return
    with tempfile.TemporaryDirectory() as folder:
        for header in ptbxl:
            for suffix in (".hea", ".mat"):
                os.symlink(header.with_suffix(suffix), Path(folder) / (header.stem + suffix))
        epoch_seconds(20, {})  # build the training cache outside the timings
        rows = []
        for name, changes in POLICIES.items():
            figures = {}
            for loaded in (False, True):
                load = subprocess.Popen([sys.executable, "-c", LOAD], env=environment({})) if loaded else None
                try:
                    time.sleep(2 if loaded else 0)
                    figures[("driver", loaded)] = time_driver(str(ROOT / "model"), Path(folder), len(ptbxl),
                                                              environment(changes))[1]
                    if not args.skip_training:
                        figures[("epoch", loaded)] = epoch_seconds(args.train_records, changes)
                finally:
                    if load:
                        load.kill()
                        load.wait()
            rows.append((name, figures))
    print(f"driver.py, {len(ptbxl)} PTB-XL records (records/s once loaded); training epoch, "
          f"{args.train_records} PTB-XL records (s); beside = beside a 2-thread PyTorch load")
    print(f"{'policy':58s} {'idle':>8s} {'beside':>8s} {'ratio':>6s}" +
          ("" if args.skip_training else f" {'epoch idle':>11s} {'beside':>8s} {'ratio':>6s}"))
    for name, f in rows:
        line = f"{name:58s} {f[('driver', False)]:8.1f} {f[('driver', True)]:8.1f} " \
               f"{f[('driver', True)] / f[('driver', False)]:6.2f}"
        if not args.skip_training:
            line += f" {f[('epoch', False)]:11.1f} {f[('epoch', True)]:8.1f} " \
                    f"{f[('epoch', True)] / f[('epoch', False)]:6.2f}"
        print(line)


if __name__ == "__main__":
    main()
