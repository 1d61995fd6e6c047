"""Decisions: per-class thresholds tuned for the Challenge metric (official labels) or F-beta (CPSC labels)."""

import numpy as np
import pytest

from cinc2020.decisions import (CANDIDATES, NEVER, DecisionMetric, candidate_scores, cross_validated_outputs, decide,
                                source_balanced_weights, tune_global_threshold,
                                per_class_f_beta_thresholds, tune_thresholds)
from cinc2020.scoring import score_predictions

AF, SINUS, IAVB = "164889003", "426783006", "270492004"


def separable_case():
    """Each class is told apart perfectly, but only by a threshold well away from 0.5."""
    classes = [AF, SINUS, IAVB]
    dx = [[AF], [AF], [SINUS], [SINUS], [IAVB, SINUS], [IAVB, SINUS]]
    probabilities = np.array([
        # AF positives at 0.25-0.3, negatives at most 0.15: its threshold must lie in (0.15, 0.25];
        # their sinus probability (0.6) passes 0.5, so the most-probable-class rule does not rescue them
        [0.30, 0.60, 0.10], [0.25, 0.55, 0.10],
        # IAVB positives at 0.8-0.9, negatives up to 0.7: its threshold must lie in (0.7, 0.8]
        [0.10, 0.90, 0.70], [0.15, 0.95, 0.65], [0.05, 0.90, 0.80], [0.15, 0.96, 0.90],
    ])
    return classes, dx, probabilities


def test_separable_case_reaches_a_perfect_challenge_metric():
    classes, dx, probabilities = separable_case()
    assert score_predictions(dx, classes, decide(probabilities, np.full(3, 0.5)), probabilities,
                             "snomed").challenge_metric < 1
    thresholds, score = tune_thresholds(probabilities, dx, classes, "snomed")
    assert score == pytest.approx(1.0)
    assert 0.15 < thresholds[0] <= 0.25 and 0.6 < thresholds[1] <= 0.9 and 0.7 < thresholds[2] <= 0.8
    expected = np.array([[c in d for c in classes] for d in dx]).astype(int)
    np.testing.assert_array_equal(decide(probabilities, thresholds), expected)


def test_cpsc_thresholds_maximise_f_beta():
    dx = [["AF"], ["AF"], ["Normal"], ["Normal"], ["PAC"], ["PAC", "AF"]]
    classes = ["AF", "Normal", "PAC"]
    probabilities = np.array([[0.40, 0.2, 0.1], [0.35, 0.1, 0.2], [0.1, 0.6, 0.2],
                              [0.2, 0.7, 0.1], [0.1, 0.2, 0.45], [0.38, 0.1, 0.42]])
    thresholds, score = tune_thresholds(probabilities, dx, classes, "cpsc")
    assert score == pytest.approx(1.0)
    assert score_predictions(dx, classes, decide(probabilities, thresholds), probabilities, "cpsc").f_beta == \
        pytest.approx(1.0)


@pytest.mark.parametrize("scheme", ["snomed", "cpsc"])
def test_no_single_threshold_change_scores_better(scheme):
    """Coordinate ascent's guarantee, checked on random records: every class's threshold is the best
    candidate given the others, and the result is never worse than 0.5 everywhere."""
    rng = np.random.default_rng(4)
    classes = [AF, SINUS, IAVB] if scheme == "snomed" else ["AF", "Normal", "PAC"]
    dx = [[c for c in classes if rng.random() < 0.35] or [classes[1]] for _ in range(80)]
    truth = np.array([[c in d for c in classes] for d in dx])
    probabilities = np.clip(0.35 * truth + rng.uniform(0, 0.65, truth.shape), 0, 1)
    thresholds, score = tune_thresholds(probabilities, dx, classes, scheme)
    metric = DecisionMetric(dx, classes, scheme)
    assert score == pytest.approx(metric(decide(probabilities, thresholds)))
    assert score >= metric(decide(probabilities, np.full(3, 0.5)))
    for c in range(3):
        for candidate in CANDIDATES:
            trial = thresholds.copy()
            trial[c] = candidate
            assert metric(decide(probabilities, trial)) <= score + 1e-12


def test_cross_validated_thresholds_come_from_the_other_folds():
    rng = np.random.default_rng(5)
    classes = [AF, SINUS, IAVB]
    dx = [[c for c in classes if rng.random() < 0.4] or [SINUS] for _ in range(60)]
    truth = np.array([[c in d for c in classes] for d in dx])
    probabilities = np.clip(0.3 * truth + rng.uniform(0, 0.7, truth.shape), 0, 1)
    fold_of = np.arange(60) % 3
    outputs = cross_validated_outputs(probabilities, dx, classes, "snomed", fold_of)[0]
    for fold in range(3):
        rest = fold_of != fold
        thresholds, _ = tune_thresholds(probabilities[rest], [d for d, r in zip(dx, rest) if r], classes, "snomed")
        np.testing.assert_array_equal(outputs[~rest], decide(probabilities[~rest], thresholds))


