"""The official scorers on files: the 2021 challenge's evaluate_model.py reproduced (the 2020 scorers: in
tests/test_scoring.py)."""

import json
import math
import shutil
import sys

import numpy as np
import pytest

from conftest import ROOT, SHARED, run_script
from cinc2020.scorer import read_run_2021, score_run_2021

CASES_2021 = ROOT / "tests" / "data" / "scorer_cases_2021"
OFFICIAL_2021 = SHARED / "challenge" / "2021"


def expected_of(case):
    return json.loads((case / "expected.json").read_text())


def assert_scores_equal(scores, expected):
    assert ["|".join(sorted(c.split("|"))) for c in scores.classes] == expected["classes"]
    for key in ("auroc", "auprc", "accuracy", "f_measure", "challenge_metric"):
        value = expected[key]
        assert (math.isnan(getattr(scores, key)) if value is None
                else getattr(scores, key) == pytest.approx(value, abs=1e-9)), key
    for key in ("auroc_classes", "auprc_classes", "f_measure_classes"):
        wanted = np.array([np.nan if v is None else v for v in expected[key]])
        np.testing.assert_allclose(getattr(scores, key), wanted, atol=1e-9, rtol=0)


@pytest.mark.parametrize("case", sorted(p.name for p in CASES_2021.iterdir()))
def test_reproduces_the_2021_scorer_on_its_reference_cases(case):
    """Equivalent codes apart and together, every spelling of a positive, non-finite probabilities, '# Dx:'
    lines it does not read, two #Dx lines, unknown and missing classes, a failed record's empty lines, and a
    set where the metric's two baselines are equal (0.0, not NaN)."""
    folder = CASES_2021 / case
    assert_scores_equal(score_run_2021(*read_run_2021(folder / "labels", folder / "outputs")), expected_of(folder))


def test_the_2021_command_line_writes_the_2021_formats(tmp_path):
    case = CASES_2021 / "quirks"
    expected = expected_of(case)
    result = run_script(ROOT / "evaluate_12ECG_score.py", case / "labels", case / "outputs", tmp_path / "scores.csv",
                        tmp_path / "class_scores.csv", "--phase", "2021", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "scores.csv").read_text().splitlines() == [
        "AUROC,AUPRC,Accuracy,F-measure,Challenge metric",
        ",".join(f"{expected[k]:.3f}" for k in ("auroc", "auprc", "accuracy", "f_measure", "challenge_metric"))]
    rows = (tmp_path / "class_scores.csv").read_text().splitlines()
    assert rows[0] == "Classes," + ",".join(expected["classes"])
    assert rows[1] == "AUROC," + ",".join("nan" if v is None else f"{v:.3f}" for v in expected["auroc_classes"])


def official_2021(labels, outputs, scratch):
    """The organisers' evaluate_model(), unchanged, imported in a folder holding their weights.csv."""
    import importlib
    import os

    scratch.mkdir(exist_ok=True)
    for name in ("evaluate_model.py", "helper_code.py", "weights.csv"):
        shutil.copy(OFFICIAL_2021 / name, scratch)
    here = os.getcwd()
    sys.path.insert(0, str(scratch))
    os.chdir(scratch)
    try:
        for module in ("evaluate_model", "helper_code"):
            sys.modules.pop(module, None)
        return importlib.import_module("evaluate_model").evaluate_model(str(labels), str(outputs))
    finally:
        os.chdir(here)
        sys.path.remove(str(scratch))
        for module in ("evaluate_model", "helper_code"):
            sys.modules.pop(module, None)


def assert_agrees_with_the_official_2021_scorer(labels, outputs, scratch):
    (classes, auroc, auprc, auroc_classes, auprc_classes, accuracy, f_measure, f_measure_classes,
     challenge) = official_2021(labels, outputs, scratch)
    number = lambda v: None if math.isnan(v) else float(v)  # noqa: E731
    assert_scores_equal(score_run_2021(*read_run_2021(labels, outputs)), {
        "classes": ["|".join(sorted(c)) for c in classes], "auroc": number(auroc), "auprc": number(auprc),
        "accuracy": accuracy, "f_measure": number(f_measure), "challenge_metric": challenge,
        "auroc_classes": [number(v) for v in auroc_classes], "auprc_classes": [number(v) for v in auprc_classes],
        "f_measure_classes": [number(v) for v in f_measure_classes]})


@pytest.mark.shared_data
@pytest.mark.parametrize("case", sorted(p.name for p in CASES_2021.iterdir()))
def test_the_reference_cases_are_what_the_organisers_scorer_computes_today(case, tmp_path):
    folder = CASES_2021 / case
    assert_agrees_with_the_official_2021_scorer(folder / "labels", folder / "outputs", tmp_path / "official")
    assert (ROOT / "weights_2021.csv").read_bytes() == (OFFICIAL_2021 / "weights.csv").read_bytes()
