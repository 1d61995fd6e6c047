"""Fold ensembles and the stacking meta-classifier: what they compute, and that it survives save and load."""

import numpy as np
import pytest
import torch

from conftest import FIXTURES
from cinc2020 import checkpoint
from cinc2020.checkpoint import ModelFileError
from cinc2020.config import config_from_environment
from cinc2020.preprocess import prepare
from cinc2020.ensemble import combine, cross_validated_stacking, fit_stacker, stacker_probabilities
from cinc2020.decisions import decide
from cinc2020.inference import classify, load_model
from cinc2020.models import build_model
from cinc2020.records import read_record

CLASSES = ["164889003", "426783006", "713427006"]
ARCHITECTURES = ["crnn", "crnn", "cnn_attention", "cnn_attention"]  # two folds of each


def members():
    result = []
    for seed, architecture in enumerate(ARCHITECTURES):
        torch.manual_seed(seed)
        # each member brings its own normalisation, the source designs' (the defaults are "std" for every one)
        config = config_from_environment(model=architecture, normalisation="std" if architecture == "crnn" else "mean")
        result.append(checkpoint.Member(config, build_model(config, len(CLASSES)).eval().state_dict(),
                                        {"fold": seed % 2 + 1}))
    return result


def expected_member_probabilities(saved_members, data, lines):
    """Each network's probabilities, computed from the members in memory."""
    out = []
    for member in saved_members:
        network = build_model(member.config, len(CLASSES)).eval()
        network.load_state_dict(member.state)
        x = torch.from_numpy(prepare(data, lines, member.config))[None]
        with torch.no_grad():
            out.append(torch.sigmoid(network(x, torch.tensor([x.shape[-1]])))[0].double().numpy())
    return np.array(out)


def stacker_for_test():
    rng = np.random.default_rng(0)
    return {"coefficients": rng.normal(0, 0.5, (3, 6)), "intercepts": rng.normal(0, 0.5, 3)}


@pytest.mark.shared_data
@pytest.mark.parametrize("stacking", [False, True])
def test_saved_ensemble_predicts_what_its_members_do(tmp_path, stacking):
    saved_members = members()
    stacker = stacker_for_test() if stacking else None
    model = checkpoint.SavedModel(CLASSES, [0.3, 0.5, 0.7], saved_members,
                                  None if stacker is None else {k: torch.from_numpy(v) for k, v in stacker.items()},
                                  ["crnn", "cnn_attention"] if stacking else [])
    checkpoint.save(tmp_path, model, recipe={"folds": 2})
    loaded = load_model(tmp_path)
    assert len(loaded.networks) == 4 and [c.model for c in loaded.configs] == ARCHITECTURES
    assert [c.normalisation for c in loaded.configs] == ["std", "std", "mean", "mean"]

    data, lines = read_record(FIXTURES / "cinc_snomed" / "E00001.hea")
    each = expected_member_probabilities(saved_members, data, lines)
    crnn, attention = each[:2].mean(axis=0), each[2:].mean(axis=0)
    if stacking:
        features = np.log(np.concatenate([crnn, attention]) / (1 - np.concatenate([crnn, attention])))
        expected = 1 / (1 + np.exp(-(stacker["coefficients"] @ features + stacker["intercepts"])))
    else:
        expected = (crnn + attention) / 2
    labels, scores, classes = classify(data, lines, loaded)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert classes == CLASSES and labels.tolist() == decide(expected, np.array([0.3, 0.5, 0.7]))[0].tolist()


def test_stacker_that_does_not_fit_is_refused(tmp_path):
    wrong = {"coefficients": torch.zeros(3, 4), "intercepts": torch.zeros(3)}  # 4 inputs, not 2 x 3
    checkpoint.save(tmp_path, checkpoint.SavedModel(CLASSES, [0.5] * 3, members(), wrong, ["crnn", "cnn_attention"]))
    with pytest.raises(ModelFileError, match="the stacker does not fit 3 classes"):
        load_model(tmp_path)


def test_combine_means_folds_then_architectures():
    probabilities = np.array([[[0.2]], [[0.4]], [[0.9]]])  # two CRNN folds, one attention model
    assert combine(probabilities, ["crnn", "crnn", "cnn_attention"])[0, 0] == pytest.approx((0.3 + 0.9) / 2)


def test_stacker_learns_which_model_to_trust():
    """Class 0 is told by the second model only; the meta-classifier finds it and beats the mean."""
    rng = np.random.default_rng(1)
    labels = (rng.random((600, 2)) < 0.3).astype(float)
    informative = np.clip(0.2 + 0.6 * labels + rng.normal(0, 0.1, labels.shape), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, labels.shape)
    first, second = np.column_stack([noise[:, 0], informative[:, 1]]), np.column_stack([informative[:, 0], noise[:, 1]])
    stacker = fit_stacker([first, second], labels)
    stacked = stacker_probabilities(stacker, [first, second])
    assert abs(stacker["coefficients"][0, 2]) > 5 * abs(stacker["coefficients"][0, 0])  # second model's class 0
    log_loss = lambda p: -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))  # noqa: E731
    assert log_loss(stacked) < log_loss((first + second) / 2) - 0.1


def test_stacker_minimises_its_penalised_log_loss():
    """At the fitted coefficients the gradient of log-loss + penalty/2 |w|^2 vanishes."""
    rng = np.random.default_rng(2)
    labels = (rng.random((200, 1)) < 0.4).astype(float)
    probabilities = [np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.2, labels.shape), 0.01, 0.99)]
    stacker = fit_stacker(probabilities, labels, penalty=1.0)
    features = np.log(probabilities[0] / (1 - probabilities[0]))
    p = stacker_probabilities(stacker, probabilities)[:, 0]
    gradient_w = features[:, 0] @ (p - labels[:, 0]) + stacker["coefficients"][0, 0]
    gradient_b = np.sum(p - labels[:, 0])
    assert abs(gradient_w) < 1e-6 and abs(gradient_b) < 1e-6


def test_cross_validated_stacking_never_sees_the_record():
    rng = np.random.default_rng(3)
    labels = (rng.random((90, 2)) < 0.5).astype(float)
    probabilities = [rng.uniform(0.05, 0.95, labels.shape), rng.uniform(0.05, 0.95, labels.shape)]
    fold_of = np.arange(90) % 3
    stacked = cross_validated_stacking(probabilities, labels, fold_of)
    for fold in range(3):
        rest, held_out = fold_of != fold, fold_of == fold
        alone = stacker_probabilities(fit_stacker([p[rest] for p in probabilities], labels[rest]),
                                      [p[held_out] for p in probabilities])
        np.testing.assert_allclose(stacked[held_out], alone)
