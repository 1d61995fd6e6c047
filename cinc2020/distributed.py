"""The processes and devices of a training run: one process on the CPU or a GPU, or several under torchrun
(NCCL on GPUs, gloo on CPUs), and how they agree so that none waits for one that has stopped."""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import NamedTuple

import torch
import torch.distributed as dist

from .cpus import training_threads, use_threads


class Processes(NamedTuple):
    """This process's place in a run."""
    rank: int             # 0 for the process that validates, writes and reports
    world: int            # how many processes train together
    device: torch.device  # where this one trains


def start_processes() -> Processes:
    """This process's rank, world size and device; joins the process group under torchrun.

    Each process reads its training records itself (``cache.cached_records`` lets one
    process per machine build the cache while the others wait on a file lock, not in a
    collective), so no file that only rank 0 wrote is read elsewhere, except the model
    folder on ``--resume``: across machines it must be on storage every machine sees.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if cuda and local_world > torch.cuda.device_count() > 1:
        # Each process sees the machine's GPUs (one would see only its own): two ranks would share one.
        raise ValueError(f"{local_world} processes on this machine but {torch.cuda.device_count()} GPUs: start one "
                         f"process per GPU (torchrun --nproc_per_node={torch.cuda.device_count()})")
    if world > 1 and not dist.is_initialized():
        # Machines build their caches at the same time; the wait covers the slowest one.
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=60))
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        # A scheduler that shows each process its own GPU leaves one device visible to every local rank.
        local = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        torch.cuda.set_device(local)
        return Processes(rank, world, torch.device("cuda", local))
    use_threads(training_threads(local_world))  # the available cores, shared out
    return Processes(rank, world, torch.device("cpu"))


def make_deterministic() -> None:
    """What makes a GPU run repeat: deterministic algorithms only, cuDNN's fixed choice of them, no TF32."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspace
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def agree(values: list[bool], world: int, run_on: torch.device) -> list[bool]:
    """Rank 0's ``values`` in every process, so that all stop (or go on, or fail) together."""
    if world == 1:
        return values
    flags = torch.tensor([float(v) for v in values], device=run_on)  # NCCL reduces only GPU tensors
    dist.broadcast(flags, src=0)
    return [bool(v) for v in flags.tolist()]


def on_rank_zero(work, processes: Processes, what: str):
    """``work()`` on rank 0 alone (its result there, None elsewhere). Every rank learns whether it failed and
    raises then, so that no rank waits in a later collective for one that has stopped."""
    rank, world, run_on = processes
    result, failure = None, None
    if rank == 0:
        try:
            result = work()
        except Exception as error:
            failure = error
    (failed,) = agree([failure is not None], world, run_on)
    if failed:
        raise failure if failure is not None else RuntimeError(f"rank 0 failed {what}")
    return result


FAILURE_KEY = "cinc2020-failed"  # in the process group's store: which rank failed, and how


@contextlib.contextmanager
def failing_together(processes: Processes):
    """Around a stretch of collectives (an epoch): a rank that fails inside it leaves its error in the process
    group's store before it stops, and a rank whose collective then breaks because that rank is gone (gloo:
    "connection closed by peer") raises that error, naming the rank, rather than the transport's. Under any
    launcher, not only torchrun's agent, every rank ends with the cause."""
    if processes.world == 1:
        yield
        return
    store = dist.distributed_c10d._get_default_store()
    try:
        yield
    except Exception as error:
        reported = failure_reported(store)
        if reported:
            raise RuntimeError(reported) from error
        try:
            store.set(FAILURE_KEY, f"rank {processes.rank} failed: {type(error).__name__}: {error}")
        except Exception:  # noqa: BLE001 - the store went with another rank: the error itself still ends this one
            pass
        raise


def failure_reported(store) -> str | None:
    """What a failed rank left in the store, if any (None also when the store itself is gone)."""
    try:
        return store.get(FAILURE_KEY).decode() if store.check([FAILURE_KEY]) else None
    except Exception:  # noqa: BLE001
        return None
