"""Combining member networks: the mean of each architecture's fold models, then
either the mean over architectures or a stacking meta-classifier.

The meta-classifier is one L2-regularised logistic regression per class whose
inputs are the logits of every architecture's probabilities for every class, so
that, say, the attention model's confidence in AF can inform the RBBB output. It
is fitted on out-of-fold probabilities, which no network saw in training, and
applied at inference to the fold models' mean.
"""

from __future__ import annotations

import numpy as np

SMALLEST = 1e-6  # probabilities are clipped to [SMALLEST, 1 - SMALLEST] before taking logits


def architecture_means(member_probabilities: np.ndarray, architectures: list[str]) -> dict[str, np.ndarray]:
    """members x records x classes -> {architecture: records x classes}, in first-seen order."""
    order = list(dict.fromkeys(architectures))
    chosen = np.asarray(architectures)
    return {a: member_probabilities[chosen == a].mean(axis=0) for a in order}


def combine(member_probabilities: np.ndarray, architectures: list[str], stacker: dict | None = None,
            stacker_inputs: list[str] = ()) -> np.ndarray:
    """The model's probabilities (records x classes) from its members' (members x records x classes)."""
    means = architecture_means(member_probabilities, architectures)
    if stacker is None:
        return np.mean(list(means.values()), axis=0)
    return stacker_probabilities(stacker, [means[a] for a in stacker_inputs])


def stack_features(probabilities: list[np.ndarray]) -> np.ndarray:
    p = np.clip(np.concatenate(probabilities, axis=1), SMALLEST, 1 - SMALLEST)
    return np.log(p / (1 - p))


def stacker_probabilities(stacker: dict, probabilities: list[np.ndarray]) -> np.ndarray:
    coefficients, intercepts = np.asarray(stacker["coefficients"]), np.asarray(stacker["intercepts"])
    return 1 / (1 + np.exp(-(stack_features(probabilities) @ coefficients.T + intercepts)))


def fit_stacker(probabilities: list[np.ndarray], labels: np.ndarray, penalty: float = 1.0,
                iterations: int = 50) -> dict[str, np.ndarray]:
    """Per class, the logistic regression minimising log-loss + penalty/2 * |coefficients|^2 (Newton's method).

    ``probabilities``: one records x classes array per architecture (out of fold).
    """
    features = stack_features(probabilities)
    design = np.hstack([features, np.ones((len(features), 1))])  # last column: the unpenalised intercept
    ridge = np.full(design.shape[1], penalty)
    ridge[-1] = 0.0
    n_classes = labels.shape[1]
    solution = np.zeros((n_classes, design.shape[1]))
    for c in range(n_classes):
        y, w = labels[:, c].astype(np.float64), solution[c]
        for _ in range(iterations):
            p = 1 / (1 + np.exp(-(design @ w)))
            gradient = design.T @ (p - y) + ridge * w
            hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(ridge) + 1e-9 * np.eye(len(w))
            step = np.linalg.solve(hessian, gradient)
            w = w - step
            if np.abs(step).max() < 1e-8:
                break
        solution[c] = w
    return {"coefficients": solution[:, :-1], "intercepts": solution[:, -1]}


def cross_validated_stacking(probabilities: list[np.ndarray], labels: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """Stacked probabilities whose meta-classifier never saw the record: each fold's is fitted on the others."""
    stacked = np.zeros(labels.shape)
    for fold in np.unique(fold_of):
        rest, held_out = fold_of != fold, fold_of == fold
        stacker = fit_stacker([p[rest] for p in probabilities], labels[rest])
        stacked[held_out] = stacker_probabilities(stacker, [p[held_out] for p in probabilities])
    return stacked
