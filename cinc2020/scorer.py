"""The official scorers' work on files: label folders and output folders read as the 2020
``evaluate_12ECG_score.py`` reads them (both phases) and as the 2021 ``evaluate_model.py`` does, and their
``scores.csv`` and ``class_scores.csv`` tables."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .labels import CPSC_CLASSES, representative
from .records import header_comments
from .scoring import (NORMAL_CLASS, WEIGHTS_2021_FILE, WEIGHTS_FILE, Scores, ScoringError, auc, f_measure,
                      load_weights, parse_number, record_credits, score_official, score_unofficial)


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
    scalar = [parse_number(cell, default=0.0) for cell in rows[2]]
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


SUMMARY_COLUMNS = {
    "official": ["AUROC", "AUPRC", "Accuracy", "F-measure", "Fbeta-measure", "Gbeta-measure", "Challenge metric"],
    "2021": ["AUROC", "AUPRC", "Accuracy", "F-measure", "Challenge metric"],
    "unofficial": ["AUROC", "AUPRC", "Accuracy", "F-measure", "Fbeta-measure", "Gbeta-measure"],
}


def summary_table(scores: Scores, phase: str = "official") -> str:
    """The official scorer's ``scores.csv`` text (three decimals): 2020's of either phase, or 2021's."""
    values = [scores.auroc, scores.auprc, scores.accuracy, scores.f_measure, scores.f_beta, scores.g_beta]
    if phase == "2021":
        values = values[:4] + [scores.challenge_metric]
        separator = ","
    elif phase == "official":
        values.append(scores.challenge_metric)
        separator = ","
    else:
        separator = "|"
    return (separator.join(SUMMARY_COLUMNS[phase]) + "\n"
            + separator.join(f"{v:.3f}" for v in values))


def class_table(scores: Scores) -> str:
    """The official scorer's ``class_scores.csv`` text (2021's writes a class's equivalent codes sorted)."""
    def row(name, values):
        return name + "," + ",".join(f"{v:.3f}" for v in values)
    return "\n".join([
        "Classes," + ",".join("|".join(sorted(c.split("|"))) if "|" in c else c for c in scores.classes),
        row("AUROC", scores.auroc_classes),
        row("AUPRC", scores.auprc_classes),
        row("F-measure", scores.f_measure_classes),
    ])


# --------------------------------------------------------------------------- the 2021 scorer (evaluate_model.py)

def read_dx_2021(header: Path) -> list[str]:
    """The labels as the 2021 scorer reads them: every line that starts ``#Dx``, the text after its first
    ``": "`` split at commas (``# Dx:`` and ``#Dx:`` without the space give none)."""
    labels = []
    for line in header.read_text().split("\n"):
        if line.startswith("#Dx") and ": " in line:
            labels += [entry.strip() for entry in line.split(": ")[1].split(",")]
    return labels


def read_output_2021(path: Path) -> tuple[list[str], list[bool], list[float]]:
    """Classes, binary and scalar outputs of one 2021 output file, read by line number as the 2021 scorer
    reads them: line 2 the classes, 3 the labels (positive when ``1``, ``1.0``, ``True``, ``true``, ``T``
    or ``t``), 4 the probabilities (a non-finite one is 0)."""
    lines = path.read_text().split("\n")
    if len(lines) < 4 or (len(lines) == 4 and not lines[3]):
        raise ScoringError(f"{path}: an output file has four lines: #record, classes, labels, probabilities")
    classes, labels, probabilities = ([entry.strip() for entry in line.split(",")] for line in lines[1:4])
    binary = [parse_number(entry) == 1 or entry in ("True", "true", "T", "t") for entry in labels]  # inf, NaN: not 1
    scalar = [value if math.isfinite(value) else 0.0 for value in map(parse_number, probabilities)]
    return classes, binary, scalar