def test_a_class_ranked_no_better_than_chance_is_never_answered_by_its_threshold():
    """A rare class the network has not learned (its positives ranked below most negatives) is not tuned:
    F-beta alone would pick its lowest candidate and answer it for nearly every record."""
    classes = ["AF", "Normal", "STE"]
    n = 200
    dx = [["AF"] if i % 2 else ["Normal"] for i in range(n)]
    for i in (3, 5, 7):
        dx[i] = dx[i] + ["STE"]
    probabilities = np.zeros((n, 3))
    probabilities[:, 0] = [0.9 if "AF" in d else 0.1 for d in dx]
    probabilities[:, 1] = 1 - probabilities[:, 0]
    probabilities[:, 2] = np.linspace(0.05, 0.45, n)[::-1]  # falls with the index: the positives rank high
    probabilities[[3, 5, 7], 2] = 0.03                        # ... but they are the lowest of all
    labels = np.array([[c in d for c in classes] for d in dx])
    assert per_class_f_beta_thresholds(probabilities, labels, CANDIDATES)[2] == CANDIDATES[0]
    thresholds, _ = tune_thresholds(probabilities, dx, classes, "cpsc")
    assert thresholds[2] == NEVER and not decide(probabilities, thresholds)[:, 2].any()
    assert thresholds[0] < 0.9 and thresholds[1] < 0.9  # the learned classes are still tuned


def random_case(seed: int):
    """A random tuning problem: either scheme, 3 to all of its classes, 40 to 400 records, classes learned
    from not at all to well (probabilities rounded to 3 places, so that ties occur)."""
    from cinc2020.labels import CPSC_CLASSES
    from cinc2020.scoring import load_weights

    rng = np.random.default_rng(seed)
    scheme = "snomed" if seed % 2 == 0 else "cpsc"
    pool = load_weights()[0] if scheme == "snomed" else list(CPSC_CLASSES)
    n_classes = int(rng.integers(3, len(pool) + 1))
    classes = [str(c) for c in rng.choice(pool, n_classes, replace=False)]
    n = int(rng.integers(40, 400))
    prevalence = rng.uniform(0.02, 0.5, n_classes)
    truth = rng.random((n, n_classes)) < prevalence
    dx = [[c for c, t in zip(classes, row) if t] or [str(rng.choice(pool))] for row in truth]
    skill = rng.uniform(0.0, 0.6, n_classes)
    probabilities = np.round(np.clip(skill * truth + rng.uniform(0, 1 - skill, truth.shape), 0, 1), 3)
    return scheme, classes, dx, probabilities


