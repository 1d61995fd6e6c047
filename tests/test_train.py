import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import FIXTURES, ROOT
from cinc2020 import train
from cinc2020.config import Config
from cinc2020.distributed import Processes
from cinc2020.data import load_training_set
from cinc2020.preprocess import prepare
from cinc2020.inference import classify, load_model, predict_probabilities
from cinc2020.records import read_record
from cinc2020.seeds import AUGMENTATION, BATCH_ORDER, DROPOUT, INITIAL_WEIGHTS, random_stream
from cinc2020.splits import split
from cinc2020.train import binary_cross_entropy, fit, learning_rate, masked_loss

pytestmark = pytest.mark.shared_data
ON_THE_CPU = Processes(0, 1, torch.device("cpu"))  # one process

# The whole recipe's moving parts: a schedule, weight decay, clipping, augmentation and the validation that
# chooses a checkpoint must all resume exactly.
SETTINGS = {"epochs": 8, "min_positives": 1, "sources": "one", "patience": 20, "schedule": "cosine", "weight_decay": 0.01,
            "gradient_clip": 1.0, "augment": True, "val_fraction": 0.2}


def train_command(out, *extra):
    return [sys.executable, str(ROOT / "train_model.py"), str(FIXTURES / "cinc_snomed"), str(out),
            "--model", "crnn", "--folds", "2", "--no-refit", *extra]  # the fold models: what a resume keeps


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


def test_learning_rate_warms_up_then_decays_to_zero():
    config = Config(schedule="cosine", lr=1e-3, warmup_epochs=1.0, epochs=5)
    rates = [learning_rate(step, 10, config) for step in range(50)]
    np.testing.assert_allclose(rates[:10], np.arange(1, 11) * 1e-4)       # linear warm-up over the first epoch
    assert rates[9] == max(rates) == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))             # then never rising
    assert rates[30] == pytest.approx(0.5e-3)                              # half way through the decay
    assert rates[-1] < 1e-5                                                # about zero at the end
    assert {learning_rate(step, 10, Config(lr=2e-3, schedule="constant", val_fraction=0.2))
            for step in range(50)} == {2e-3}
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate(0, 10, Config(schedule="step"))


def test_val_fraction_zero_trains_on_every_row_and_validates_on_none():
    labels = np.eye(4)[np.arange(40) % 4]
    train_rows, val_rows = split(labels, Config(val_fraction=0.0))
    assert train_rows.tolist() == list(range(40)) and len(val_rows) == 0
    train_rows, val_rows = split(labels, Config(val_fraction=0.2))
    assert len(val_rows) == 8 and not set(train_rows) & set(val_rows)
    with pytest.raises(ValueError, match="schedule that ends"):  # the last epoch of a constant rate is no choice
        Config(val_fraction=0.0, schedule="constant", refit=False).check_trainable()
    for fraction in (-0.1, 1.0):
        with pytest.raises(ValueError, match="val_fraction must be"):
            Config(val_fraction=fraction)


def test_a_fractional_warm_up_never_overshoots_the_peak():
    config = Config(schedule="cosine", lr=1e-3, warmup_epochs=1.5, epochs=4)
    assert max(learning_rate(step, 1, config) for step in range(4)) == pytest.approx(1e-3)


def test_every_random_stream_is_its_own():
    """Batch order, augmentation (per rank), dropout and the initial weights never share draws, and each
    epoch's are drawn afresh from the seed alone (which is what lets a resumed run match)."""
    seed = [0, 1, 2]
    draws = {(stream, *where): random_stream(seed, stream, *where).random(4).tolist()
             for stream, where in [(INITIAL_WEIGHTS, ()), (BATCH_ORDER, (1,)), (BATCH_ORDER, (2,)),
                                   (AUGMENTATION, (1, 0)), (AUGMENTATION, (1, 1)), (DROPOUT, (1, 0))]}
    assert len({tuple(d) for d in draws.values()}) == len(draws)
    assert random_stream(seed, AUGMENTATION, 1, 0).random(4).tolist() == draws[(AUGMENTATION, 1, 0)]
    assert random_stream([0, 1, 2, 0], AUGMENTATION, 1, 0).random(4).tolist() != draws[(AUGMENTATION, 1, 0)]
    assert random_stream([0], BATCH_ORDER, 1).random(4).tolist() != random_stream([0, 0], BATCH_ORDER, 1).random(4).tolist()


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


