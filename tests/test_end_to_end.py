"""train_model.py -> driver.py -> evaluate_12ECG_score.py on real fixture records, as a team runs them."""

import csv
import json
import shutil

import numpy as np
import pytest

from conftest import DATA, FIXTURES, ROOT, copy_records, run_script
from cinc2020.config import Config
from cinc2020.data import load_training_set
from cinc2020.ensemble import combine
from cinc2020.labels import CPSC_CLASSES
from cinc2020.recipe import train_ensemble
from cinc2020.decisions import tune_thresholds
from cinc2020.scorer import evaluate_directories, find_pairs, read_dx
from cinc2020.scoring import score_predictions

QUICK = json.dumps({"epochs": 2, "min_positives": 1, "sources": "one"})  # 2 records a source: one source


def read_outputs(folder):
    rows = {}
    for path in sorted(folder.glob("*.csv")):
        lines = path.read_text().splitlines()
        assert len(lines) == 4, path
        assert lines[0] == "#" + path.stem
        classes = lines[1].split(",")
        labels = [int(v) for v in lines[2].split(",")]
        scores = [float(v) for v in lines[3].split(",")]
        assert len(classes) == len(labels) == len(scores)
        assert set(labels) <= {0, 1} and all(0 <= s <= 1 for s in scores)
        rows[path.stem] = (classes, labels, scores)
    return rows


@pytest.fixture(scope="module")
def snomed_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snomed_model")
    result = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", folder, "--folds", "3", "--no-refit",
                        "--model", "crnn", "--model", "cnn_attention", env={"CINC2020_CONFIG": QUICK})
    assert result.returncode == 0, result.stderr[-2000:]
    return folder, result


