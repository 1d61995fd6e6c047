#!/usr/bin/env python
"""One training epoch over PTB-XL records, for a layout of threads and processes.

    python bench/bench_training_threads.py THREADS [--records 1000] [--model cnn_attention]
    torchrun --standalone --nproc_per_node=2 bench/bench_training_threads.py 1

Prints the epoch's seconds (reading and the cache excluded) for this process count and THREADS intra-op
threads a process. Run the layouts one after another, alternating, and compare within one session.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_entry import SHARED, training_epoch  # noqa: E402
from cinc2020.cpus import use_threads  # noqa: E402
from cinc2020.config import CHOICES  # noqa: E402
from cinc2020.distributed import start_processes  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("threads", type=int, help="intra-op threads of each process")
    parser.add_argument("--records", type=int, default=1000, help="training records of the epoch")
    parser.add_argument("--model", choices=CHOICES["model"], default="cnn_attention")
    args = parser.parse_args()
    processes = start_processes()
    threads = use_threads(args.threads)  # after start_processes, which sets the entry's own choice
    seconds, trained, _ = training_epoch(SHARED / "data" / "ptbxl", args.model, processes, args.records)
    if processes[0] == 0:
        print(f"{args.model}, {processes[1]} process(es) x {threads} thread(s): one epoch over {trained} "
              f"PTB-XL records {seconds:.1f} s")


if __name__ == "__main__":
    main()