def test_masked_labels_add_no_loss_and_no_gradient():
    """On a mixed-source set, a label the mask leaves out changes neither the loss nor any gradient."""
    data = load_training_set(FIXTURES / "cinc_snomed", Config(min_positives=1))
    targets, mask = torch.from_numpy(data.labels), torch.from_numpy(data.mask)
    assert (mask == 0).any() and (mask == 1).any()
    weights = torch.linspace(1, 3, targets.shape[1])
    logits = torch.randn(targets.shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = masked_loss(logits, targets, mask, weights)
    loss.backward()
    assert (logits.grad[mask == 0] == 0).all() and (logits.grad[mask == 1] != 0).all()
    flipped = torch.where(mask == 0, 1 - targets, targets)
    assert masked_loss(logits, flipped, mask, weights).item() == loss.item()
    terms = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights, reduction="none")
    torch.testing.assert_close(loss, terms[mask == 1].mean())
    on_arrays = binary_cross_entropy(data.labels, torch.sigmoid(logits).detach().double().numpy(), weights.numpy(),
                                     data.mask)
    assert on_arrays == pytest.approx(loss.item(), rel=1e-5)


def scripted_evaluation(losses, calls):
    """A stand-in for ``train.evaluate`` that returns the given validation losses in turn."""
    def evaluate(model, data, rows, weights, scheme, run_on):
        calls.append(len(calls) + 1)
        return {"loss": losses[len(calls) - 1], "challenge_metric": 0.0, "auroc": 0.5, "f_beta": 0.0,
                "g_beta": 0.0, "f_measure": 0.0}
    return evaluate


def fit_fixtures(tmp_path, **settings):
    config = Config(model="crnn", min_positives=1, batch_size=4, **settings)
    data = load_training_set(FIXTURES / "cinc_snomed", config)
    rows = np.arange(len(data.names))
    return fit(data, rows[:8], rows[8:], config, tmp_path / "model", ON_THE_CPU)