@pytest.mark.shared_data
def test_training_writes_a_complete_model(snomed_model):
    """The ensemble recipe: both architectures, one model per fold, their mean, tuned thresholds."""
    folder, result = snomed_model
    names = {p.name for p in folder.iterdir()}
    assert {"model.json", "training_curves", "out_of_fold.npz"} <= names
    assert len([n for n in names if n.startswith("weights-") and n.endswith(".safetensors")]) == 1
    assert "folds" not in names  # the fold models and training states go once the model is saved
    document = json.loads((folder / "model.json").read_text())
    members = document["members"]
    assert [(m["config"]["model"], m["fold"]) for m in members] == \
        [("crnn", 1), ("crnn", 2), ("crnn", 3), ("cnn_attention", 1), ("cnn_attention", 2), ("cnn_attention", 3)]
    assert all(m["config"]["epochs"] == 2 and len(m["history"]) == 2 for m in members)
    assert [m["config"]["normalisation"] for m in members] == ["std"] * 6
    assert [m["config"]["class_weights"] for m in members] == [False] * 3 + [True] * 3
    assert "stacker" not in document
    assert document["recipe"] == {"models": ["crnn", "cnn_attention"], "folds": 3, "networks": "the fold models",
                                  "combination": "mean"}
    assert document["cross_validation"]["records"] == 12  # every record predicted out of fold once
    assert all(m["training_data"]["records"] == 12 for m in members) and "epoch   2" in result.stderr
    # codes outside the scored classes (e.g. Q0004's 164861001) are reported, not silently dropped
    assert "labels the model does not learn" in result.stderr and "164861001" in result.stderr
    assert members[0]["training_data"]["labels_not_learned"]["164861001"] == 1
    assert len(document["classes"]) == len(document["thresholds"]) >= 5
    assert sorted(p.name for p in (folder / "training_curves").iterdir()) == \
        sorted(f"{m}-fold{k}.png" for m in ("crnn", "cnn_attention") for k in (1, 2, 3))
    assert (folder / "training_curves" / "crnn-fold1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.shared_data
def test_thresholds_are_tuned_on_the_out_of_fold_outputs_combined_as_the_driver_combines(snomed_model):
    folder, _ = snomed_model
    document = json.loads((folder / "model.json").read_text())
    saved = np.load(folder / "out_of_fold.npz")
    assert saved["models"].tolist() == ["crnn", "cnn_attention"] and sorted(saved["fold"].tolist()) == \
        sorted([0, 1, 2] * 4)
    combined = combine(saved["probabilities"], saved["models"].tolist())  # the driver's combination: mean
    np.testing.assert_allclose(combined, saved["probabilities"].mean(axis=0))
    dx = [read_dx(FIXTURES / "cinc_snomed" / f"{name}.hea") for name in saved["names"]]
    # the labels known as training knew them (two records a source: trained as one source, QUICK)
    data = load_training_set(FIXTURES / "cinc_snomed", Config(min_positives=1, sources="one"),
                             classes=document["classes"])
    rows = [data.names.index(name) for name in saved["names"]]
    assert [data.dx[i] for i in rows] == dx
    shrink = document["members"][0]["config"]["threshold_shrink"]  # the default's, halfway to one global
    assert shrink == 0.5
    thresholds, _ = tune_thresholds(combined, dx, document["classes"], "snomed", data.mask[rows] > 0, shrink=shrink)
    assert thresholds.tolist() == document["thresholds"]


@pytest.mark.shared_data
def test_a_refit_ships_one_network_per_architecture_trained_on_every_record(tmp_path):
    model = tmp_path / "model"
    result = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", model, "--folds", "2", "--refit",
                        "--model", "crnn", env={"CINC2020_CONFIG": json.dumps({"epochs": 2, "min_positives": 1,
                                                                               "schedule": "cosine", "sources": "one"})})
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((model / "model.json").read_text())
    (member,) = document["members"]
    assert member["fold"] == "all records" and member["training_data"]["train_records"] == 12
    assert [sorted(h) for h in member["history"]] == [["epoch", "lr", "seconds", "stopped", "train_loss"]] * 2
    assert member["validation"]["epoch"] == 2  # the last epoch: nothing to validate on
    assert document["recipe"]["networks"] == "one per architecture, refit on every record"
    assert document["cross_validation"]["records"] == 12 and document["cross_validation"]["folds"] == 2
    assert sorted(p.name for p in (model / "training_curves").iterdir()) == \
        ["crnn-all-records.png", "crnn-fold1.png", "crnn-fold2.png"]
    refused = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", tmp_path / "constant", "--refit",
                         env={"CINC2020_CONFIG": json.dumps({"epochs": 2, "schedule": "constant",
                                                             "val_fraction": 0.2})})
    assert refused.returncode != 0
    assert "a refit keeps its last epoch, so it needs a schedule that ends" in refused.stderr
    refused = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", tmp_path / "one", "--folds", "1")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "val_fraction is 0 (the default)" in refused.stderr and '{"val_fraction": 0.2}' in refused.stderr


@pytest.mark.shared_data
def test_driver_and_scorer_agree_with_in_memory_scores(snomed_model, tmp_path):
    folder, _ = snomed_model
    outputs = tmp_path / "outputs"
    result = run_script(ROOT / "driver.py", folder, FIXTURES / "cinc_snomed", outputs)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "12 classified, 0 failed" in result.stdout
    rows = read_outputs(outputs)
    classes = json.loads((folder / "model.json").read_text())["classes"]
    assert len(rows) == 12 and all(r[0] == classes for r in rows.values())
    assert all(sum(r[1]) >= 1 for r in rows.values())  # at least the most probable class

    result = run_script(ROOT / "evaluate_12ECG_score.py", FIXTURES / "cinc_snomed", outputs)
    assert result.returncode == 0, result.stderr
    printed = dict(zip(*[line.split(",") for line in result.stdout.strip().splitlines()[-2:]]))
    files = evaluate_directories(FIXTURES / "cinc_snomed", outputs)
    pairs = find_pairs(FIXTURES / "cinc_snomed", outputs)
    labels = np.array([rows[h.stem][1] for h, _ in pairs])
    scores = np.array([rows[h.stem][2] for h, _ in pairs])
    memory = score_predictions([read_dx(h) for h, _ in pairs], classes, labels, scores, "snomed")
    assert memory.challenge_metric == pytest.approx(files.challenge_metric, abs=1e-12)
    assert memory.auroc == pytest.approx(files.auroc, abs=1e-12, nan_ok=True)
    assert float(printed["Challenge metric"]) == pytest.approx(files.challenge_metric, abs=5e-4)


