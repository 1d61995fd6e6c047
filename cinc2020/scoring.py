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
from .records import header_comments

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_FILE = ROOT / "weights.csv"
BETA = 2


class ScoringError(Exception):
    """Labels and outputs that cannot be scored (missing files, no records)."""


# --------------------------------------------------------------------------- tables

def load_weights(path: str | os.PathLike = WEIGHTS_FILE) -> tuple[list[str], np.ndarray]:
    """Scored classes (equivalent codes merged, file order) and their weight matrix."""
    rows = [[cell.strip() for cell in line.split(",")] for line in Path(path).read_text().splitlines() if line.strip()]
    codes = rows[0][1:]
    values = np.array([[_number(cell) for cell in row[1:]] for row in rows[1:]], dtype=np.float64)
    if values.shape != (len(codes), len(codes)) or [row[0] for row in rows[1:]] != codes:
        raise ScoringError(f"{path}: not a square weight table with matching row and column names")
    merged = [representative(code) for code in codes]
    classes = list(dict.fromkeys(merged))
    keep = [merged.index(c) for c in classes]
    return classes, values[np.ix_(keep, keep)]


def _number(text: str, default: float = math.nan) -> float:
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


def _ratio(numerator, denominator, empty: float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator != 0, denominator, 1.0)
    return np.where(denominator != 0, numerator / safe, empty)


def f_measure(labels, outputs, empty: float = math.nan) -> np.ndarray:
    tp, fp, fn, _ = confusion(labels, outputs)
    return _ratio(2 * tp, 2 * tp + fp + fn, empty)


def beta_measures(labels, outputs, beta: float = BETA, empty: float = math.nan):
    """Per-class F-beta and G-beta, each record weighted by 1 / its number of labels."""
    labels = np.asarray(labels, dtype=bool)
    per_record = 1.0 / np.maximum(labels.sum(axis=1), 1)
    tp, fp, fn, _ = confusion(labels, outputs, per_record)
    f_beta = _ratio((1 + beta**2) * tp, (1 + beta**2) * tp + fp + beta**2 * fn, empty)
    g_beta = _ratio(tp, tp + fp + beta * fn, empty)
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
    accuracy_c = _ratio(tp + tn, tp + fp + fn + tn, 1.0)
    f_c = _ratio(2 * tp, 2 * tp + fp + fn, 1.0)
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
    return scores.challenge_metric if scheme == "snomed" else scores.f_beta


