"""How many CPU cores this process may use, and why its compute threads wait as PyTorch has them wait.

``os.cpu_count()`` counts the machine's cores. A container run with ``--cpus=1``,
``taskset`` or a batch scheduler allows fewer: the cores available are the fewest
that the affinity mask and the cgroup CPU quota (v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``, on this process's cgroup or any
parent) allow. Threads beyond them only take turns on the same cores.

How OpenMP threads wait matters as much as their count. PyTorch's default
(libgomp: a thread that finishes its share spins a while for the next parallel
region, then sleeps) is what training needs: its many small operations each open a
region whose idle threads must be woken, and with ``OMP_WAIT_POLICY=PASSIVE``
(sleep at once) one epoch of the attention network took 2.2 to 2.8 times as long
on our 2 cores (bench/bench_training_threads.py). Spinning costs under contention:
beside another busy process a training epoch took 3.5 times as long or more,
against 1.3 times with passive waits (bench/bench_threads.py), so train on an
otherwise idle machine. Classifying runs one thread, which has no team to wait
for, so the driver is the same under either policy.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _ancestors(base: Path, path: str) -> list[Path]:
    """``base/path`` and each folder above it, up to ``base``."""
    folders = [base]
    for part in Path(path).parts[1:]:
        folders.append(folders[-1] / part)
    return folders


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroups in cores (1.5 for 150 ms per 100 ms), or None if unlimited."""
    limits = []
    for line in (_read(proc_cgroup) or "").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: "max 100000" or "150000 100000"
            for folder in _ancestors(root, path):
                quota, _, period = (_read(folder / "cpu.max") or "max").partition(" ")
                if quota != "max" and period:
                    limits.append(int(quota) / int(period))
        elif "cpu" in controllers.split(","):  # cgroup v1: a quota of -1 means none
            for base in {root / controllers, root / "cpu"}:
                for folder in _ancestors(base, path):
                    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
                    if quota and period and int(quota) > 0:
                        limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """Cores the affinity mask allows (the machine's, where the system has no mask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def available_cpus(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int:
    """Cores this process may compute on: the affinity mask, capped by the cgroup quota (at least 1)."""
    cores = affinity_cpus()
    limit = cgroup_cpu_limit(proc_cgroup, root)
    if limit is not None:
        cores = min(cores, math.ceil(limit - 1e-9))  # a fraction of a core still needs a thread
    return max(1, cores)


# One record at a time is too little work to share: on our 2 cores one intra-op thread classified about
# as many PTB-XL records/s as two idle (114.6 against 117.7) and 3.4 times as many beside another busy
# PyTorch process (84.9 against 25.1; bench/bench_threads.py).
# Training batches are large enough to use every available core.
INFERENCE_THREADS = 1


def inference_threads() -> int:
    """Threads for classifying records: ``$OMP_NUM_THREADS`` when the user set it, else ``INFERENCE_THREADS``."""
    chosen = os.environ.get("OMP_NUM_THREADS", "")
    return int(chosen) if chosen.isdigit() and int(chosen) > 0 else INFERENCE_THREADS


def training_threads(processes_per_machine: int = 1) -> int:
    """This training process's share of the available cores. ``$OMP_NUM_THREADS`` does not count here:
    torchrun sets it to 1 in every process it starts."""
    return max(1, available_cpus() // processes_per_machine)


def use_threads(threads: int) -> int:
    """Give PyTorch's intra-op pool ``threads`` threads; returns the count."""
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def describe() -> str:
    """What this process computes on, for a run's log: threads, cores available and why, OpenMP waits."""
    quota = cgroup_cpu_limit()
    return (f"{torch.get_num_threads()} thread(s); {available_cpus()} core(s) available "
            f"(affinity {affinity_cpus()}, cgroup quota {'none' if quota is None else f'{quota:g}'}); "
            f"OpenMP waits {os.environ.get('OMP_WAIT_POLICY', 'default').lower()}")
