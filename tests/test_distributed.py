"""torchrun with two CPU processes (gloo) trains both architectures into a model that loads and predicts."""

import json
import os
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT, run_script

pytestmark = pytest.mark.shared_data


def test_two_process_training_with_gloo(tmp_path):
    model = tmp_path / "model"
    env = {**os.environ, "CINC2020_CONFIG": json.dumps({"epochs": 2, "min_positives": 1, "batch_size": 4,
                                                      "val_fraction": 0.2})}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "train_model.py"), str(FIXTURES / "cinc_snomed"), str(model), "--folds", "1",
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
