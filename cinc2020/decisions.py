"""Decisions: 0/1 answers from probabilities (``decide``: each class at its threshold, the most probable class
when none passes), the metric they are tuned for (``DecisionMetric``), and the per-class thresholds tuned on
out-of-fold probabilities to maximise the scheme's headline score (the Challenge metric, or the unofficial
F-beta). NumPy only: tuning needs no network.

The Challenge metric couples the classes (partial credit between related
diagnoses, the most probable class when none passes), so the thresholds are found
by coordinate ascent: each class in turn takes the candidate threshold that
scores best with the others held fixed, until a sweep changes nothing. Coordinate
ascent stops at the first point no single class can improve, and the
most-probable-class rule makes such points common (lowering one threshold can
switch the rule off for a record), so it starts twice, from 0.5 everywhere and
from each class's own best F-beta threshold, and keeps the better end.

With one class's threshold moving, each record has two possible outputs (the class
answered or not, the rest fixed), so every candidate is scored from the sums of two
per-record arrays (``candidate_scores``): a tune of 43,101 records and 24 classes takes
seconds, where scoring each candidate afresh took minutes.

Labels a record's source never gives (``known`` False, as ``labels.loss_mask`` leaves them out
of the loss: left axis deviation on a CPSC record) count neither as a hit nor as a miss: an
answer there is taken as no answer. Otherwise a right call of a class that a large source
leaves unlabelled would count as a false positive, and thresholds would rise for exactly
those classes. The scores a run reports use the official scorer on the records' own labels.

A class the probabilities rank no better than chance (AUROC at or below 0.5 on the tuning
records) is not tuned: its threshold is ``NEVER``. Tuned, such a class takes whatever threshold
fits the noise best, which for a rare class under F-beta's weight on recall can mean the lowest
candidate: answering it for half of all records.
"""

from __future__ import annotations

import math

import numpy as np

from .labels import NORMAL_CLASS, label_matrix
from .scoring import BETA, TABLES, auc, load_weights, record_credits, safe_ratio, scheme_labels, scored_columns


def decide(probabilities: np.ndarray, thresholds: np.ndarray, fallback: bool = True) -> np.ndarray:
    """0/1 labels: each class at its threshold, and (``fallback``) the most probable class when none passes.

    ``thresholds`` (classes) may carry leading axes, to decide several ways at once.
    """
    probabilities = np.atleast_2d(probabilities)
    labels = probabilities >= np.asarray(thresholds)[..., None, :]
    if not fallback:
        return labels.astype(np.int8)
    most_probable = np.eye(probabilities.shape[1], dtype=bool)[np.argmax(probabilities, axis=1)]
    empty = ~labels.any(axis=-1, keepdims=True)
    return np.where(empty, most_probable, labels).astype(np.int8)


class DecisionMetric:
    """The scheme's headline score of a model's 0/1 outputs (records x ``classes``, any leading axes) on
    fixed records: the Challenge metric for the official scheme, the unofficial F-beta for CPSC.

    Both are sums over records put through a last function: the Challenge metric's credit is one number
    a record, F-beta's weighted true and false positives two a class. ``record_statistics`` gives those
    numbers and ``score`` the metric of their sum, so that threshold tuning can score every candidate
    threshold of a class from two such arrays (``candidate_scores``). ``known`` (records x
    ``classes``, optional) marks the labels a record's source gives: an output where it is False counts
    neither as a hit nor as a miss (it is taken as not answered). ``record_weights`` (Challenge metric only)
    weigh each record's credit, the baselines' too: ``source_balanced_weights`` make the metric the mean of
    the per-source metrics, so that a large source does not decide alone.
    """

    def __init__(self, dx_lists: list[list[str]], classes: list[str], scheme: str, known: np.ndarray | None = None,
                 record_weights: np.ndarray | None = None):
        self.classes, self.scheme = classes, scheme
        self.scored, self.labels = scheme_labels(dx_lists, scheme)
        self.known = None if known is None else np.asarray(known, dtype=bool)
        if record_weights is not None and scheme not in TABLES:
            raise ValueError("record weights weigh the Challenge metric's credits; F-beta has none")
        self.record_weights = np.ones(len(dx_lists)) if record_weights is None else np.asarray(record_weights, float)
        if scheme in TABLES:
            weights = load_weights(TABLES[scheme])[1]
            self.gain = self.labels @ np.nan_to_num(weights)  # credit a record earns per unit of answering a class
            normal = np.zeros_like(self.labels)
            normal[:, self.scored.index(NORMAL_CLASS)] = True
            if self.known is not None and NORMAL_CLASS in classes:  # the baseline's answers count as any other's
                normal[:, self.scored.index(NORMAL_CLASS)] = self.known[:, classes.index(NORMAL_CLASS)]
            self.correct, self.inactive = (float(self.record_statistics_of_scored(o).sum()) for o in (self.labels, normal))
        else:
            self.per_record = 1.0 / np.maximum(self.labels.sum(axis=1), 1)
            self.positives = (self.per_record[:, None] * self.labels).sum(axis=0)

    def record_statistics(self, outputs: np.ndarray) -> np.ndarray:
        """(..., records, statistics): what each record adds to the metric's sums."""
        outputs = np.asarray(outputs, dtype=bool)
        if self.known is not None:
            outputs = outputs & self.known
        return self.record_statistics_of_scored(scored_columns(outputs, self.classes, self.scored))

    def record_statistics_of_scored(self, outputs: np.ndarray) -> np.ndarray:
        if self.scheme in TABLES:
            return (self.record_weights * record_credits(self.labels, self.gain, outputs))[..., None]
        weighted = self.per_record[:, None] * outputs
        return np.concatenate([weighted * self.labels, weighted * ~self.labels], axis=-1)

    def score(self, totals: np.ndarray) -> np.ndarray | float:
        """The metric of summed record statistics (..., statistics)."""
        totals = np.asarray(totals, dtype=np.float64)
        if self.scheme in TABLES:
            if self.correct == self.inactive:
                result = np.full(totals.shape[:-1], math.nan)
            else:
                result = (totals[..., 0] - self.inactive) / (self.correct - self.inactive)
        else:
            tp, fp = np.split(totals, 2, axis=-1)
            fn = self.positives - tp
            result = np.mean(safe_ratio((1 + BETA**2) * tp, (1 + BETA**2) * tp + fp + BETA**2 * fn, 1.0), axis=-1)
        return result if np.ndim(result) else float(result)

    def __call__(self, outputs: np.ndarray) -> np.ndarray | float:
        return self.score(self.record_statistics(outputs).sum(axis=-2))



