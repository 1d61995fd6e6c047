import numpy as np
import pytest

from conftest import ROOT, SAMPLES, run_script
from cinc2020.records import find_records
from cinc2020.inference import load_model
from cinc2020.lead_sets import score_lead_sets
from cinc2020.scorer import read_run, score_run


@pytest.fixture(scope="module")
def results():
    return score_lead_sets(load_model(ROOT / "model"), find_records(SAMPLES))


def test_twelve_leads_score_as_the_driver_outputs_do(results):
    """The 12-lead row is the official scorer's figure for the driver's expected outputs on the same records."""
    expected = score_run(*read_run(SAMPLES, ROOT / "tests" / "expected" / "samples"))
    assert results["12 leads"]["headline"] == pytest.approx(expected.challenge_metric, abs=1e-9)
    assert results["12 leads"]["auroc"] == pytest.approx(expected.auroc, abs=1e-9)
    assert results["12 leads"]["records"] == 10 and results["12 leads"]["of_12_leads"] == 1


def test_lead_sets_that_determine_the_same_leads_score_alike(results):
    """I, II, III, V2 and I, II, V2 read alike: III is derived from I and II."""
    assert results["4 leads"]["headline"] == pytest.approx(results["3 leads"]["headline"], abs=1e-9)
    assert results["4 leads"]["auroc"] == pytest.approx(results["3 leads"]["auroc"], abs=1e-9)
    ratios = [r["of_12_leads"] for r in results.values()]
    np.testing.assert_allclose(ratios, [r["headline"] / results["12 leads"]["headline"] for r in results.values()])


def test_command_prints_every_lead_set():
    result = run_script("-m", "cinc2020.lead_sets", ROOT / "model", SAMPLES, "--limit", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    for lead_set in ("12 leads", "6 leads", "4 leads", "3 leads", "2 leads"):
        assert lead_set in result.stdout
    assert "on 4 records" in result.stdout


def test_fewer_than_a_thousand_records_get_bootstrap_intervals(results):
    for r in results.values():
        low, high = r["headline_95"]
        assert low <= r["headline"] <= high and low < high
        assert r["auroc_95"][0] <= r["auroc"] <= r["auroc_95"][1]
