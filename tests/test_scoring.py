import json
import math
import shutil

import numpy as np
import pytest

from conftest import ROOT, SCORER_CASES, SHARED_SCORER_CASES, run_script
from cinc2020.scorer import evaluate_directories
from cinc2020.scoring import ScoringError, auc, challenge_metric, load_weights, score_official

CASES = [(SCORER_CASES / "official_small", "official"),
         pytest.param(SHARED_SCORER_CASES / "official_quirks", "official", marks=pytest.mark.shared_data),
         (SCORER_CASES / "unofficial_cpsc", "unofficial")]
SCALARS = {"auroc": "auroc", "auprc": "auprc", "accuracy": "accuracy", "f_measure": "f_measure",
           "f_beta_measure": "f_beta", "g_beta_measure": "g_beta", "challenge_metric": "challenge_metric",
           "f_beta": "f_beta", "g_beta": "g_beta"}
VECTORS = ("auroc_classes", "auprc_classes", "f_measure_classes")


@pytest.mark.parametrize("case,phase", CASES)
def test_reproduces_official_scorer(case, phase):
    expected = json.loads((case / "expected.json").read_text())
    scores = evaluate_directories(case / "labels", case / "outputs", phase)
    assert scores.classes == expected["classes"]
    checked = 0
    for key, value in expected.items():
        if key in SCALARS:
            assert getattr(scores, SCALARS[key]) == pytest.approx(value, abs=1e-9), key
            checked += 1
        elif key in VECTORS:
            np.testing.assert_allclose(getattr(scores, key), np.array(value, dtype=float), atol=1e-9, rtol=0)
            checked += 1
    assert checked >= 6


@pytest.mark.shared_data
@pytest.mark.parametrize("case", ["official_small", "unofficial_cpsc"])
def test_carried_scorer_cases_equal_the_shared_ones(case):
    carried = sorted(p.relative_to(SCORER_CASES / case) for p in (SCORER_CASES / case).rglob("*") if p.is_file())
    assert carried and carried == sorted(p.relative_to(SHARED_SCORER_CASES / case)
                                         for p in (SHARED_SCORER_CASES / case).rglob("*") if p.is_file())
    for path in carried:
        assert (SCORER_CASES / case / path).read_bytes() == (SHARED_SCORER_CASES / case / path).read_bytes()


def test_command_line_writes_official_formats(tmp_path):
    case = SCORER_CASES / "official_small"
    expected = json.loads((case / "expected.json").read_text())
    result = run_script(ROOT / "evaluate_12ECG_score.py", case / "labels", case / "outputs",
                        tmp_path / "scores.csv", tmp_path / "class_scores.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, values = (tmp_path / "scores.csv").read_text().splitlines()
    assert header == "AUROC,AUPRC,Accuracy,F-measure,Fbeta-measure,Gbeta-measure,Challenge metric"
    order = ["auroc", "auprc", "accuracy", "f_measure", "f_beta_measure", "g_beta_measure", "challenge_metric"]
    assert values == ",".join(f"{expected[k]:.3f}" for k in order)
    rows = (tmp_path / "class_scores.csv").read_text().splitlines()
    assert rows[0] == "Classes," + ",".join(expected["classes"])
    assert rows[1] == "AUROC," + ",".join(f"{v:.3f}" for v in expected["auroc_classes"])


def test_command_line_unofficial_phase_prints_summary():
    case = SCORER_CASES / "unofficial_cpsc"
    expected = json.loads((case / "expected.json").read_text())
    result = run_script(ROOT / "evaluate_12ECG_score.py", case / "labels", case / "outputs", "--phase", "unofficial")
    assert result.returncode == 0, result.stderr
    header, values = result.stdout.strip().splitlines()
    assert header == "AUROC|AUPRC|Accuracy|F-measure|Fbeta-measure|Gbeta-measure"
    assert values.split("|")[4] == f"{expected['f_beta']:.3f}"


def test_reads_crlf_blank_lines_and_true_false(tmp_path):
    case = SCORER_CASES / "official_small"
    messy = tmp_path / "outputs"
    messy.mkdir()
    for path in sorted((case / "outputs").iterdir()):
        lines = path.read_text().splitlines()
        lines[2] = ",".join("True" if v == "1" else "False" for v in lines[2].split(","))
        messy.joinpath(path.name).write_bytes(("\r\n\r\n".join(lines) + "\r\n\r\n").encode())
    clean = evaluate_directories(case / "labels", case / "outputs")
    dirty = evaluate_directories(case / "labels", messy)
    assert dirty.challenge_metric == clean.challenge_metric
    assert dirty.auroc == clean.auroc and dirty.f_measure == clean.f_measure


def test_missing_output_file_names_the_record(tmp_path):
    case = SCORER_CASES / "official_small"
    outputs = tmp_path / "outputs"
    shutil.copytree(case / "outputs", outputs)
    (outputs / "A0003.csv").unlink()
    with pytest.raises(ScoringError, match="A0003"):
        evaluate_directories(case / "labels", outputs)
    result = run_script(ROOT / "evaluate_12ECG_score.py", case / "labels", outputs)
    assert result.returncode != 0 and "A0003" in result.stderr


def test_auc_small_case_by_hand():
    labels = np.array([[1], [0], [1], [0]], dtype=bool)
    auroc, auprc = auc(labels, np.array([[0.9], [0.8], [0.7], [0.1]]))
    assert auroc[0] == pytest.approx(0.75)
    # Recall steps of 1/2 at precision 1 (0.9) and 2/3 (0.7).
    assert auprc[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    tied, _ = auc(labels, np.array([[0.5], [0.5], [0.5], [0.5]]))
    assert tied[0] == pytest.approx(0.5)


def test_challenge_metric_is_zero_for_always_normal_and_one_for_perfect():
    classes, weights = load_weights()
    rng = np.random.default_rng(0)
    labels = rng.random((50, len(classes))) < 0.1
    normal = np.zeros_like(labels)
    normal[:, classes.index("426783006")] = True
    assert challenge_metric(labels, labels, weights, classes) == pytest.approx(1.0)
    assert challenge_metric(labels, normal, weights, classes) == pytest.approx(0.0)
    scores = score_official(labels, labels, labels.astype(float), classes, weights)
    assert scores.f_measure == pytest.approx(1.0) and scores.accuracy == 1.0
    assert math.isfinite(scores.auroc)


def test_weights_merge_equivalent_pairs():
    classes, weights = load_weights()
    assert len(classes) == 24 and weights.shape == (24, 24)
    assert "59118001" not in classes and "713427006" in classes
    assert np.allclose(np.diag(weights), 1.0)


def test_equivalent_outputs_merge_with_nan_rules():
    from cinc2020.scorer import outputs_to_arrays
    classes = ["713427006", "426783006"]
    names = ["713427006", "59118001", "426783006"]
    parsed = [
        (names, [False, True, True], [float("nan"), 0.4, 0.9]),   # NaN ignored in the mean
        (names, [False, False, False], [float("nan")] * 3),       # no value at all: 0
        (names, [True, False, False], [float("inf"), float("inf"), 0.2]),  # no finite value: 0
        (names, [False, False, True], [0.2, 0.6, 0.1]),
        None,                                                     # malformed file: all negative
    ]
    binary, scalar = outputs_to_arrays(parsed, classes, merge_equivalents=True)
    assert binary.tolist() == [[True, True], [False, False], [True, False], [False, True], [False, False]]
    np.testing.assert_allclose(scalar, [[0.4, 0.9], [0, 0], [0, 0.2], [0.4, 0.1], [0, 0]])