def test_tuning_returns_the_thresholds_of_the_search_that_scored_every_candidate_afresh():
    import json
    from conftest import ROOT

    saved = json.loads((ROOT / "tests" / "data" / "thresholds_before_incremental.json").read_text())["cases"]
    assert len(saved) == 24
    for case in saved:
        scheme, classes, dx, probabilities = random_case(case["seed"])
        thresholds, score = tune_thresholds(probabilities, dx, classes, scheme)
        assert thresholds.tolist() == case["thresholds"], case["seed"]
        assert score == pytest.approx(case["score"], abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_candidate_scores_equal_each_candidate_scored_afresh(seed):
    scheme, classes, dx, probabilities = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    known = rng.random(probabilities.shape) < 0.8 if seed % 4 >= 2 else None
    metric = DecisionMetric(dx, classes, scheme, known)
    thresholds = rng.choice(CANDIDATES, len(classes))
    for c in range(len(classes)):
        trials = np.repeat(thresholds[None], len(CANDIDATES), axis=0)
        trials[:, c] = CANDIDATES
        afresh = [metric(decide(probabilities, trial)) for trial in trials]
        np.testing.assert_allclose(candidate_scores(metric, probabilities, thresholds, c, CANDIDATES), afresh,
                                   rtol=0, atol=1e-12)
    if known is None:  # the metric is the official scorer's on the records' own labels
        outputs = decide(probabilities, thresholds)
        official = score_predictions(dx, classes, outputs, probabilities, scheme)
        assert metric(outputs) == pytest.approx(official.challenge_metric if scheme == "snomed" else official.f_beta,
                                                abs=1e-12)


def test_a_label_the_source_never_gives_counts_neither_as_hit_nor_as_miss():
    """Source B (4 records in 5) never labels left axis deviation, though half its records have it (the
    network finds it): scored as false positives, those calls push the threshold above every B record; as
    unknown labels, they leave it where source A's records put it."""
    lad, sinus = "39732003", "426783006"
    classes = [lad, sinus]
    rng = np.random.default_rng(0)
    n = 200
    source_b = np.arange(n) >= n // 5
    has_lad = rng.random(n) < 0.5
    dx = [[sinus] + ([lad] if has and not b else []) for has, b in zip(has_lad, source_b)]
    probabilities = np.column_stack([np.where(has_lad, rng.uniform(0.3, 0.6, n), rng.uniform(0.0, 0.2, n)),
                                     np.full(n, 0.9)])
    known = np.ones((n, 2), dtype=bool)
    known[source_b, 0] = False
    blind, _ = tune_thresholds(probabilities, dx, classes, "snomed")
    aware, _ = tune_thresholds(probabilities, dx, classes, "snomed", known)
    assert blind[0] > probabilities[source_b & has_lad, 0].max()        # B's true calls counted as misses
    assert probabilities[~has_lad, 0].max() < aware[0] <= probabilities[has_lad, 0].min()  # LAD answered right
    outputs = decide(probabilities, aware)
    assert DecisionMetric(dx, classes, "snomed", known)(outputs) == pytest.approx(
        DecisionMetric(dx, classes, "snomed")(outputs * known))        # an unknown cell's answer is no answer


def test_a_class_no_tuning_record_labels_is_never_answered_by_its_threshold():
    classes = [AF, SINUS, IAVB]
    dx = [[SINUS]] * 6 + [[AF]] * 4
    probabilities = np.random.default_rng(0).uniform(0, 1, (10, 3))
    known = np.ones((10, 3), dtype=bool)
    known[:, 2] = False
    thresholds, _ = tune_thresholds(probabilities, dx, classes, "snomed", known)
    assert thresholds[2] == NEVER


def test_the_always_normal_answer_scores_zero_under_the_tuning_metric_when_labels_are_unknown():
    """The metric that tunes counts an answer where the source gives no label as no answer; the baseline it
    scores against (always sinus rhythm) counts the same way, so it scores 0 as under the official metric,
    and a perfect answer 1."""
    classes = [AF, SINUS, IAVB]
    dx = [[AF], [SINUS], [IAVB, SINUS], [IAVB], [AF, IAVB], [SINUS]]
    known = np.ones((6, 3), dtype=bool)
    known[[0, 3, 4], 1] = False  # a source that never writes sinus rhythm beside other findings
    metric = DecisionMetric(dx, classes, "snomed", known)
    always_normal = np.zeros((6, 3), dtype=int)
    always_normal[:, 1] = 1
    truth = np.array([[c in d for c in classes] for d in dx], dtype=int)
    assert metric(always_normal) == pytest.approx(0, abs=1e-12)
    assert metric(truth) == pytest.approx(1, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_without_the_most_probable_class_candidates_score_as_afresh(seed):
    scheme, classes, dx, probabilities = random_case(seed)
    metric = DecisionMetric(dx, classes, scheme)
    thresholds = np.random.default_rng(seed).choice(CANDIDATES, len(classes))
    for c in range(len(classes)):
        trials = np.repeat(thresholds[None], len(CANDIDATES), axis=0)
        trials[:, c] = CANDIDATES
        afresh = [metric(decide(probabilities, trial, fallback=False)) for trial in trials]
        np.testing.assert_allclose(candidate_scores(metric, probabilities, thresholds, c, CANDIDATES, fallback=False),
                                   afresh, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 2, 4, 6])
def test_source_balanced_weights_make_the_metric_the_mean_of_the_sources_metrics(seed):
    scheme, classes, dx, probabilities = random_case(seed)
    sources = np.where(np.arange(len(dx)) % 5 == 0, "small", "large")  # a fifth of the records: one source
    weights = source_balanced_weights(dx, classes, scheme, sources)
    outputs = decide(probabilities, np.full(len(classes), 0.4))
    per_source = [DecisionMetric([d for d, s in zip(dx, sources) if s == name], classes, scheme)(outputs[sources == name])
                  for name in ("small", "large")]
    assert DecisionMetric(dx, classes, scheme, record_weights=weights)(outputs) == pytest.approx(np.mean(per_source),
                                                                                                 abs=1e-12)


def test_one_global_threshold_is_the_best_candidate_for_every_class_at_once():
    classes, dx, probabilities = separable_case()
    threshold, score = tune_global_threshold(probabilities, dx, classes, "snomed")
    metric = DecisionMetric(dx, classes, "snomed")
    assert score == max(metric(decide(probabilities, np.full(3, t))) for t in CANDIDATES)
    assert score == metric(decide(probabilities, np.full(3, threshold)))


def test_threshold_tuning_needs_no_network_code():
    """Tuning reads probabilities and labels alone: it imports neither torch nor the models."""
    import subprocess
    import sys

    from conftest import ROOT
    probe = "import sys, cinc2020.decisions; print(sorted(m for m in ('torch', 'cinc2020.models') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


@pytest.mark.parametrize("shrink", [0.25, 0.5, 1.0])
def test_shrunk_thresholds_lie_that_share_of_the_way_to_the_global_one_and_score_as_decided(shrink):
    scheme, classes, dx, probabilities = random_case(2)
    per_class, _ = tune_thresholds(probabilities, dx, classes, scheme)
    overall, _ = tune_global_threshold(probabilities, dx, classes, scheme)
    shrunk, score = tune_thresholds(probabilities, dx, classes, scheme, shrink=shrink)
    tuned = per_class < NEVER
    np.testing.assert_allclose(shrunk[tuned], (1 - shrink) * per_class[tuned] + shrink * overall)
    assert (shrunk[~tuned] == NEVER).all()
    assert score == DecisionMetric(dx, classes, scheme)(decide(probabilities, shrunk))
    assert np.array_equal(tune_thresholds(probabilities, dx, classes, scheme, shrink=0.0)[0], per_class)
