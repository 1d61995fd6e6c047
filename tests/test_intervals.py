"""Bootstrap intervals: the same numbers as scoring every draw afresh, with the table read once."""

import numpy as np
import pytest

from cinc2020 import intervals, scoring
from cinc2020.intervals import bootstrap_intervals, paired_difference
from cinc2020.labels import CPSC_CLASSES
from cinc2020.scoring import headline, score_predictions

CLASSES = ["164889003", "426783006", "270492004", "59118001"]


def case(n, seed=0, classes=CLASSES, normal="426783006"):
    rng = np.random.default_rng(seed)
    truth = rng.random((n, len(classes))) < 0.3
    dx = [[c for c, t in zip(classes, row) if t] or [normal] for row in truth]
    scores = np.clip(0.4 * truth + rng.uniform(0, 0.6, truth.shape), 0, 1)
    return dx, (scores > 0.5).astype(int), scores


def afresh(dx, classes, outputs, scores, scheme, draws, seed=0):
    """Each draw scored from its records' labels as a scorer would: the definition the intervals must keep."""
    rng = np.random.default_rng(seed)
    drawn = {"headline": [], "auroc": []}
    for _ in range(draws):
        rows = rng.integers(0, len(dx), len(dx))
        result = score_predictions([dx[i] for i in rows], classes, outputs[rows], scores[rows], scheme)
        drawn["headline"].append(headline(result, scheme))
        drawn["auroc"].append(result.auroc)
    return {key: np.nanpercentile(values, [2.5, 97.5]).tolist() for key, values in drawn.items()}


@pytest.mark.parametrize("scheme", ["snomed", "cpsc"])
def test_intervals_equal_those_of_scoring_every_draw_afresh(scheme):
    classes = CLASSES if scheme == "snomed" else list(CPSC_CLASSES)
    dx, outputs, scores = case(40, classes=classes, normal=classes[1] if scheme == "snomed" else "Normal")
    assert bootstrap_intervals(dx, classes, outputs, scores, scheme, draws=100) == \
        afresh(dx, classes, outputs, scores, scheme, draws=100)


def test_the_scoring_table_is_read_once_not_once_a_draw(monkeypatch):
    reads = []
    real = scoring.load_weights
    counting = lambda *args: reads.append(1) or real(*args)  # noqa: E731
    monkeypatch.setattr(scoring, "load_weights", counting)
    monkeypatch.setattr(intervals, "load_weights", counting, raising=False)
    dx, outputs, scores = case(50)
    bootstrap_intervals(dx, CLASSES, outputs, scores, "snomed", draws=100)
    assert len(reads) <= 2


def test_intervals_narrow_with_more_records_and_repeat_with_the_seed():
    widths = []
    for dx, outputs, scores in (case(60), case(600, seed=1)):
        first = bootstrap_intervals(dx, CLASSES, outputs, scores, "snomed", draws=200)
        assert first == bootstrap_intervals(dx, CLASSES, outputs, scores, "snomed", draws=200)
        point = score_predictions(dx, CLASSES, outputs, scores, "snomed")
        assert first["headline"][0] <= point.challenge_metric <= first["headline"][1]
        widths.append(first["headline"][1] - first["headline"][0])
    assert widths[1] < widths[0] / 2  # ten times the records: about a third of the width


def test_a_paired_difference_is_zero_against_itself_and_holds_the_point_difference():
    dx, outputs, scores = case(200)
    assert paired_difference(dx, CLASSES, (outputs, scores), (outputs, scores), "snomed", draws=100) == \
        {"headline": [0.0, 0.0], "auroc": [0.0, 0.0]}
    worse = (scores > 0.7).astype(int)
    low, high = paired_difference(dx, CLASSES, (outputs, scores), (worse, scores), "snomed", draws=200)["headline"]
    point = (score_predictions(dx, CLASSES, outputs, scores, "snomed").challenge_metric
             - score_predictions(dx, CLASSES, worse, scores, "snomed").challenge_metric)
    assert low <= point <= high
