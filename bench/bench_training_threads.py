#!/usr/bin/env python
"""One training epoch of the default network over PTB-XL records, for a layout of threads and processes.

    python bench/bench_training_threads.py THREADS [--records 1000]
    torchrun --standalone --nproc_per_node=2 bench/bench_training_threads.py 1

Prints the epoch's seconds (reading and the cache excluded) for this process count and THREADS intra-op
threads a process. Run the layouts one after another, alternating, and compare within one session.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("CINC2020_SHARED", ROOT.parent / "shared"))

from cinc2020.config import config_from_environment  # noqa: E402
from cinc2020.cpus import use_threads  # noqa: E402
from cinc2020.train import fit, load_data, split, start_processes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("threads", type=int, help="intra-op threads of each process")
    parser.add_argument("--records", type=int, default=1000, help="training records of the epoch")
    args = parser.parse_args()
    processes = start_processes()
    threads = use_threads(args.threads)  # after start_processes, which sets the entry's own choice
    config = config_from_environment(model="cnn_attention", epochs=1)
    data = load_data(SHARED / "data" / "ptbxl", config)
    train_rows, val_rows = split(data.labels, config)
    train_rows, val_rows = train_rows[:args.records], val_rows[:args.records // 5]
    with tempfile.TemporaryDirectory() as out:
        summary = fit(data, train_rows, val_rows, config, out, processes)
    if processes[0] == 0:
        print(f"{processes[1]} process(es) x {threads} thread(s): one epoch over {len(train_rows)} PTB-XL records "
              f"{summary['history'][0]['seconds']:.1f} s")


if __name__ == "__main__":
    main()
