"""The PhysioNet/CinC Challenge 2020 metrics, both phases, on arrays.

Every function reproduces the organisers' scorer to floating-point rounding
(tests check the reference cases to 1e-9) but works on whole arrays: the
official code loops over records and thresholds in Python, which is too slow
to call inside a training loop.

Official phase: the scored SNOMED CT classes of ``weights.csv``, the three
equivalent pairs merged into their first code, per-class AUROC/AUPRC/F, macro
F-beta/G-beta normalised by labels per record, and the Challenge metric
normalised between the always-normal classifier (0) and a perfect one (1).
Unofficial phase: the 9 CPSC text classes, where accuracy is per class and a
degenerate ratio counts as 1 rather than NaN.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import CPSC_CLASSES, NORMAL_CLASS, label_matrix, representative, to_scheme

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_FILE = ROOT / "weights.csv"
# The 2021 challenge's table (evaluation-2021, BSD 2-clause): 26 classes, equivalent codes joined by "|" in one
# name ("733534002|164909002"). Scoring scheme "2021" scores with it; no model learns in it (``labels.to_scheme``).
WEIGHTS_2021_FILE = ROOT / "weights_2021.csv"
# The schemes scored by the Challenge metric, and their tables.
TABLES = {"snomed": WEIGHTS_FILE, "2021": WEIGHTS_2021_FILE}
BETA = 2


class ScoringError(Exception):
    """Labels and outputs that cannot be scored (missing files, no records)."""


# --------------------------------------------------------------------------- tables

def load_weights(path: str | os.PathLike = WEIGHTS_FILE) -> tuple[list[str], np.ndarray]:
    """Scored classes (equivalent codes merged, file order) and their weight matrix."""
    rows = [[cell.strip() for cell in line.split(",")] for line in Path(path).read_text().splitlines() if line.strip()]
    codes = rows[0][1:]
    values = np.array([[parse_number(cell) for cell in row[1:]] for row in rows[1:]], dtype=np.float64)
    if values.shape != (len(codes), len(codes)) or [row[0] for row in rows[1:]] != codes:
        raise ScoringError(f"{path}: not a square weight table with matching row and column names")
    merged = [representative(code) for code in codes]
    classes = list(dict.fromkeys(merged))
    keep = [merged.index(c) for c in classes]
    return classes, values[np.ix_(keep, keep)]


def parse_number(text: str, default: float = math.nan) -> float:
    """``float(text)`` (so 'nan' and 'inf' are numbers), or ``default`` when it is not one."""
    try:
        return float(text)
    except ValueError:
        return default


# --------------------------------------------------------------------------- metrics

def auc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AUROC (trapezoids of TNR over TPR) and AUPRC (steps of PPV over TPR).

    Thresholds are the distinct score values, as in the official scorer; a class
    with no positive (or, for AUROC, no negative) record gets NaN.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_classes = labels.shape[1]
    auroc = np.full(n_classes, np.nan)
    auprc = np.full(n_classes, np.nan)
    for k in range(n_classes):
        order = np.argsort(-scores[:, k], kind="stable")
        ranked = scores[order, k]
        hits = labels[order, k]
        # Counts are taken at the last record of each run of equal scores.
        ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
        tp = np.concatenate(([0], np.cumsum(hits)[ends])).astype(np.float64)
        fp = np.concatenate(([0], np.cumsum(~hits)[ends])).astype(np.float64)
        positives, negatives = tp[-1], fp[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = tp / positives if positives else np.full_like(tp, np.nan)
            tnr = (negatives - fp) / negatives if negatives else np.full_like(fp, np.nan)
            ppv = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        auroc[k] = np.sum(0.5 * np.diff(tpr) * (tnr[1:] + tnr[:-1]))
        auprc[k] = np.sum(np.diff(tpr) * ppv[1:])
    return auroc, auprc


def confusion(labels: np.ndarray, outputs: np.ndarray, weights: np.ndarray | None = None):
    """Per-class TP, FP, FN, TN, each record counted with the given weight (default 1).

    ``outputs`` may carry leading axes (several sets of outputs for the same records).
    """
    labels = np.asarray(labels, dtype=bool)
    outputs = np.asarray(outputs, dtype=bool)
    w = (np.ones(len(labels)) if weights is None else weights)[:, None]
    tp = np.sum(w * (labels & outputs), axis=-2)
    fp = np.sum(w * (~labels & outputs), axis=-2)
    fn = np.sum(w * (labels & ~outputs), axis=-2)
    tn = np.sum(w * (~labels & ~outputs), axis=-2)
    return tp, fp, fn, tn


def safe_ratio(numerator, denominator, empty: float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator != 0, denominator, 1.0)
    return np.where(denominator != 0, numerator / safe, empty)


def f_measure(labels, outputs, empty: float = math.nan) -> np.ndarray:
    tp, fp, fn, _ = confusion(labels, outputs)
    return safe_ratio(2 * tp, 2 * tp + fp + fn, empty)


def beta_measures(labels, outputs, beta: float = BETA, empty: float = math.nan):
    """Per-class F-beta and G-beta, each record weighted by 1 / its number of labels."""
    labels = np.asarray(labels, dtype=bool)
    per_record = 1.0 / np.maximum(labels.sum(axis=1), 1)
    tp, fp, fn, _ = confusion(labels, outputs, per_record)
    f_beta = safe_ratio((1 + beta**2) * tp, (1 + beta**2) * tp + fp + beta**2 * fn, empty)
    g_beta = safe_ratio(tp, tp + fp + beta * fn, empty)
    return f_beta, g_beta


def challenge_metric(labels, outputs, weights: np.ndarray, classes: list[str]):
    """Weighted partial credit, 0 for always answering 'normal', 1 for always right.

    ``outputs`` may carry leading axes; the result then has them too.
    """
    labels = np.asarray(labels, dtype=bool)
    outputs = np.asarray(outputs, dtype=bool)
    normal = np.zeros_like(labels)
    normal[:, classes.index(NORMAL_CLASS)] = True
    gain = labels @ np.nan_to_num(weights)  # gain[i, k]: credit record i earns per unit of answering class k
    observed, correct, inactive = (np.sum(record_credits(labels, gain, predicted), axis=-1)
                                   for predicted in (outputs, labels, normal))
    if correct == inactive:
        return np.full(np.shape(observed), math.nan) if np.ndim(observed) else math.nan
    score = (observed - inactive) / (correct - inactive)
    return score if np.ndim(score) else float(score)


def record_credits(labels: np.ndarray, gain: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Each record's Challenge-metric credit for its outputs (any leading axes): the gain of what it answers,
    shared among the classes it is labelled or answered."""
    return np.sum(gain * outputs, axis=-1) / np.maximum(np.sum(labels | outputs, axis=-1), 1)


