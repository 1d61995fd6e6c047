"""How sure a score is: percentile bootstrap intervals over the scored records, of one model's scores and of
the difference between two models (or two decision rules) scored on the same records."""

from __future__ import annotations

import numpy as np

from .scoring import TABLES, Scores, headline, load_weights, scheme_labels, score_official, score_unofficial, scored_columns


def resampled_scores(dx_lists: list[list[str]], classes: list[str], outputs: list[np.ndarray],
                     scores: list[np.ndarray], scheme: str, draws: int, seed: int) -> list[list[Scores]]:
    """For each draw of the records with replacement, the scores of every (outputs, scores) pair on that draw.
    The labels and the scoring table are built once; a draw only picks rows."""
    scored, labels = scheme_labels(dx_lists, scheme)
    outputs = [scored_columns(np.asarray(o, dtype=bool), classes, scored) for o in outputs]
    scores = [scored_columns(np.asarray(s, dtype=np.float64), classes, scored) for s in scores]
    weights = load_weights(TABLES[scheme])[1] if scheme in TABLES else None
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(draws):
        rows = rng.integers(0, len(dx_lists), len(dx_lists))
        if weights is not None:
            results.append([score_official(labels[rows], o[rows], s[rows], scored, weights)
                            for o, s in zip(outputs, scores)])
        else:  # the unofficial scorer scores the classes its records carry
            present = labels[rows].any(axis=0)
            names = [c for c, p in zip(scored, present) if p]
            results.append([score_unofficial(labels[rows][:, present], o[rows][:, present], s[rows][:, present], names)
                            for o, s in zip(outputs, scores)])
    return results


def bootstrap_intervals(dx_lists: list[list[str]], classes: list[str], outputs: np.ndarray, scores: np.ndarray,
                        scheme: str, draws: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """95 % intervals of the headline score and macro AUROC over these records (the percentile bootstrap: the
    records drawn with replacement ``draws`` times, outputs and scores fixed)."""
    drawn = [result for result, in resampled_scores(dx_lists, classes, [outputs], [scores], scheme, draws, seed)]
    return {"headline": np.nanpercentile([headline(r, scheme) for r in drawn], [2.5, 97.5]).tolist(),
            "auroc": np.nanpercentile([r.auroc for r in drawn], [2.5, 97.5]).tolist()}


def paired_difference(dx_lists: list[list[str]], classes: list[str], first: tuple[np.ndarray, np.ndarray],
                      second: tuple[np.ndarray, np.ndarray], scheme: str, draws: int = 1000,
                      seed: int = 0) -> dict[str, list[float]]:
    """The 95 % interval of the headline score and macro AUROC of ``first`` less ``second`` (each a pair of
    outputs and scores on the same records), both scored on the same draws: far narrower than the two
    intervals apart, since what the records share cancels."""
    drawn = resampled_scores(dx_lists, classes, [first[0], second[0]], [first[1], second[1]], scheme, draws, seed)
    return {"headline": np.nanpercentile([headline(a, scheme) - headline(b, scheme) for a, b in drawn],
                                         [2.5, 97.5]).tolist(),
            "auroc": np.nanpercentile([a.auroc - b.auroc for a, b in drawn], [2.5, 97.5]).tolist()}