@pytest.mark.shared_data
def test_driver_survives_bad_records(snomed_model, tmp_path):
    folder, _ = snomed_model
    records = tmp_path / "records"
    records.mkdir()
    for suffix in (".hea", ".mat"):
        shutil.copy(FIXTURES / "cinc_snomed" / ("A0002" + suffix), records / ("GOOD" + suffix))
    (records / "GOOD.hea").write_text((records / "GOOD.hea").read_text().replace("A0002", "GOOD"))
    shutil.copy(records / "GOOD.hea", records / "NOMAT.hea")
    (records / "GARBAGE.mat").write_bytes(b"\x00garbage" * 10)
    shutil.copy(records / "GOOD.hea", records / "GARBAGE.hea")
    shutil.copy(records / "GOOD.mat", records / "NOHEA.mat")
    shutil.copy(records / "GOOD.mat", records / "BADFS.mat")
    (records / "BADFS.hea").write_text((records / "GOOD.hea").read_text().replace("GOOD 12 500", "BADFS 12 0"))
    outputs = tmp_path / "outputs"
    result = run_script(ROOT / "driver.py", folder, records, outputs)
    assert result.returncode == 1
    assert "5 records, 1 classified, 4 failed" in result.stdout
    rows = read_outputs(outputs)
    assert sorted(rows) == ["BADFS", "GARBAGE", "GOOD", "NOHEA", "NOMAT"]
    for name in ("BADFS", "GARBAGE", "NOHEA", "NOMAT"):
        assert sum(rows[name][1]) == 0 and sum(rows[name][2]) == 0
        assert sum(f"record {name}:" in line for line in result.stderr.splitlines()) == 1
    assert sum(rows["GOOD"][1]) >= 1


@pytest.mark.shared_data
def test_unofficial_phase_entry_from_text_labels(tmp_path):
    model = tmp_path / "cpsc_model"
    result = run_script(ROOT / "train_model.py", FIXTURES / "cpsc_text", model, "--labels", "cpsc", "--folds", "2",
                        "--model", "crnn", "--model", "cnn_attention", "--stacking", "--refit",
                        env={"CINC2020_CONFIG": QUICK})
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((model / "model.json").read_text())
    # a refit: one network per architecture, stacked with the meta-classifier fitted out of fold
    assert [(m["config"]["model"], m["config"]["labels"], m["fold"]) for m in document["members"]] == \
        [("crnn", "cpsc", "all records"), ("cnn_attention", "cpsc", "all records")]
    assert document["stacker"] == {"inputs": ["crnn", "cnn_attention"]}
    outputs = tmp_path / "outputs"
    assert run_script(ROOT / "driver.py", model, FIXTURES / "cpsc_text", outputs).returncode == 0
    rows = read_outputs(outputs)
    assert len(rows) == 18 and all(r[0] == list(CPSC_CLASSES) for r in rows.values())
    result = run_script(ROOT / "evaluate_12ECG_score.py", FIXTURES / "cpsc_text", outputs, "--phase", "unofficial")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "AUROC|AUPRC|Accuracy|F-measure|Fbeta-measure|Gbeta-measure"


@pytest.mark.shared_data
def test_default_recipe_ships_the_four_fold_attention_networks_with_thresholds_shrunk_halfway(tmp_path):
    model = tmp_path / "model"
    result = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", model, env={"CINC2020_CONFIG": QUICK})
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((model / "model.json").read_text())
    assert [(m["config"]["model"], m["config"]["class_weights"], m["fold"]) for m in document["members"]] == \
        [("cnn_attention", True, fold) for fold in (1, 2, 3, 4)]
    # thresholds tuned on the out-of-fold probabilities of every record, never on the checkpoint's records
    assert document["recipe"]["folds"] == 4 and document["cross_validation"]["records"] == 12
    assert document["recipe"]["networks"] == "the fold models"


