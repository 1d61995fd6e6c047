"""The model in model/ as a team gets it: loads, predicts the expected outputs, describes itself."""

import json

import numpy as np

from conftest import ROOT, run_script
from cinc2020.config import Config, config_from_environment
from cinc2020.recipe import OUT_OF_FOLD_FILE
from cinc2020.records import LEAD_SETS_2021
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


def test_shipped_model_is_the_default_recipe_over_every_dev_record(monkeypatch):
    """What `python train_model.py ../shared/data/ptbxl ../shared/data/chapman model` writes: the 4 fold networks
    of the recipe's cross-validation over all 6,867 records of the two development sources (attention networks
    with the screened stages), with thresholds tuned on their out-of-fold probabilities (saved beside them)."""
    monkeypatch.delenv("CINC2020_CONFIG", raising=False)
    document = json.loads((ROOT / "model" / "model.json").read_text())
    scored, _ = load_weights()
    assert set(document["classes"]) <= set(scored)
    assert [m["fold"] for m in document["members"]] == [1, 2, 3, 4]
    for member in document["members"]:
        assert Config.from_json(member["config"]) == config_from_environment(model="cnn_attention")  # the defaults
        assert member["training_data"]["validation_records"] == 0
        assert len(member["history"]) == Config().epochs         # no validation share: the whole schedule
    # each fold network trains on the other three folds: every record three times over
    assert sum(m["training_data"]["train_records"] for m in document["members"]) == 3 * 6867
    assert document["recipe"] == {"models": ["cnn_attention"], "folds": 4, "networks": "the fold models",
                                  "combination": "mean"}
    out_of_fold = np.load(ROOT / "model" / OUT_OF_FOLD_FILE)
    assert out_of_fold["probabilities"].shape == (1, 6867, len(document["classes"]))
    assert sorted(np.unique(out_of_fold["fold"])) == [0, 1, 2, 3] and document["cross_validation"]["records"] == 6867
    per_source = document["cross_validation"]["tuned_thresholds"]["per_source"]
    assert {s: r["records"] for s, r in per_source.items()} == {"Chapman-Shaoxing": 767, "PTB-XL": 6100}
    assert len(set(document["thresholds"])) > 1                 # tuned per class, not 0.5 everywhere
    # the 2021 contract: thresholds tuned per lead set on out-of-fold predictions made with that set's leads
    assert list(document["thresholds_2021"]) == list(LEAD_SETS_2021)
    assert all(len(t) == len(document["classes"]) for t in document["thresholds_2021"].values())
    # Up to eight networks (1.4 million float32 weights, 5.5 MB each: four in model/, model/cpsc/'s), their
    # out-of-fold probabilities and curves: a clone stays small.
    size = sum(p.stat().st_size for p in (ROOT / "model").rglob("*") if p.is_file())
    assert size < 48 * 2**20