def test_a_nan_validation_loss_is_no_improvement(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(train, "evaluate", scripted_evaluation([math.nan, 0.7, 0.6], calls))
    summary = fit_fixtures(tmp_path, epochs=3, patience=5)
    assert summary["validation"]["epoch"] == 3 and len(summary["history"]) == 3
    monkeypatch.setattr(train, "evaluate", scripted_evaluation([math.nan] * 2, []))
    with pytest.raises(ValueError, match="never a finite number"):
        fit_fixtures(tmp_path, epochs=2, patience=5)


def test_cpsc_models_report_their_own_scores_each_epoch(tmp_path, capsys):
    config = Config(model="crnn", labels="cpsc", epochs=1, batch_size=4)
    data = load_training_set(FIXTURES / "cpsc_text", config)
    rows = np.arange(len(data.names))
    fit(data, rows, rows, config, tmp_path / "model", ON_THE_CPU)
    line = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch   1  train loss"))
    assert "G-beta" in line and "F-beta" in line and "challenge" not in line and "nan" not in line


def agreeing_rank(rank, port, out, cache, failing):
    """One of two gloo processes whose validation losses disagree: rank 0's would stop after epoch 3,
    rank 1's keep falling. With ``failing``, rank 0's validation raises in epoch 2."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2", CINC2020_CACHE=str(cache))
    import torch.distributed as dist
    from cinc2020 import train as rank_train
    from cinc2020.distributed import start_processes
    evaluations, epochs = [], []
    losses = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] if rank == 0 else [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    scripted = scripted_evaluation(losses, evaluations)

    def evaluate(*args):
        if failing and len(evaluations) == 1:
            raise OSError("disk full")
        return scripted(*args)

    rank_train.evaluate = evaluate
    real_epoch = rank_train.train_epoch
    rank_train.train_epoch = lambda *args, **kwargs: epochs.append(1) or real_epoch(*args, **kwargs)
    config = Config(model="crnn", epochs=6, patience=2, min_positives=1, batch_size=2, sources="one")
    processes = start_processes()
    data = rank_train.load_data(FIXTURES / "cinc_snomed", config)
    rows = np.arange(len(data.names))
    try:
        summary = rank_train.fit(data, rows[:8], rows[8:], config, out / "model", processes)
        outcome = {"history": None if summary is None else len(summary["history"])}
    except Exception as error:
        outcome = {"error": f"{type(error).__name__}: {error}"}
    (out / f"rank{rank}.json").write_text(json.dumps({"epochs": len(epochs), "evaluations": len(evaluations),
                                                      **outcome}))
    dist.destroy_process_group()


def run_two_ranks(tmp_path, failing):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = torch.multiprocessing.start_processes(
        agreeing_rank, args=(port, tmp_path, os.environ["CINC2020_CACHE"], failing), nprocs=2, join=False,
        start_method="spawn")
    deadline = time.time() + 240
    while not context.join(timeout=5):
        if time.time() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two processes did not finish: one waits for the other (a hang)")
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_ranks_stop_together_on_rank_zeros_decision(tmp_path):
    ranks = run_two_ranks(tmp_path, failing=False)
    assert ranks[0] == {"epochs": 3, "evaluations": 3, "history": 3}   # best epoch 1, patience 2
    assert ranks[1] == {"epochs": 3, "evaluations": 0, "history": None}   # rank 1 only follows
    assert len(json.loads((tmp_path / "model" / "model.json").read_text())["history"]) == 3


def test_a_failure_on_rank_zero_stops_every_rank(tmp_path):
    ranks = run_two_ranks(tmp_path, failing=True)
    assert ranks[0] == {"epochs": 2, "evaluations": 1, "error": "OSError: disk full"}
    assert ranks[1] == {"epochs": 2, "evaluations": 0, "error": "RuntimeError: rank 0 failed validating or saving"}


def test_auxiliary_codes_are_learned_and_never_answered(tmp_path, monkeypatch):
    """The loss reads the classes and the auxiliary codes, the validation loss the classes alone; the saved
    model answers the classes, the sigmoid of the network's first outputs."""
    seen = []
    real_loss = train.masked_loss
    monkeypatch.setattr(train, "masked_loss", lambda logits, targets, mask, weights: seen.append(
        (logits.shape[1], targets.shape[1], mask)) or real_loss(logits, targets, mask, weights))
    config = Config(model="crnn", min_positives=1, batch_size=4, epochs=1, auxiliary_labels=True)
    data = load_training_set(FIXTURES / "cinc_snomed", config)
    rows, validation = np.arange(len(data.names)), np.arange(8, 12)  # the Q and S records carry the codes
    summary = fit(data, rows, validation, config, tmp_path / "model", ON_THE_CPU)
    n, outputs = len(data.classes), len(data.classes) + len(data.auxiliary)
    assert data.auxiliary and {(a, b) for a, b, _ in seen} == {(outputs, outputs)}
    assert sum(float(mask[:, n:].sum()) for *_, mask in seen) == data.auxiliary_mask.sum() > 0
    assert list(summary["positive_weights"]) == data.classes + data.auxiliary
    assert json.loads((tmp_path / "model" / "model.json").read_text())["auxiliary"] == data.auxiliary

    model = load_model(tmp_path / "model")
    network = model.networks[0]
    assert network.classify.out_features == outputs and network.answered_classes == n
    probabilities = predict_probabilities(network, config, data.signals.subset(validation),
                                          data.demographics[validation], model.device)
    assert probabilities.shape == (4, n)
    assert summary["validation"]["loss"] == pytest.approx(binary_cross_entropy(
        data.labels[validation], probabilities, np.ones(n), data.mask[validation]), rel=1e-6)
    signal, lines = read_record(FIXTURES / "cinc_snomed" / "A0002.hea")
    x = torch.from_numpy(prepare(signal, lines, config))[None]
    with torch.no_grad():
        logits = network(x, torch.tensor([x.shape[-1]]))[0]
    np.testing.assert_allclose(model.probabilities(signal, lines), torch.sigmoid(logits[:n]).numpy(), atol=1e-6)


def test_the_recipe_ships_the_auxiliary_codes(tmp_path):
    out = tmp_path / "model"
    run(out, settings={**SETTINGS, "epochs": 1, "auxiliary_labels": True})
    document = json.loads((out / "model.json").read_text())
    assert document["auxiliary"] == load_training_set(FIXTURES / "cinc_snomed", Config(
        min_positives=1, auxiliary_labels=True)).auxiliary
    model = load_model(out)
    labels, probabilities, classes = classify(*read_record(FIXTURES / "cinc_snomed" / "Q0004.hea"), model)
    assert classes == document["classes"] and len(probabilities) == len(labels) == len(classes)


@pytest.mark.parametrize("model", ["crnn", "cnn_attention", "se_resnet"])
def test_every_architecture_trains_under_bfloat16_autocast(tmp_path, model):
    """The fixtures' records (10 to 115 s, cropped at 60) make padded batches; under autocast the CRNN once
    wrote its windows' features into a float32 tensor and crashed."""
    config = Config(model=model, min_positives=1, batch_size=4, epochs=1, val_fraction=0.2,
                    training_precision="bfloat16")
    data = load_training_set(FIXTURES / "cinc_snomed", config)
    rows = np.arange(len(data.names))
    summary = fit(data, rows[:8], rows[8:], config, tmp_path / "model", ON_THE_CPU)
    assert math.isfinite(summary["history"][0]["train_loss"]) and math.isfinite(summary["validation"]["loss"])
    saved = json.loads((tmp_path / "model" / "model.json").read_text())
    assert saved["members"][0]["config"]["training_precision"] == "bfloat16"
    assert load_model(tmp_path / "model").networks[0].classify.weight.dtype == torch.float32  # inference: float32


def test_loader_workers_make_the_same_batches(tmp_path):
    """Two worker processes read, crop and augment the batches: the very weights the main process trains."""
    digests = []
    for workers in (0, 2):
        fit_fixtures(tmp_path / str(workers), epochs=2, patience=5, loader_workers=workers)
        digests.append(weights_digest(tmp_path / str(workers) / "model"))
    assert digests[0] == digests[1]


def test_a_non_finite_loss_stops_the_run_and_resume_starts_that_epoch_again(tmp_path, monkeypatch):
    reference = fit_fixtures(tmp_path / "reference", epochs=3, patience=5)
    real, calls = train.masked_loss, []

    def failing_in_epoch_2(logits, targets, mask, weights):  # 2 batches an epoch: the 4th is epoch 2's second
        calls.append(1)
        loss = real(logits, targets, mask, weights)
        return loss * math.nan if len(calls) == 4 else loss

    monkeypatch.setattr(train, "masked_loss", failing_in_epoch_2)
    with pytest.raises(train.NonFiniteLoss, match="not a number in epoch 2 \\(first at batch 2 of 2\\)"):
        fit_fixtures(tmp_path / "run", epochs=3, patience=5)
    state = json.loads((tmp_path / "run" / "model" / "resume" / "state.json").read_text())
    assert len(state["history"]) == 1 and not (tmp_path / "run" / "model" / "model.json").exists()
    monkeypatch.setattr(train, "masked_loss", real)
    config = Config(model="crnn", min_positives=1, batch_size=4, epochs=3, patience=5)
    data = load_training_set(FIXTURES / "cinc_snomed", config)
    rows = np.arange(len(data.names))
    resumed = fit(data, rows[:8], rows[8:], config, tmp_path / "run" / "model", ON_THE_CPU, resume=True)
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in reference["history"]]
    assert weights_digest(tmp_path / "run" / "model") == weights_digest(tmp_path / "reference" / "model")