def test_training_on_a_folder_without_labels_stops_clearly(tmp_path):
    (tmp_path / "X.hea").write_text("X 12 500 5000\n")
    result = run_script(ROOT / "train_model.py", tmp_path, tmp_path / "model")
    assert result.returncode != 0
    assert "no usable labelled record" in result.stderr and "Traceback" not in result.stderr


def test_plans_that_cannot_work_are_refused_before_any_record_is_read(tmp_path):
    missing = tmp_path / "no such folder"  # reading it would fail otherwise, and differently
    with pytest.raises(ValueError, match="two folds or more"):
        train_ensemble(missing, tmp_path / "model", [Config(val_fraction=0.0, folds=1)])
    with pytest.raises(ValueError, match="a refit keeps its last epoch"):
        train_ensemble(missing, tmp_path / "model", [Config(schedule="constant", val_fraction=0.2, refit=True)])


@pytest.mark.shared_data
def test_a_model_trains_and_classifies_at_500_hz(tmp_path):
    """The sampling rate is a setting: at 500 Hz every time constant (windows, crops, shifts, wander, band
    edges) keeps its length in seconds, and the driver reads records at their own rates into it."""
    settings = {"epochs": 1, "min_positives": 1, "fs": 500, "augment": True, "bandpass_hz": [0.5, 45],
                "schedule": "cosine", "train_crop_s": 8, "val_fraction": 0.2, "sources": "one"}
    model = tmp_path / "model"
    result = run_script(ROOT / "train_model.py", FIXTURES / "cinc_snomed", model, "--model", "crnn", "--folds", "1",
                        "--no-refit", env={"CINC2020_CONFIG": json.dumps(settings)})
    assert result.returncode == 0, result.stderr[-2000:]
    (member,) = json.loads((model / "model.json").read_text())["members"]
    assert member["config"]["fs"] == 500 and member["config"]["window_s"] == 3.0
    outputs = tmp_path / "outputs"
    result = run_script(ROOT / "driver.py", model, FIXTURES / "cinc_snomed", outputs)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(read_outputs(outputs)) == 12


def diagnosis_named_records(folder):
    """40 PTB-XL records named after their diagnosis, as private sets often are: 20 AF*, 20 N* (normal)."""
    rows = list(csv.DictReader((DATA / "ptbxl" / "INDEX.csv").open()))
    af = [r["record"] for r in rows if "164889003" in r["dx"].split(",")][:20]
    normal = [r["record"] for r in rows if r["dx"] == "426783006"][:20]
    for prefix, names in (("AF", af), ("N", normal)):
        copy_records([DATA / "ptbxl" / f"{n}.hea" for n in names], folder, rename=lambda n, p=prefix: p + n[2:])
    return folder


@pytest.mark.shared_data
def test_names_that_spell_diagnoses_stop_training_with_the_way_out(tmp_path):
    """Each name prefix would be its own source, and AF would have no record that counts as a negative: a
    model that learned nothing of it would be saved. Training stops, naming the class, the sources and the
    way out; the way out trains."""
    records = diagnosis_named_records(tmp_path / "records")
    settings = {"epochs": 1, "folds": 2, "refit": False}
    refused = run_script(ROOT / "train_model.py", records, tmp_path / "model",
                         env={"CINC2020_CONFIG": json.dumps(settings)})
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "records per source (sources from the letters the record names start with): AF 20, N 20" in refused.stderr
    assert "class 164889003 has no record that counts as a negative" in refused.stderr
    assert "(AF)" in refused.stderr and '"sources": "one"' in refused.stderr
    assert not (tmp_path / "model" / "model.json").exists()

    trained = run_script(ROOT / "train_model.py", records, tmp_path / "model",
                         env={"CINC2020_CONFIG": json.dumps({**settings, "sources": "one"})})
    assert trained.returncode == 0, trained.stderr[-2000:]
    document = json.loads((tmp_path / "model" / "model.json").read_text())
    assert len(document["members"]) == 2  # folds and refit from the configuration: the organisers' call has no options
    for member in document["members"]:
        assert member["positive_weights"]["164889003"] > 0
        assert member["training_data"]["records_per_source"] == {"every record": 40}
        assert member["training_data"]["positives_per_class"]["164889003"] == 10  # its fold's training records
