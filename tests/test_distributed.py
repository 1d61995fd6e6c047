"""torchrun with two CPU processes (gloo) trains a model that loads and predicts."""

import json
import os
import subprocess
import sys

from conftest import FIXTURES, ROOT, run_script


def test_two_process_training_with_gloo(tmp_path):
    model = tmp_path / "model"
    env = {**os.environ, "CINC2020_CONFIG": json.dumps({"epochs": 2, "min_positives": 1, "batch_size": 4})}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "train_model.py"), str(FIXTURES / "cinc_snomed"), str(model)],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es) on cpu" in result.stderr
    assert result.stderr.count("epoch   2  train loss") == 1  # only rank 0 reports
    document = json.loads((model / "model.json").read_text())
    assert document["training_data"]["processes"] == 2 and len(document["history"]) == 2
    assert len(list(model.glob("weights-*.safetensors"))) == 1 and not (model / "resume").exists()

    outputs = tmp_path / "outputs"
    run = run_script(ROOT / "driver.py", model, FIXTURES / "cinc_snomed", outputs)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "12 classified, 0 failed" in run.stdout
    lines = (outputs / "A0002.csv").read_text().splitlines()
    assert lines[1].split(",") == document["classes"] and sum(map(int, lines[2].split(","))) >= 1