def test_the_model_says_how_many_records_came_from_which_source(tmp_path):
    fit_fixtures(tmp_path, epochs=1, patience=5)
    training_data = json.loads((tmp_path / "model" / "model.json").read_text())["training_data"]
    assert training_data["records_per_source"] == {"CPSC": 2, "CPSC-Extra": 2, "Chapman-Shaoxing": 2, "Georgia": 2,
                                                   "PTB": 2, "PTB-XL": 2}


def rank_after_training(rank, port, out):
    """One of two gloo processes; rank 0's work after training (assembling the model, say) fails."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    import torch.distributed as dist
    from cinc2020.distributed import on_rank_zero, start_processes
    processes = start_processes()

    def assemble():
        raise OSError("disk full")

    try:
        on_rank_zero(assemble, processes, "assembling the model")
        outcome = "finished"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    (out / f"rank{rank}.json").write_text(json.dumps(outcome))
    dist.destroy_process_group()


def test_a_failure_on_rank_zero_after_training_ends_every_rank_at_once(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.time()
    torch.multiprocessing.start_processes(rank_after_training, args=(port, tmp_path), nprocs=2, join=True,
                                          start_method="spawn")
    assert time.time() - started < 120
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [
        "OSError: disk full", "RuntimeError: rank 0 failed assembling the model"]


def test_a_deterministic_run_gives_the_weights_a_cpu_run_gives(tmp_path):
    """``Config.deterministic`` (for GPUs) restricts PyTorch to deterministic algorithms: on a CPU every
    operation of training has one, and the weights are those of an ordinary run."""
    try:
        fit_fixtures(tmp_path / "deterministic", epochs=1, patience=5, deterministic=True)
    finally:
        torch.use_deterministic_algorithms(False)
    fit_fixtures(tmp_path / "ordinary", epochs=1, patience=5)
    assert weights_digest(tmp_path / "deterministic" / "model") == weights_digest(tmp_path / "ordinary" / "model")
