"""The model in model/ as a team gets it: loads, predicts the expected outputs, describes itself."""

import json

import numpy as np

from conftest import ROOT, run_script
from cinc2020.scoring import load_weights

EXPECTED = ROOT / "tests" / "expected" / "samples"


def test_driver_reproduces_the_expected_outputs(tmp_path):
    result = run_script(ROOT / "driver.py", ROOT / "model", ROOT / "samples", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = sorted(EXPECTED.glob("*.csv"))
    assert [p.name for p in sorted(tmp_path.glob("*.csv"))] == [p.name for p in expected] and len(expected) == 10
    for path in expected:
        want, got = path.read_text().splitlines(), (tmp_path / path.name).read_text().splitlines()
        assert got[:3] == want[:3], path.name                 # record, classes, labels
        np.testing.assert_allclose([float(v) for v in got[3].split(",")],
                                   [float(v) for v in want[3].split(",")], atol=1e-6, err_msg=path.name)


def test_shipped_model_describes_its_training():
    """One attention network (the best recipe within the inference budget), thresholds tuned out of fold,
    scored on PTB-XL records held out of every choice."""
    document = json.loads((ROOT / "model" / "model.json").read_text())
    scored, _ = load_weights()
    assert set(document["classes"]) <= set(scored)
    (member,) = document["members"]
    assert member["config"]["model"] == "cnn_attention" and member["config"]["labels"] == "snomed"
    assert member["config"]["class_weights"] and member["config"]["normalisation"] == "mean"
    assert document["recipe"]["folds"] == 3 and document["recipe"]["fold_models_kept"] == 1
    assert document["cross_validation"]["records"] == 4880 and document["test"]["records"] == 1220
    assert len(set(document["thresholds"])) > 1                 # tuned per class, not 0.5 everywhere
    assert document["test"]["challenge_metric"] > 0.4 and document["test"]["auroc"] > 0.8
    size = sum(p.stat().st_size for p in (ROOT / "model").rglob("*") if p.is_file())
    assert size < 5 * 2**20
