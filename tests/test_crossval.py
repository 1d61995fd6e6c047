import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import FIXTURES, run_script
from cinc2020 import crossval
from cinc2020.config import Config
from cinc2020.distributed import Processes
from cinc2020.crossval import cross_validate
from cinc2020.data import load_training_set
from cinc2020.splits import stratified_folds
from cinc2020.decisions import decide
from cinc2020.labels import CPSC_CLASSES
from cinc2020.scorer import read_dx
from cinc2020.scoring import score_predictions
from cinc2020.train import fit as real_fit

pytestmark = pytest.mark.shared_data
ON_THE_CPU = Processes(0, 1, torch.device("cpu"))  # one process


def test_cross_validation_predicts_every_record_out_of_fold(tmp_path):
    out = tmp_path / "cv"
    result = run_script("-m", "cinc2020.crossval", FIXTURES / "cpsc_text", out, "--folds", "3", "--labels", "cpsc",
                        "--epochs", "1", env={"CINC2020_CONFIG": json.dumps({"min_positives": 1, "val_fraction": 0.2})})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "18 records, 3-fold cross-validation, labels cpsc" in result.stdout
    report = json.loads((out / "crossval.json").read_text())
    saved = np.load(out / "out_of_fold.npz")
    assert saved["probabilities"].shape == (18, 9) and list(saved["classes"]) == list(CPSC_CLASSES)
    assert (saved["probabilities"] > 0).all()                        # every record was predicted
    assert sorted(np.bincount(saved["fold"]).tolist()) == [6, 6, 6]  # 2 records a class, spread over folds
    for fold in range(3):
        document = json.loads((out / f"fold{fold + 1}" / "model.json").read_text())
        # the held-out fold never trains or selects its own model
        sizes = document["training_data"]
        assert sizes["train_records"] + sizes["validation_records"] == 12 and sizes["validation_records"] >= 2
    dx = [read_dx(FIXTURES / "cpsc_text" / f"{name}.hea") for name in saved["names"]]
    outputs = decide(saved["probabilities"], np.full(9, 0.5))
    scores = score_predictions(dx, list(CPSC_CLASSES), outputs, saved["probabilities"], "cpsc")
    at_half = report["thresholds_0.5"]
    assert at_half["f_beta"] == scores.f_beta and at_half["g_beta"] == scores.g_beta
    assert 0 <= report["tuned_thresholds"]["f_beta"] <= 1
    assert report["positives_per_class"] == {c: 2 for c in CPSC_CLASSES}


def test_training_only_rows_train_every_fold_and_are_never_predicted(tmp_path, monkeypatch):
    config = Config(model="crnn", labels="cpsc", epochs=1, batch_size=4)
    data = load_training_set(FIXTURES / "cpsc_text", config)
    trained = []
    monkeypatch.setattr(crossval, "fit", lambda data, train_rows, val_rows, *rest, **named: trained.append(
        (set(train_rows.tolist()), set(val_rows.tolist()))) or real_fit(data, train_rows, val_rows, *rest))
    rows, extra = np.arange(12), np.arange(12, 18)
    oof = cross_validate(data, replace(config, folds=3), tmp_path, ON_THE_CPU, rows=rows, train_only=extra)
    assert sorted(oof.rows.tolist()) == rows.tolist()                    # only ``rows`` are predicted
    for fold, (train_rows, val_rows) in enumerate(trained):
        held_out = set(oof.rows[oof.fold_of == fold].tolist())
        assert set(extra.tolist()) <= train_rows | val_rows              # the extra rows join every fold
        assert not held_out & (train_rows | val_rows)                    # the held-out fold never trains


def test_without_a_validation_part_each_fold_trains_on_all_its_records_and_keeps_its_last_epoch(tmp_path):
    config = Config(model="crnn", labels="cpsc", epochs=2, batch_size=4, val_fraction=0.0)
    data = load_training_set(FIXTURES / "cpsc_text", config)
    oof = cross_validate(data, replace(config, folds=3), tmp_path, ON_THE_CPU)
    assert sorted(oof.rows.tolist()) == list(range(18))
    # the same folds as with a validation part, so that runs with and without one compare record by record
    np.testing.assert_array_equal(oof.fold_of, stratified_folds(data.labels, [1.0] * 3, config.seed))
    for model_dir in oof.model_dirs:
        document = json.loads((model_dir / "model.json").read_text())
        assert document["training_data"]["train_records"] == 12
        assert document["training_data"]["validation_records"] == 0
        assert document["validation"]["epoch"] == len(document["history"]) == 2
    with pytest.raises(ValueError, match="two folds or more"):  # one fold would predict no record out of fold
        cross_validate(data, replace(config, folds=1), tmp_path / "one", ON_THE_CPU)


def test_only_folds_trains_and_predicts_those_folds_of_the_same_assignment(tmp_path, monkeypatch):
    config = replace(Config(model="crnn", labels="cpsc", epochs=1, batch_size=4), folds=3)
    data = load_training_set(FIXTURES / "cpsc_text", config)
    trained = []
    monkeypatch.setattr(crossval, "fit", lambda data, train_rows, *rest, **named: trained.append(
        set(train_rows.tolist())) or real_fit(data, train_rows, *rest))
    whole = cross_validate(data, config, tmp_path / "all", ON_THE_CPU)
    trained.clear()
    one = cross_validate(data, config, tmp_path / "one", ON_THE_CPU, only_folds=[1])
    assert [d.name for d in one.model_dirs] == ["fold2"] and len(trained) == 1
    assert one.rows.tolist() == whole.rows[whole.fold_of == 1].tolist() and (one.fold_of == 1).all()
    assert trained[0] == set(range(len(data.names))) - set(one.rows.tolist())
    np.testing.assert_array_equal(one.probabilities, whole.probabilities[whole.fold_of == 1])  # the same network
    assert not (tmp_path / "one" / "fold1").exists()
