"""The random streams of a training run, each drawn afresh every epoch from the run's seed, so that a resumed
run needs no saved generator to draw what an uninterrupted one would, and a batch is the same whichever
process makes it."""

from __future__ import annotations

import numpy as np

INITIAL_WEIGHTS, BATCH_ORDER, AUGMENTATION, DROPOUT = range(4)


def random_stream(seed: list[int], stream: int, *where: int) -> np.random.Generator:
    """An independent generator for ``stream`` (at epoch, rank: ``where``) of the run seeded by ``seed``.

    The seed's length leads its entropy: numpy pads entropy with zeros, which would make [s] and [s, 0] alike.
    """
    return np.random.default_rng(np.random.SeedSequence([len(seed), *seed], spawn_key=(stream, *where)))
