"""Per-class decision thresholds, tuned on out-of-fold probabilities to maximise the
scheme's headline score (the Challenge metric, or the unofficial F-beta).

The Challenge metric couples the classes (partial credit between related
diagnoses, the most probable class when none passes), so the thresholds are found
by coordinate ascent: each class in turn takes the candidate threshold that
scores best with the others held fixed, until a sweep changes nothing. Coordinate
ascent stops at the first point no single class can improve, and the
most-probable-class rule makes such points common (lowering one threshold can
switch the rule off for a record), so it starts twice, from 0.5 everywhere and
from each class's own best F-beta threshold, and keeps the better end.

A class the probabilities rank no better than chance (AUROC at or below 0.5 on the tuning
records) is not tuned: its threshold is ``NEVER``. Tuned, such a class takes whatever threshold
fits the noise best, which for a rare class under F-beta's weight on recall can mean the lowest
candidate: answering it for half of all records.
"""

from __future__ import annotations

import numpy as np

from .inference import decide
from .labels import label_matrix
from .scoring import BETA, auc, confusion, decision_metric

CANDIDATES = np.round(np.arange(0.02, 0.99, 0.02), 2)
NEVER = 1.01  # above any probability: the class is answered only as the most probable one


def tune_thresholds(probabilities: np.ndarray, dx_lists: list[list[str]], classes: list[str], scheme: str,
                    candidates: np.ndarray = CANDIDATES) -> tuple[np.ndarray, float]:
    """Thresholds (one per class) and the score they reach on these records."""
    metric = decision_metric(dx_lists, classes, scheme)
    labels = label_matrix(dx_lists, classes, scheme)
    tuned = ~(auc(labels, probabilities)[0] <= 0.5)  # a class without positives (NaN) is tuned as before
    starts = [np.full(len(classes), 0.5), per_class_f_beta_thresholds(probabilities, labels, candidates)]
    starts = [np.where(tuned, start, NEVER) for start in starts]
    ends = [coordinate_ascent(metric, probabilities, start, candidates, tuned) for start in starts]
    return max(ends, key=lambda end: end[1])


def per_class_f_beta_thresholds(probabilities: np.ndarray, labels: np.ndarray, candidates: np.ndarray,
                                beta: float = BETA) -> np.ndarray:
    """Each class's threshold maximising its own F-beta, the classes taken apart."""
    tp, fp, fn, _ = confusion(labels, probabilities[None] >= candidates[:, None, None])  # candidates x classes
    f_beta = (1 + beta**2) * tp / np.maximum((1 + beta**2) * tp + fp + beta**2 * fn, 1)
    return candidates[np.argmax(f_beta, axis=0)]


def coordinate_ascent(metric, probabilities: np.ndarray, thresholds: np.ndarray, candidates: np.ndarray,
                      tuned: np.ndarray, sweeps: int = 5) -> tuple[np.ndarray, float]:
    """Thresholds of the ``tuned`` classes (a boolean mask) improved one class at a time."""
    thresholds = thresholds.copy()
    best = float(metric(decide(probabilities, thresholds)))
    for _ in range(sweeps):
        changed = False
        for c in np.flatnonzero(tuned):
            trials = np.repeat(thresholds[None, :], len(candidates), axis=0)
            trials[:, c] = candidates
            scores = metric(decide(probabilities, trials))  # every candidate for class c at once
            if scores.max() > best + 1e-12:  # strictly better: ties keep the current threshold
                best, thresholds[c], changed = float(scores.max()), candidates[np.argmax(scores)], True
        if not changed:
            break
    return thresholds, best


def cross_validated_outputs(probabilities: np.ndarray, dx_lists: list[list[str]], classes: list[str],
                            scheme: str, fold_of: np.ndarray, decide_on: list[np.ndarray] = ()) -> list[np.ndarray]:
    """0/1 outputs whose thresholds never saw the record: each fold's thresholds are tuned on the others.

    This is how tuned thresholds are scored honestly on out-of-fold probabilities. The
    first output decides ``probabilities``; one more follows for each array of
    ``decide_on`` (the same records seen otherwise, say with fewer leads), decided
    with the same thresholds.
    """
    outputs = [np.zeros(probabilities.shape, dtype=int) for _ in range(1 + len(decide_on))]
    for fold in np.unique(fold_of):
        rest, held_out = fold_of != fold, fold_of == fold
        thresholds, _ = tune_thresholds(probabilities[rest], [d for d, r in zip(dx_lists, rest) if r],
                                        classes, scheme)
        for output, decided in zip(outputs, [probabilities, *decide_on]):
            output[held_out] = decide(decided[held_out], thresholds)
    return outputs
