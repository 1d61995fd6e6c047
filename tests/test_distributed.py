"""torchrun with two CPU processes (gloo) trains both architectures into a model that loads and predicts."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import FIXTURES, ROOT, run_script

pytestmark = pytest.mark.shared_data


def test_two_process_training_with_gloo(tmp_path):
    model = tmp_path / "model"
    env = {**os.environ, "CINC2020_CONFIG": json.dumps({"epochs": 2, "min_positives": 1, "batch_size": 4, "sources": "one",
                                                      "val_fraction": 0.2})}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "train_model.py"), str(FIXTURES / "cinc_snomed"), str(model), "--folds", "1", "--refit",
         "--model", "crnn", "--model", "cnn_attention"],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es) on cpu" in result.stderr
    # only rank 0 reports, twice per architecture: its fold model, then its refit on every record
    assert result.stderr.count("epoch   2  train loss") == 4
    document = json.loads((model / "model.json").read_text())
    assert [(m["config"]["model"], m["fold"]) for m in document["members"]] == [("crnn", "all records"),
                                                                              ("cnn_attention", "all records")]
    assert all(m["training_data"]["processes"] == 2 and len(m["history"]) == 2 for m in document["members"])
    assert len(list(model.glob("weights-*.safetensors"))) == 1 and not (model / "folds").exists()

    outputs = tmp_path / "outputs"
    run = run_script(ROOT / "driver.py", model, FIXTURES / "cinc_snomed", outputs)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "12 classified, 0 failed" in run.stdout
    lines = (outputs / "A0002.csv").read_text().splitlines()
    assert lines[1].split(",") == document["classes"] and sum(map(int, lines[2].split(","))) >= 1


def failing_rank(rank, port, out, cache):
    """One of two gloo processes, launched with no torchrun behind them; rank 1's second epoch raises."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2", CINC2020_CACHE=str(cache))
    import numpy as np
    from cinc2020 import train
    from cinc2020.config import Config
    from cinc2020.distributed import start_processes
    real_epoch = train.train_epoch

    def epoch(training, number):
        if rank == 1 and number == 2:
            raise RuntimeError("a batch this rank could not make")
        return real_epoch(training, number)

    train.train_epoch = epoch
    config = Config(model="crnn", epochs=4, min_positives=1, batch_size=2, sources="one")
    processes = start_processes()
    data = train.load_data(FIXTURES / "cinc_snomed", config)
    rows = np.arange(len(data.names))
    try:
        train.fit(data, rows[:8], rows[8:], config, out / "model", processes)
        outcome = "finished"
    except BaseException as error:
        outcome = f"{type(error).__name__}: {error}"
    (out / f"rank{rank}.json").write_text(json.dumps(outcome))
    if outcome != "finished":
        raise SystemExit(1)


def test_an_error_in_one_ranks_epoch_ends_every_rank_without_torchrun(tmp_path):
    """Without torchrun's agent to end the others, a rank that fails inside an epoch must not leave the rest
    waiting in a collective for the process group's timeout (60 minutes)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = torch.multiprocessing.start_processes(failing_rank, args=(port, tmp_path, os.environ["CINC2020_CACHE"]),
                                                    nprocs=2, join=False, start_method="spawn")
    deadline = time.time() + 180
    try:
        while not context.join(timeout=5):
            if time.time() > deadline:
                pytest.fail("a rank still waits for the one that failed")
    except torch.multiprocessing.ProcessExitedException:
        pass
    finally:
        for process in context.processes:
            process.kill()
    outcomes = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert outcomes[1] == "RuntimeError: a batch this rank could not make"
    assert outcomes[0] != "finished" and "rank 1" in outcomes[0]


def test_more_ranks_than_gpus_is_refused_before_the_process_group_starts(monkeypatch):
    """Two ranks on one GPU fail later with NCCL's 'duplicate GPU'; the refusal comes first and says why."""
    from cinc2020 import distributed
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: pytest.fail("the group started"))
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(ValueError, match="4 processes on this machine but 2 GPUs"):
        distributed.start_processes()