def bootstrap_intervals(dx_lists: list[list[str]], classes: list[str], outputs: np.ndarray, scores: np.ndarray,
                        scheme: str, draws: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """95 % intervals of the headline score and macro AUROC over these records (the percentile bootstrap: the
    records drawn with replacement ``draws`` times, outputs and scores fixed)."""
    rng = np.random.default_rng(seed)
    drawn = {"headline": [], "auroc": []}
    for _ in range(draws):
        rows = rng.integers(0, len(dx_lists), len(dx_lists))
        result = score_predictions([dx_lists[i] for i in rows], classes, outputs[rows], scores[rows], scheme)
        drawn["headline"].append(headline(result, scheme))
        drawn["auroc"].append(result.auroc)
    return {key: np.nanpercentile(values, [2.5, 97.5]).tolist() for key, values in drawn.items()}


def scheme_labels(dx_lists: list[list[str]], scheme: str) -> tuple[list[str], np.ndarray]:
    """The classes a scheme scores on these records, and the records' labels in them.

    Official scheme: every scored class of ``weights.csv``. CPSC scheme: the CPSC
    classes present in the (mapped) labels.
    """
    if scheme == "snomed":
        scored, _ = load_weights()
    else:
        found = {c for dx in dx_lists for c in to_scheme(dx, scheme)}
        scored = [c for c in CPSC_CLASSES if c in found]
    return scored, label_matrix(dx_lists, scored, scheme)


def scored_columns(values: np.ndarray, classes: list[str], scored: list[str]) -> np.ndarray:
    """A model's columns (``classes``, the last axis) placed among the scored classes; one it does not answer is 0."""
    full = np.zeros(values.shape[:-1] + (len(scored),), dtype=values.dtype)
    for j, c in enumerate(classes):
        if c in scored:
            full[..., scored.index(c)] = values[..., j]
    return full


def score_predictions(dx_lists: list[list[str]], classes: list[str], outputs: np.ndarray,
                      scores: np.ndarray, scheme: str) -> Scores:
    """Score a model's outputs on labelled records as ``evaluate_12ECG_score.py`` would."""
    scored, labels = scheme_labels(dx_lists, scheme)
    full_outputs = scored_columns(np.asarray(outputs, dtype=bool), classes, scored)
    full_scores = scored_columns(np.asarray(scores, dtype=np.float64), classes, scored)
    if scheme == "snomed":
        return score_official(labels, full_outputs, full_scores, scored, load_weights()[1])
    return score_unofficial(labels, full_outputs, full_scores, scored)


class DecisionMetric:
    """The scheme's headline score of a model's 0/1 outputs (records x ``classes``, any leading axes) on
    fixed records: the Challenge metric for the official scheme, the unofficial F-beta for CPSC.

    Both are sums over records put through a last function: the Challenge metric's credit is one number
    a record, F-beta's weighted true and false positives two a class. ``record_statistics`` gives those
    numbers and ``score`` the metric of their sum, so that threshold tuning can score every candidate
    threshold of a class from two such arrays (``thresholds.candidate_scores``). ``known`` (records x
    ``classes``, optional) marks the labels a record's source gives: an output where it is False counts
    neither as a hit nor as a miss (it is taken as not answered).
    """

    def __init__(self, dx_lists: list[list[str]], classes: list[str], scheme: str, known: np.ndarray | None = None):
        self.classes, self.scheme = classes, scheme
        self.scored, self.labels = scheme_labels(dx_lists, scheme)
        self.known = None if known is None else np.asarray(known, dtype=bool)
        if scheme == "snomed":
            weights = load_weights()[1]
            self.gain = self.labels @ np.nan_to_num(weights)  # credit a record earns per unit of answering a class
            normal = np.zeros_like(self.labels)
            normal[:, self.scored.index(NORMAL_CLASS)] = True
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
        if self.scheme == "snomed":
            return record_credits(self.labels, self.gain, outputs)[..., None]
        weighted = self.per_record[:, None] * outputs
        return np.concatenate([weighted * self.labels, weighted * ~self.labels], axis=-1)

    def score(self, totals: np.ndarray) -> np.ndarray | float:
        """The metric of summed record statistics (..., statistics)."""
        totals = np.asarray(totals, dtype=np.float64)
        if self.scheme == "snomed":
            if self.correct == self.inactive:
                result = np.full(totals.shape[:-1], math.nan)
            else:
                result = (totals[..., 0] - self.inactive) / (self.correct - self.inactive)
        else:
            tp, fp = np.split(totals, 2, axis=-1)
            fn = self.positives - tp
            result = np.mean(_ratio((1 + BETA**2) * tp, (1 + BETA**2) * tp + fp + BETA**2 * fn, 1.0), axis=-1)
        return result if np.ndim(result) else float(result)

    def __call__(self, outputs: np.ndarray) -> np.ndarray | float:
        return self.score(self.record_statistics(outputs).sum(axis=-2))


# --------------------------------------------------------------------------- files

def find_pairs(label_dir: str | os.PathLike, output_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(header, output csv) pairs for every ``.hea`` in ``label_dir``, sorted by name."""
    label_dir, output_dir = Path(label_dir), Path(output_dir)
    pairs = []
    for header in sorted(label_dir.iterdir()):
        if header.is_file() and header.suffix.lower() == ".hea" and not header.name.startswith("."):
            output = output_dir / (header.stem + ".csv")
            if not output.is_file():
                raise ScoringError(f"no output file {output} for record {header.stem}")
            pairs.append((header, output))
    if not pairs:
        raise ScoringError(f"no label files (.hea) in {label_dir}")
    return pairs


def read_dx(header: Path) -> list[str]:
    """The ``#Dx`` codes of a label file; only that line is read, as the official scorer does."""
    value = header_comments(header.read_text(errors="replace")).get("dx", "")
    return [code.strip() for code in value.split(",") if code.strip()]


def read_output(path: Path) -> tuple[list[str], list[bool], list[float]] | None:
    """Classes, binary and scalar outputs of one output file; None if malformed.

    A file is well formed when, after dropping blank and ``#`` lines, it has at
    least three rows of equal length: class names, 0/1 (or True/False), numbers.
    """
    lines = [line for line in path.read_text(errors="replace").splitlines()
             if line.strip() and not line.strip().startswith("#")]
    rows = [[cell.strip() for cell in line.split(",")] for line in lines]
    if len(rows) < 3 or len({len(row) for row in rows}) != 1:
        return None
    classes = rows[0]
    binary = [cell in ("1", "True", "true", "T", "t") for cell in rows[1]]
    scalar = [_number(cell, default=0.0) for cell in rows[2]]
    return classes, binary, scalar


def outputs_to_arrays(parsed, classes: list[str], merge_equivalents: bool):
    """Binary and scalar arrays with columns in ``classes`` from parsed output files.

    Equivalent codes share a column (binary: any; scalar: mean of the non-NaN
    values, NaN when none is finite); NaN becomes 0 and a malformed file (None)
    stays all negative. Files with the same class row are handled together.
    """
    binary = np.zeros((len(parsed), len(classes)), dtype=bool)
    scalar = np.zeros((len(parsed), len(classes)), dtype=np.float64)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, entry in enumerate(parsed):
        if entry is not None:
            groups.setdefault(tuple(entry[0]), []).append(i)
    for names, rows in groups.items():
        bits = np.array([parsed[i][1] for i in rows], dtype=bool)
        values = np.array([parsed[i][2] for i in rows], dtype=np.float64)
        mapped = [representative(name) if merge_equivalents else name for name in names]
        for j, name in enumerate(classes):
            positions = [p for p, m in enumerate(mapped) if m == name]
            if not positions:
                continue
            chosen = values[:, positions]
            missing = np.isnan(chosen)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(missing, 0.0, chosen).sum(axis=1) / (~missing).sum(axis=1)
            binary[rows, j] = bits[:, positions].any(axis=1)
            scalar[rows, j] = np.where(np.isfinite(chosen).any(axis=1), mean, np.nan)
    scalar[np.isnan(scalar)] = 0.0
    return binary, scalar


def labels_to_array(dx_lists: list[list[str]], classes: list[str], merge_equivalents: bool) -> np.ndarray:
    column = {c: j for j, c in enumerate(classes)}
    labels = np.zeros((len(dx_lists), len(classes)), dtype=bool)
    for i, codes in enumerate(dx_lists):
        for code in codes:
            code = representative(code) if merge_equivalents else code
            if code in column:
                labels[i, column[code]] = True
    return labels


def read_run(label_dir, output_dir, phase: str = "official", weights_file: str | os.PathLike = WEIGHTS_FILE):
    """A run's ``(classes, labels, binary outputs, scalar outputs, weights or None)``, as the phase scores them."""
    pairs = find_pairs(label_dir, output_dir)
    dx_lists = [read_dx(header) for header, _ in pairs]
    parsed = [read_output(output) for _, output in pairs]
    if phase == "official":
        classes, weights = load_weights(weights_file)
        labels = labels_to_array(dx_lists, classes, merge_equivalents=True)
        return (classes, labels, *outputs_to_arrays(parsed, classes, merge_equivalents=True), weights)
    if phase == "unofficial":
        found = {code for codes in dx_lists for code in codes}
        classes = [c for c in CPSC_CLASSES if c in found]
        unknown = sorted(found - set(CPSC_CLASSES))
        if unknown:
            raise ScoringError(f"labels outside the unofficial phase's classes: {', '.join(unknown)}")
        labels = labels_to_array(dx_lists, classes, merge_equivalents=False)
        return (classes, labels, *outputs_to_arrays(parsed, classes, merge_equivalents=False), None)
    raise ValueError(f"unknown phase {phase!r}: use 'official' or 'unofficial'")


def evaluate_directories(label_dir, output_dir, phase: str = "official",
                         weights_file: str | os.PathLike = WEIGHTS_FILE) -> Scores:
    """Score every record of ``label_dir`` against its output file in ``output_dir``."""
    return score_run(*read_run(label_dir, output_dir, phase, weights_file))


def score_run(classes, labels, binary, scalar, weights) -> Scores:
    """The scores of ``read_run``'s arrays: official with weights, unofficial without."""
    if weights is not None:
        return score_official(labels, binary, scalar, classes, weights)
    return score_unofficial(labels, binary, scalar, classes)


# --------------------------------------------------------------------------- reports

SUMMARY_COLUMNS = {
    "official": ["AUROC", "AUPRC", "Accuracy", "F-measure", "Fbeta-measure", "Gbeta-measure", "Challenge metric"],
    "unofficial": ["AUROC", "AUPRC", "Accuracy", "F-measure", "Fbeta-measure", "Gbeta-measure"],
}


def summary_table(scores: Scores, phase: str = "official") -> str:
    """The official scorer's ``scores.csv`` text (three decimals)."""
    values = [scores.auroc, scores.auprc, scores.accuracy, scores.f_measure, scores.f_beta, scores.g_beta]
    if phase == "official":
        values.append(scores.challenge_metric)
        separator = ","
    else:
        separator = "|"
    return (separator.join(SUMMARY_COLUMNS[phase]) + "\n"
            + separator.join(f"{v:.3f}" for v in values))


def class_table(scores: Scores) -> str:
    """The official scorer's ``class_scores.csv`` text."""
    def row(name, values):
        return name + "," + ",".join(f"{v:.3f}" for v in values)
    return "\n".join([
        "Classes," + ",".join(scores.classes),
        row("AUROC", scores.auroc_classes),
        row("AUPRC", scores.auprc_classes),
        row("F-measure", scores.f_measure_classes),
    ])
