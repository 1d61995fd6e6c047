"""The 2021 contract: the organisers' train_model.py, extract_leads_wfdb.py and test_model.py, run unchanged
beside team_code.py, on fixture records and their reduced-lead copies; their scorer and ours agree."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from test_scorer import OFFICIAL_2021, assert_agrees_with_the_official_2021_scorer
from cinc2020.records import LEAD_SETS_2021
from cinc2020.scoring import WEIGHTS_2021_FILE, load_weights

pytestmark = pytest.mark.shared_data
QUICK = {"epochs": 1, "folds": 2, "min_positives": 1, "batch_size": 4, "sources": "one"}


def organisers(script, *args, cwd, config=None):
    """One of the organisers' scripts, unchanged, from a folder of their files; the entry on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CINC2020_CONFIG": json.dumps(config or {})}
    result = subprocess.run([sys.executable, str(cwd / script), *map(str, args)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """The organisers' files in a folder of their own, and the fixture records in one folder (their
    find_challenge_files reads no subfolder)."""
    folder = tmp_path_factory.mktemp("harness")
    for name in ("train_model.py", "test_model.py", "helper_code.py", "extract_leads_wfdb.py"):
        shutil.copy(OFFICIAL_2021 / name, folder)
    return folder


@pytest.fixture(scope="module")
def trained(harness, tmp_path_factory):
    model = tmp_path_factory.mktemp("model")
    organisers("train_model.py", FIXTURES / "cinc_snomed", model, cwd=harness, config=QUICK)
    return model


def test_their_train_model_saves_thresholds_for_every_lead_set(trained):
    document = json.loads((trained / "model.json").read_text())
    assert set(document["thresholds_2021"]) == set(LEAD_SETS_2021)
    assert all(len(t) == len(document["classes"]) for t in document["thresholds_2021"].values())
    assert set(document["cross_validation_2021"]) >= set(LEAD_SETS_2021) | {"12 leads, the 2020 answers"}
    oof = np.load(trained / "out_of_fold.npz")
    assert {f"probabilities_{n.replace(' ', '_')}" for n in list(LEAD_SETS_2021)[1:]} <= set(oof.files)


@pytest.mark.parametrize("lead_set", list(LEAD_SETS_2021))
def test_their_test_model_answers_every_record_of_every_lead_set(harness, trained, lead_set, tmp_path):
    records = FIXTURES / "cinc_snomed"
    if lead_set != "12 leads":
        reduced = tmp_path / "records"
        organisers("extract_leads_wfdb.py", "-i", records, "-o", reduced, "-l", *LEAD_SETS_2021[lead_set], cwd=harness)
        records = reduced
    outputs = tmp_path / "outputs"
    organisers("test_model.py", trained, records, outputs, cwd=harness)
    classes = load_weights(WEIGHTS_2021_FILE)[0]
    names = sorted(p.stem for p in records.glob("*.hea"))
    assert sorted(p.stem for p in outputs.glob("*.csv")) == names
    for name in names:
        lines = (outputs / f"{name}.csv").read_text().splitlines()
        assert lines[0] == f"#{name}" and lines[1].split(",") == classes
        labels, probabilities = lines[2].split(","), [float(v) for v in lines[3].split(",")]
        assert set(labels) <= {"0", "1"} and "1" in labels and all(0 <= p <= 1 for p in probabilities)
    assert_agrees_with_the_official_2021_scorer(records, outputs, tmp_path / "official")


def test_run_model_never_raises_and_says_why_once(trained, capsys):
    import team_code

    model = team_code.load_model(str(trained), ("I", "II"))
    header = (FIXTURES / "cinc_snomed" / "A0002.hea").read_text()
    classes, labels, probabilities = team_code.run_model(model, header, np.zeros((3, 7)))  # rows the header lacks
    assert len(classes) == 26 and not np.any(labels) and not np.any(probabilities)
    assert capsys.readouterr().err.count("error: record A0002") == 1
    assert model.lead_set == "2 leads"


def test_the_shipped_model_through_their_test_model_scores_alike_by_both_scorers(harness, tmp_path):
    """model/ as it ships (its thresholds tuned per lead set) on the 12 fixture records
    and their 2-lead copies."""
    records = FIXTURES / "cinc_snomed"
    reduced = tmp_path / "records"
    organisers("extract_leads_wfdb.py", "-i", records, "-o", reduced, "-l", "I", "II", cwd=harness)
    for folder, outputs in ((records, tmp_path / "outputs12"), (reduced, tmp_path / "outputs2")):
        result = organisers("test_model.py", ROOT / "model", folder, outputs, cwd=harness)
        assert "failed" not in result.stdout
        assert_agrees_with_the_official_2021_scorer(folder, outputs, tmp_path / "official")
