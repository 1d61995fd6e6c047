"""Augmentation of training records: random variants of a clean record that keep its diagnosis.

Augmentation (``Config.augment``) runs on training records only, on clean signals
(millivolts, ``preprocess.clean``), in this order: a random start (the record begins up to
``shift_s`` later), per-lead amplitude scaling, baseline wander (a slow sinusoid per
lead), white noise, and lead dropout. Lead dropout keeps one of the 2021 challenge's
lead sets (``records.LEAD_SETS_2021``) or a random subset, zeroes the other leads, and derives
the limb leads from the kept ones exactly as a record read with those leads alone
would be (``records.derive_limb_leads``), so one 12-lead model learns what each lead
set looks like at inference. Every random draw comes from the generator passed in
(``seeds.random_stream``: drawn afresh each epoch from the seed, so a resumed run draws
what an uninterrupted one would).
"""

from __future__ import annotations

import numpy as np

from .config import Config

from .records import LEAD_SETS_2021, STANDARD_LEADS, derive_limb_leads

WANDER_HZ = (0.05, 0.5)   # breathing and movement: the band a 0.5 Hz high-pass would remove


def lead_mask(leads) -> np.ndarray:
    """A boolean per standard lead: True for the named ones."""
    return np.isin(STANDARD_LEADS, leads)


def keep_leads(signal: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The record as it would read with only the ``kept`` leads: the others zero, limb leads derived."""
    return derive_limb_leads(np.where(kept[:, None], signal, 0).astype(signal.dtype), kept)


def network_leads(signal: np.ndarray, config: Config) -> np.ndarray:
    """A clean record as the network reads it: whole, or with only ``config.network_leads``'s leads."""
    if config.network_leads == "12 leads":
        return signal
    return keep_leads(signal, lead_mask(LEAD_SETS_2021[config.network_leads]))


def augment(signal: np.ndarray, config: Config, rng: np.random.Generator) -> np.ndarray:
    """One random variant of a clean training record (same leads, at most as long). Leads the record
    lacks (zeros) stay zero, as they read at inference."""
    fs = config.fs
    leads, length = signal.shape
    present = signal.any(axis=1, keepdims=True)
    shift = int(rng.integers(0, int(config.shift_s * fs) + 1))
    if length - shift >= fs:  # keep at least a second
        signal = signal[:, shift:]
        length -= shift
    signal = signal * np.exp(rng.normal(0, config.scale_sd, (leads, 1)))
    if config.wander_mv > 0:
        t = np.arange(length) / fs
        frequency = rng.uniform(*WANDER_HZ, (leads, 1))
        phase = rng.uniform(0, 2 * np.pi, (leads, 1))
        signal = signal + rng.uniform(0, config.wander_mv, (leads, 1)) * np.sin(2 * np.pi * frequency * t + phase)
    if config.noise_sd > 0:
        signal = signal + config.noise_sd * signal.std(axis=1, keepdims=True) * rng.standard_normal((leads, length))
    signal = np.where(present, signal, 0)
    if rng.random() < config.lead_dropout:
        reduced = list(LEAD_SETS_2021.values())[1:]
        choice = int(rng.integers(0, len(reduced) + 1))  # one more than the sets: a random subset
        kept = lead_mask(reduced[choice]) if choice < len(reduced) else rng.random(leads) < 0.5
        if kept.any():
            signal = keep_leads(signal, kept)
    return signal.astype(np.float32)


