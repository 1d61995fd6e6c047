"""The organisers' three 2020 driver patterns, each written here the way that driver calls the entry
(the final one is driver.py itself)."""

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, run_script
from cinc2020.inference import answer_for, load_model
from cinc2020.labels import CPSC_CLASSES, representative
from cinc2020.records import read_record
from run_12ECG_classifier import load_12ECG_model, run_12ECG_classifier


def classes_in_headers(folder):
    """The earlier drivers' class list: every #Dx entry of the test headers, sorted."""
    found = set()
    for header in folder.glob("*.hea"):
        for line in header.read_text().splitlines():
            if line.startswith("#Dx"):
                found |= {entry.strip() for entry in line.split(":", 1)[1].split(",")}
    return sorted(found)


def four_argument_run(model, folder):
    """What the February and July 2020 drivers do: one call per record with the class list."""
    classes = classes_in_headers(folder)
    answers = {}
    for header in sorted(folder.glob("*.hea")):
        data, header_lines = read_record(header)
        labels, scores = run_12ECG_classifier(data, header_lines, classes, model)
        assert len(labels) == len(scores) == len(classes)
        assert set(np.asarray(labels).tolist()) <= {0, 1} and all(0 <= s <= 1 for s in scores)
        answers[header.stem] = (np.asarray(labels), np.asarray(scores))
    return classes, answers


def final_outputs(model_dir, folder, out):
    """driver.py's own output files: record -> (classes, labels, scores)."""
    result = run_script(ROOT / "driver.py", model_dir, folder, out)
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = {}
    for path in out.glob("*.csv"):
        _, classes, labels, scores = path.read_text().splitlines()
        outputs[path.stem] = (classes.split(","), np.array(labels.split(","), dtype=int),
                              np.array(scores.split(","), dtype=float))
    return outputs


@pytest.mark.shared_data
def test_unofficial_phase_driver_loads_with_no_folder_and_gets_the_cpsc_model(tmp_path):
    model = load_12ECG_model()
    classes, answers = four_argument_run(model, FIXTURES / "cpsc_text")
    assert classes == sorted(CPSC_CLASSES) and model.chosen is model.models["cpsc"]
    expected = final_outputs(ROOT / "model" / "cpsc", FIXTURES / "cpsc_text", tmp_path / "final")
    for record, (labels, scores) in answers.items():
        their_classes, their_labels, their_scores = expected[record]
        assert their_classes == classes
        np.testing.assert_array_equal(labels, their_labels)
        np.testing.assert_allclose(scores, their_scores, rtol=1e-12)


@pytest.mark.shared_data
def test_july_driver_gets_its_header_codes_answered(tmp_path):
    model = load_12ECG_model(ROOT / "model")
    classes, answers = four_argument_run(model, FIXTURES / "cinc_snomed")
    assert "59118001" in classes and "164867002" in classes     # an equivalent code and an unscored one
    expected = final_outputs(ROOT / "model", FIXTURES / "cinc_snomed", tmp_path / "final")
    for record, (labels, scores) in answers.items():
        own_classes, own_labels, own_scores = expected[record]
        for j, code in enumerate(classes):
            if representative(code) in own_classes:
                k = own_classes.index(representative(code))
                assert (labels[j], scores[j]) == (own_labels[k], pytest.approx(own_scores[k], rel=1e-12))
            else:
                assert (labels[j], scores[j]) == (0, 0.0)


def test_classes_are_answered_across_schemes():
    labels, probabilities = np.array([1, 0, 1]), np.array([0.9, 0.2, 0.6])
    snomed = ["164889003", "713427006", "426783006"]
    got_labels, got = answer_for(["AF", "Normal", "RBBB", "59118001"], labels, probabilities, snomed)
    np.testing.assert_array_equal(got, [0.9, 0.0, 0.2, 0.2])     # Normal is no single code: unanswered
    np.testing.assert_array_equal(got_labels, [1, 0, 0, 0])
    cpsc = ["AF", "RBBB", "PVC"]
    got_labels, got = answer_for(["164889003", "59118001", "17338001", "164884008", "426783006"],
                                 labels, probabilities, cpsc)
    np.testing.assert_array_equal(got, [0.9, 0.2, 0.6, 0.6, 0.0])
    np.testing.assert_array_equal(got_labels, [1, 0, 1, 1, 0])


def test_shipped_models_speak_their_schemes():
    assert load_model(ROOT / "model" / "cpsc").classes == list(CPSC_CLASSES)
    assert all(c.isdigit() for c in load_model(ROOT / "model").classes)