def read_run_2021(label_dir, output_dir, weights_file: str | os.PathLike = WEIGHTS_2021_FILE):
    """A run's ``(classes, labels, binary outputs, scalar outputs, weights)`` as the 2021 scorer reads them: the
    table's classes ("|"-joined equivalent codes), a record labelled with a class when it carries any of its
    codes, an output class answering each table class it shares a code with (binary: any; scalar: mean)."""
    pairs = find_pairs(label_dir, output_dir)
    classes, weights = load_table_2021(weights_file)
    column_of: dict[str, list[int]] = {}
    for j, name in enumerate(classes):
        for code in name.split("|"):
            column_of.setdefault(code, []).append(j)
    labels = np.zeros((len(pairs), len(classes)), dtype=bool)
    for i, (header, _) in enumerate(pairs):
        for code in read_dx_2021(header):
            labels[i, column_of.get(code, [])] = True
    binary = np.zeros((len(pairs), len(classes)), dtype=bool)
    scalar = np.zeros((len(pairs), len(classes)))
    files_of: dict[tuple[str, ...], list[int]] = {}  # files that name the same classes are read together
    parsed = [read_output_2021(output) for _, output in pairs]
    for i, (names, _, _) in enumerate(parsed):
        files_of.setdefault(tuple(names), []).append(i)
    for names, rows in files_of.items():
        answers = np.zeros((len(names), len(classes)))  # output k answers table class j when they share a code
        for k, name in enumerate(names):
            for code in set(name.split("|")):
                answers[k, column_of.get(code, [])] = 1
        read = np.flatnonzero(answers.any(axis=1))  # only these entries are read: a row may be longer, or end early
        for i in rows:
            if min(len(parsed[i][1]), len(parsed[i][2])) <= (read.max() if len(read) else -1):
                raise ScoringError(f"{pairs[i][1]}: fewer labels or probabilities than classes")
        fitted = lambda row: (list(row) + [0] * len(names))[:len(names)]  # noqa: E731 - entries never read are 0
        bits = np.array([fitted(parsed[i][1]) for i in rows], dtype=float)
        values = np.array([fitted(parsed[i][2]) for i in rows], dtype=float)
        counted = answers.sum(axis=0)
        binary[rows] = bits @ answers > 0
        scalar[rows] = np.where(counted > 0, values @ answers / np.maximum(counted, 1), 0.0)
    return classes, labels, binary, scalar, weights


def load_table_2021(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """The 2021 table's classes (file order, names as written) and weights (a non-finite entry is NaN)."""
    rows = [[cell.strip() for cell in line.split(",")] for line in Path(path).read_text().splitlines()]
    classes = rows[0][1:]
    values = np.array([[parse_number(cell) for cell in row[1:len(classes) + 1]] for row in rows[1:len(classes) + 1]])
    if [set(row[0].split("|")) for row in rows[1:len(classes) + 1]] != [set(c.split("|")) for c in classes]:
        raise ScoringError(f"{path}: not a square weight table with matching row and column names")
    return classes, np.where(np.isfinite(values), values, np.nan)


def score_run_2021(classes: list[str], labels: np.ndarray, binary: np.ndarray, scalar: np.ndarray,
                   weights: np.ndarray) -> Scores:
    """The 2021 scorer's figures: macro AUROC, AUPRC and F-measure (NaN classes left out), accuracy (records
    answered exactly), and the Challenge metric, 0.0 where a perfect and the sinus-rhythm-only classifier
    score alike."""
    auroc_c, auprc_c = auc(labels, scalar)
    f_c = f_measure(labels, binary)
    normal = np.zeros_like(labels)
    normal[:, classes.index(NORMAL_CLASS)] = True
    gain = labels @ np.nan_to_num(weights)
    observed, correct, inactive = (float(record_credits(labels, gain, o).sum()) for o in (binary, labels, normal))
    challenge = (observed - inactive) / (correct - inactive) if correct != inactive else 0.0
    mean = lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan  # noqa: E731
    return Scores(classes=list(classes), auroc=mean(auroc_c), auprc=mean(auprc_c),
                  accuracy=float(np.mean(np.all(labels == binary, axis=1))), f_measure=mean(f_c),
                  f_beta=math.nan, g_beta=math.nan, challenge_metric=challenge, auroc_classes=auroc_c,
                  auprc_classes=auprc_c, f_measure_classes=f_c)