def challenge_confusion(labels, outputs) -> np.ndarray:
    """The Challenge metric's class-by-class confusion: entry (j, k) sums, over records labelled j and
    answered k, 1 / the number of classes the record is labelled or answered. The metric's credit is the
    sum of this matrix times the weights."""
    labels = np.asarray(labels, dtype=np.float64)
    outputs = np.asarray(outputs, dtype=np.float64)
    per_record = 1.0 / np.maximum(np.sum((labels + outputs) > 0, axis=1), 1)
    return (labels * per_record[:, None]).T @ outputs


@dataclass
class Scores:
    classes: list[str]
    auroc: float
    auprc: float
    accuracy: float
    f_measure: float
    f_beta: float
    g_beta: float
    challenge_metric: float
    auroc_classes: np.ndarray
    auprc_classes: np.ndarray
    f_measure_classes: np.ndarray


def score_official(labels, outputs, scores, classes: list[str], weights: np.ndarray) -> Scores:
    """All official-phase metrics; columns of the arrays follow ``classes`` (from ``load_weights``)."""
    labels = np.asarray(labels, dtype=bool)
    outputs = np.asarray(outputs, dtype=bool)
    auroc_c, auprc_c = auc(labels, scores)
    f_c = f_measure(labels, outputs)
    f_beta_c, g_beta_c = beta_measures(labels, outputs)
    return Scores(
        classes=list(classes),
        auroc=_nanmean(auroc_c), auprc=_nanmean(auprc_c),
        accuracy=float(np.mean(np.all(labels == outputs, axis=1))),
        f_measure=_nanmean(f_c), f_beta=_nanmean(f_beta_c), g_beta=_nanmean(g_beta_c),
        challenge_metric=challenge_metric(labels, outputs, weights, list(classes)),
        auroc_classes=auroc_c, auprc_classes=auprc_c, f_measure_classes=f_c,
    )


