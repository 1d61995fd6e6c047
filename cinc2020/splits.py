"""How records are divided: multi-label stratified folds, a training set's validation share, and the
project's fixed development/test split of its development records."""

from __future__ import annotations

import numpy as np

from .config import Config
from .data import model_classes
from .labels import label_matrix, source_of


def stratified_folds(labels: np.ndarray, proportions: list[float], seed: int) -> np.ndarray:
    """Fold index per record, keeping every class's share in each fold (iterative stratification).

    Sechidis et al. (2011): the rarest class is placed first, each of its records
    going to the fold that still wants most of that class.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels) > 0
    n = len(labels)
    proportions = np.asarray(proportions, dtype=np.float64) / np.sum(proportions)
    wanted_records = proportions * n
    wanted_labels = proportions[:, None] * labels.sum(axis=0)[None, :]
    fold = np.full(n, -1)
    remaining = np.ones(n, dtype=bool)

    def place(i: int, label: int | None) -> None:
        open_folds = np.flatnonzero(wanted_records > 0)  # a fold with its share of records takes no more
        if len(open_folds) == 0:
            open_folds = np.arange(len(proportions))
        scores = np.full(len(proportions), -np.inf)
        scores[open_folds] = (wanted_labels[:, label] if label is not None else wanted_records)[open_folds]
        best = np.flatnonzero(scores == scores.max())
        if len(best) > 1:
            best = best[wanted_records[best] == wanted_records[best].max()]
        f = rng.choice(best)
        fold[i] = f
        remaining[i] = False
        wanted_labels[f] -= labels[i]
        wanted_records[f] -= 1

    while remaining.any():
        counts = labels[remaining].sum(axis=0)
        if not counts.any():
            for i in rng.permutation(np.flatnonzero(remaining)):
                place(i, None)
            break
        rarest = np.flatnonzero(counts == counts[counts > 0].min())
        label = int(rng.choice(rarest))
        for i in rng.permutation(np.flatnonzero(remaining & labels[:, label])):
            place(i, label)
    return fold


def development_and_test(names: list[str], dx_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The project's fixed split of the dev records (their names and codes, in folder order): 80 % to
    develop recipes on, 20 % held out to test them once (experiments/evaluate_recipe.py).

    Each source (``labels.source_of``) is split on its own, so that adding a source moves no record of
    another: PTB-XL's test records are those they were before Chapman-Shaoxing joined. It stratifies on
    the SNOMED classes with at least 5 records, whatever a run's own configuration keeps, so that no
    setting moves a record between the two.
    """
    sources = np.array([source_of(name) for name in names])
    development, test = [], []
    for source in sorted(set(sources)):
        rows = np.flatnonzero(sources == source)
        dx = [dx_lists[i] for i in rows]
        classes = model_classes([d for d in dx if d], Config(labels="snomed", min_positives=5))
        fold = stratified_folds(label_matrix(dx, classes, "snomed"), [0.8, 0.2], seed=0)
        development.append(rows[fold == 0])
        test.append(rows[fold == 1])
    return np.sort(np.concatenate(development)), np.sort(np.concatenate(test))


def strata(labels: np.ndarray, sources: list[str]) -> np.ndarray:
    """What a stratified split keeps in proportion: each class and, when the records come from several
    sources, each source (a fold of another source mix would train and tune on another mix of labelling)."""
    sources = np.asarray(sources)
    names = np.unique(sources)
    if len(names) < 2:
        return np.asarray(labels)
    return np.concatenate([np.asarray(labels) > 0, sources[:, None] == names[None, :]], axis=1)


def split(labels: np.ndarray, config: Config, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified training and validation rows (drawn with ``seed``, default ``config.seed``);
    tiny sets validate on their training rows, and ``val_fraction`` 0 validates on none."""
    if config.val_fraction == 0:
        return np.arange(len(labels)), np.array([], dtype=np.int64)
    seed = config.seed if seed is None else seed
    fold = stratified_folds(labels, [1 - config.val_fraction, config.val_fraction], seed)
    train_rows, val_rows = np.flatnonzero(fold == 0), np.flatnonzero(fold == 1)
    return train_rows, (val_rows if len(val_rows) else train_rows)
