import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FIXTURES, ROOT
from cinc2020.inference import load_model

SETTINGS = {"epochs": 8, "min_positives": 1, "patience": 20}


def train_command(out, *extra):
    return [sys.executable, str(ROOT / "train_model.py"), str(FIXTURES / "cinc_snomed"), str(out),
            "--model", "crnn", "--folds", "2", *extra]


def fold_state(out, fold):
    return out / "folds" / "crnn" / f"fold{fold}" / "resume" / "state.json"


def run(out, *extra, settings=SETTINGS):
    env = {**os.environ, "CINC2020_CONFIG": json.dumps(settings)}
    result = subprocess.run(train_command(out, *extra), capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def weights_digest(folder):
    return json.loads((folder / "model.json").read_text())["weights_sha256"]


def test_killed_run_keeps_the_old_model_and_resumes_to_the_same_result(tmp_path):
    """Killed during its second fold, a run resumed keeps the first fold and continues the second
    from its last completed epoch, to the very model an uninterrupted run gives."""
    reference = tmp_path / "reference"
    run(reference)

    interrupted = tmp_path / "interrupted"
    run(interrupted, settings={**SETTINGS, "epochs": 1})
    previous = weights_digest(interrupted)
    state = fold_state(interrupted, 2)
    env = {**os.environ, "CINC2020_CONFIG": json.dumps(SETTINGS)}
    process = subprocess.Popen(train_command(interrupted), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if state.exists() and len(json.loads(state.read_text())["history"]) >= 2:
            break
        time.sleep(0.01)
    assert process.poll() is None, "training finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    completed = len(json.loads(state.read_text())["history"])
    assert 2 <= completed < SETTINGS["epochs"]

    assert weights_digest(interrupted) == previous        # the earlier model is untouched
    assert load_model(interrupted).classes                # and still loads

    result = run(interrupted, "--resume")
    assert f"resuming after epoch {completed}" in result.stderr
    assert result.stderr.count("resuming after") == 1 and "epoch   1  train loss" not in result.stderr  # fold 1 kept
    assert not (interrupted / "folds").exists()
    assert weights_digest(interrupted) == weights_digest(reference)
    ours = json.loads((interrupted / "model.json").read_text())["members"]
    theirs = json.loads((reference / "model.json").read_text())["members"]
    assert [h["val_loss"] for m in ours for h in m["history"]] == [h["val_loss"] for m in theirs for h in m["history"]]


def test_resume_refuses_another_configuration(tmp_path):
    out = tmp_path / "model"
    env = {**os.environ, "CINC2020_CONFIG": json.dumps(SETTINGS)}
    process = subprocess.Popen(train_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    state = fold_state(out, 1)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not state.exists():
        time.sleep(0.01)
    process.kill()
    process.wait()
    if not state.exists():
        pytest.fail("no training state was written before the kill")
    env["CINC2020_CONFIG"] = json.dumps({**SETTINGS, "lr": 0.01})
    result = subprocess.run(train_command(out, "--resume"), capture_output=True, text=True, env=env)
    assert result.returncode != 0 and "belongs to another configuration" in result.stderr
