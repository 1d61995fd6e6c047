"""Stratified splits keep each class and, with several sources, each source in proportion."""

import numpy as np

from cinc2020.splits import strata, stratified_folds


def two_sources(seed=0):
    """A large source and a small one that labels a rhythm on most of its records, as Chapman-Shaoxing does."""
    rng = np.random.default_rng(seed)
    large = rng.random((600, 4)) < [0.3, 0.1, 0.05, 0.0]
    small = rng.random((77, 4)) < [0.1, 0.2, 0.0, 0.6]
    return np.concatenate([large, small]), ["PTB-XL"] * 600 + ["Chapman-Shaoxing"] * 77


def test_one_source_adds_nothing_to_stratify_on():
    labels, _ = two_sources()
    assert np.array_equal(strata(labels, ["PTB-XL"] * len(labels)), labels)


def test_each_source_keeps_its_share_of_every_fold():
    labels, sources = two_sources()
    fold = stratified_folds(strata(labels, sources), [1.0] * 4, seed=0)
    small = np.array(sources) == "Chapman-Shaoxing"
    assert all(abs((fold[small] == k).sum() - 77 / 4) <= 1 for k in range(4))
    assert all(abs((fold == k).sum() - 677 / 4) <= 1 for k in range(4))
    for c in range(labels.shape[1]):  # and each class, as before
        assert all(abs((fold[labels[:, c]] == k).sum() - labels[:, c].sum() / 4) <= 1.5 for k in range(4))