def score_unofficial(labels, outputs, scores, classes: list[str]) -> Scores:
    """The unofficial phase's definitions: degenerate ratios count 1, accuracy per class."""
    labels = np.asarray(labels, dtype=bool)
    outputs = np.asarray(outputs, dtype=bool)
    auroc_c, auprc_c = auc(labels, scores)
    auroc_c, auprc_c = np.nan_to_num(auroc_c, nan=1.0), np.nan_to_num(auprc_c, nan=1.0)
    per_record = 1.0 / labels.sum(axis=1).clip(min=1)
    tp, fp, fn, tn = confusion(labels, outputs, per_record)
    accuracy_c = safe_ratio(tp + tn, tp + fp + fn + tn, 1.0)
    f_c = safe_ratio(2 * tp, 2 * tp + fp + fn, 1.0)
    f_beta_c, g_beta_c = beta_measures(labels, outputs, empty=1.0)
    return Scores(
        classes=list(classes),
        auroc=float(np.mean(auroc_c)), auprc=float(np.mean(auprc_c)),
        accuracy=float(np.mean(accuracy_c)), f_measure=float(np.mean(f_c)),
        f_beta=float(np.mean(f_beta_c)), g_beta=float(np.mean(g_beta_c)),
        challenge_metric=math.nan,
        auroc_classes=auroc_c, auprc_classes=auprc_c, f_measure_classes=f_c,
    )


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(np.mean(values)) if values.size else math.nan


def headline(scores: Scores, scheme: str) -> float:
    """The scheme's headline score: the Challenge metric (official phase) or F-beta (unofficial)."""
    return scores.challenge_metric if scheme in TABLES else scores.f_beta



def scheme_labels(dx_lists: list[list[str]], scheme: str) -> tuple[list[str], np.ndarray]:
    """The classes a scheme scores on these records, and the records' labels in them.

    Official scheme: every scored class of ``weights.csv``; "2021": of the 2021 table, a record labelled
    with a class when it carries any of the class's codes. CPSC scheme: the CPSC classes present in the
    (mapped) labels.
    """
    if scheme == "2021":
        scored, _ = load_weights(WEIGHTS_2021_FILE)
        labels = np.array([[not set(c.split("|")).isdisjoint(dx) for c in scored] for dx in dx_lists], dtype=bool)
        return scored, labels.reshape(len(dx_lists), len(scored))
    if scheme == "snomed":
        scored, _ = load_weights()
    else:
        found = {c for dx in dx_lists for c in to_scheme(dx, scheme)}
        scored = [c for c in CPSC_CLASSES if c in found]
    return scored, label_matrix(dx_lists, scored, scheme)


def scored_columns(values: np.ndarray, classes: list[str], scored: list[str]) -> np.ndarray:
    """A model's columns (``classes``, the last axis) placed among the scored classes; one it does not answer is 0.
    A scored class named by several codes (the 2021 table's "733534002|164909002") takes the highest of the
    model's columns that answer any of them, itself or its equivalent code."""
    full = np.zeros(values.shape[:-1] + (len(scored),), dtype=values.dtype)
    for k, name in enumerate(scored):
        codes = set(name.split("|"))
        columns = [j for j, c in enumerate(classes) if c in codes or c in {representative(x) for x in codes}]
        if columns:
            full[..., k] = values[..., columns].max(axis=-1)
    return full


def score_predictions(dx_lists: list[list[str]], classes: list[str], outputs: np.ndarray,
                      scores: np.ndarray, scheme: str) -> Scores:
    """Score a model's outputs on labelled records as ``evaluate_12ECG_score.py`` would."""
    scored, labels = scheme_labels(dx_lists, scheme)
    full_outputs = scored_columns(np.asarray(outputs, dtype=bool), classes, scored)
    full_scores = scored_columns(np.asarray(scores, dtype=np.float64), classes, scored)
    if scheme in TABLES:
        scores = score_official(labels, full_outputs, full_scores, scored, load_weights(TABLES[scheme])[1])
        if scheme == "2021" and math.isnan(scores.challenge_metric):  # 2021's scorer: 0.0 where the baselines tie
            scores.challenge_metric = 0.0
        return scores
    return score_unofficial(labels, full_outputs, full_scores, scored)