def source_balanced_weights(dx_lists: list[list[str]], classes: list[str], scheme: str, sources,
                            known: np.ndarray | None = None) -> np.ndarray:
    """Record weights (``DecisionMetric``) under which the Challenge metric is the mean of the per-source ones:
    each source's records weigh 1 / (its perfect score - its sinus-rhythm-only score)."""
    sources = np.asarray(sources)
    weights = np.zeros(len(dx_lists))
    for source in np.unique(sources):
        mine = sources == source
        metric = DecisionMetric([d for d, m in zip(dx_lists, mine) if m], classes, scheme,
                                None if known is None else np.asarray(known)[mine])
        span = metric.correct - metric.inactive
        weights[mine] = 1 / span / len(np.unique(sources)) if span > 0 else 0.0
    return weights


CANDIDATES = np.round(np.arange(0.02, 0.99, 0.02), 2)
NEVER = 1.01  # above any probability: the class is answered only as the most probable one


def tune_thresholds(probabilities: np.ndarray, dx_lists: list[list[str]], classes: list[str], scheme: str,
                    known: np.ndarray | None = None, candidates: np.ndarray = CANDIDATES,
                    record_weights: np.ndarray | None = None, fallback: bool = True,
                    shrink: float = 0.0) -> tuple[np.ndarray, float]:
    """Thresholds (one per class) and the score they reach on these records (``known``: see the module;
    ``record_weights``: see ``DecisionMetric``; ``fallback``: ``decide``'s). ``shrink`` moves each tuned class's
    threshold that share of the way toward one global threshold tuned on the same records (0: per class, 1: the
    global one for every tuned class): per-class thresholds fit the tuning records' sources, and a source never
    seen pays for it."""
    metric = DecisionMetric(dx_lists, classes, scheme, known, record_weights)
    labels = label_matrix(dx_lists, classes, scheme)
    known = np.ones(labels.shape, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    seen = known.any(axis=0)  # a class no tuning record's source labels tells nothing: it is not tuned
    ranked = np.array([auc(labels[known[:, k], k:k + 1], probabilities[known[:, k], k:k + 1])[0][0] if seen[k]
                       else np.nan for k in range(len(classes))])
    tuned = seen & ~(ranked <= 0.5)  # a class without positives (NaN) is tuned as before
    starts = [np.full(len(classes), 0.5), per_class_f_beta_thresholds(probabilities, labels, candidates, known)]
    starts = [np.where(tuned, start, NEVER) for start in starts]
    first, second = (coordinate_ascent(metric, probabilities, start, candidates, tuned, fallback=fallback)
                     for start in starts)
    best = second if second[1] > first[1] + TIE else first
    if not shrink:
        return best
    overall, _ = tune_global_threshold(probabilities, dx_lists, classes, scheme, known, candidates, record_weights,
                                       fallback)
    shrunk = shrunk_thresholds(best[0], overall, shrink)
    return shrunk, float(metric(decide(probabilities, shrunk, fallback)))


def shrunk_thresholds(per_class: np.ndarray, overall: float, shrink: float) -> np.ndarray:
    """Each tuned class's threshold moved ``shrink`` of the way toward ``overall``; an untuned one stays NEVER."""
    return np.where(per_class < NEVER, (1 - shrink) * per_class + shrink * overall, NEVER)


def tune_global_threshold(probabilities: np.ndarray, dx_lists: list[list[str]], classes: list[str], scheme: str,
                          known: np.ndarray | None = None, candidates: np.ndarray = CANDIDATES,
                          record_weights: np.ndarray | None = None, fallback: bool = True) -> tuple[float, float]:
    """One threshold for every class, and the score it reaches: the rule of the 2020 winner, less fitted to
    the tuning records' sources than one threshold a class."""
    metric = DecisionMetric(dx_lists, classes, scheme, known, record_weights)
    scores = [metric(decide(probabilities, np.full(len(classes), t), fallback)) for t in candidates]
    best = int(np.argmax(scores))
    return float(candidates[best]), float(scores[best])


TIE = 1e-12  # scores closer than this are equal: rounding must not decide between thresholds


def per_class_f_beta_thresholds(probabilities: np.ndarray, labels: np.ndarray, candidates: np.ndarray,
                                known: np.ndarray | None = None, beta: float = BETA) -> np.ndarray:
    """Each class's threshold maximising its own F-beta over its known labels, the classes taken apart."""
    chosen = np.empty(labels.shape[1])
    for k in range(labels.shape[1]):
        rows = slice(None) if known is None else known[:, k]
        p, positive = probabilities[rows, k], labels[rows, k].astype(bool)
        tp, fp = (above(np.sort(p[which]), candidates) for which in (positive, ~positive))
        fn = positive.sum() - tp
        f_beta = (1 + beta**2) * tp / np.maximum((1 + beta**2) * tp + fp + beta**2 * fn, 1)
        chosen[k] = candidates[np.argmax(f_beta)]
    return chosen


def above(ascending: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """How many of the sorted values reach each candidate."""
    return len(ascending) - np.searchsorted(ascending, candidates, side="left")


def candidate_scores(metric: DecisionMetric, probabilities: np.ndarray, thresholds: np.ndarray, c: int,
                     candidates: np.ndarray, fallback: bool = True) -> np.ndarray:
    """The metric of ``decide`` with class ``c``'s threshold at each candidate, the others as they are.

    A record's output is one of two: with c (its probability reaches the candidate) or without it;
    where no other class passes, without c means the most probable class (``decide``'s rule).
    """
    passing = probabilities >= thresholds
    passing[:, c] = False
    alone = ~passing.any(axis=1)
    with_c = passing.copy()
    with_c[:, c] = True
    most_probable = np.eye(probabilities.shape[1], dtype=bool)[np.argmax(probabilities, axis=1)]
    without_c = np.where(alone[:, None], most_probable, passing) if fallback else passing
    on, off = metric.record_statistics(with_c), metric.record_statistics(without_c)
    order = np.argsort(-probabilities[:, c], kind="stable")
    # gained[m]: what the m records of highest probability add by answering c
    gained = np.concatenate([np.zeros((1, on.shape[1])), np.cumsum((on - off)[order], axis=0)])
    totals = off.sum(axis=0) + gained[above(np.sort(probabilities[:, c]), candidates)]
    return metric.score(totals)


def coordinate_ascent(metric: DecisionMetric, probabilities: np.ndarray, thresholds: np.ndarray,
                      candidates: np.ndarray, tuned: np.ndarray, sweeps: int = 5,
                      fallback: bool = True) -> tuple[np.ndarray, float]:
    """Thresholds of the ``tuned`` classes (a boolean mask) improved one class at a time."""
    thresholds = thresholds.copy()
    best = float(metric(decide(probabilities, thresholds, fallback)))
    for _ in range(sweeps):
        changed = False
        for c in np.flatnonzero(tuned):
            scores = candidate_scores(metric, probabilities, thresholds, c, candidates, fallback)
            if scores.max() > best + TIE:  # strictly better: ties keep the current threshold
                best, thresholds[c], changed = float(scores.max()), candidates[np.argmax(scores)], True
        if not changed:
            break
    return thresholds, best


def cross_validated_outputs(probabilities: np.ndarray, dx_lists: list[list[str]], classes: list[str],
                            scheme: str, fold_of: np.ndarray, decide_on: list[np.ndarray] = (),
                            known: np.ndarray | None = None, shrink: float = 0.0) -> list[np.ndarray]:
    """0/1 outputs whose thresholds never saw the record: each fold's thresholds are tuned on the others.

    This is how tuned thresholds are scored honestly on out-of-fold probabilities. The
    first output decides ``probabilities``; one more follows for each array of
    ``decide_on`` (the same records seen otherwise, say with fewer leads), decided
    with the same thresholds. ``known`` and ``shrink`` are passed to the tuning.
    """
    outputs = [np.zeros(probabilities.shape, dtype=int) for _ in range(1 + len(decide_on))]
    for fold in np.unique(fold_of):
        rest, held_out = fold_of != fold, fold_of == fold
        thresholds, _ = tune_thresholds(probabilities[rest], [d for d, r in zip(dx_lists, rest) if r],
                                        classes, scheme, None if known is None else known[rest], shrink=shrink)
        for output, decided in zip(outputs, [probabilities, *decide_on]):
            output[held_out] = decide(decided[held_out], thresholds)
    return outputs
