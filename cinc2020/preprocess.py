"""One record as the networks read it: the record in millivolts on the 12 standard leads at the model's rate,
centred and band-passed (``clean``: what the cache keeps), normalised per lead (``normalise``), and the
person's age and sex as inputs (``demographic_inputs``)."""

from __future__ import annotations

import math

import numpy as np

from .config import Config
from .records import STANDARD_LEADS, parse_header, resample, standard_leads

N_LEADS = len(STANDARD_LEADS)  # what every network reads: the 12 standard leads, absent ones zero
N_DEMOGRAPHICS = 4  # age / 100, age known, male, female (``demographic_inputs``)


def clean(data: np.ndarray, header_lines: list[str] | str, config: Config) -> np.ndarray:
    """One record in millivolts on the 12 leads at ``config.fs``, centred and band-passed (float32).

    Limb leads the record lacks are derived from any two it has (``records.derive_limb_leads``).
    Every step is linear, so limb leads derived here or after augmentation agree. This is what
    the cache keeps; ``normalise`` turns it into the model's input.
    """
    header = parse_header(header_lines)
    signal = standard_leads(data, header)  # a new array, centred in place below
    # Centre before resampling: the filter would otherwise ring at the edges against a DC offset.
    signal -= signal.mean(axis=1, keepdims=True)
    signal = resample(signal, header.fs, config.fs)
    if config.bandpass_hz is not None:
        signal = bandpass(signal, config.fs, *config.bandpass_hz)
    signal = signal - signal.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(signal, dtype=np.float32)


def bandpass(signal: np.ndarray, fs: float, low_hz: float, high_hz: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth band-pass; the upper edge is kept below 0.9 fs/2 (none above it)."""
    from scipy.signal import butter, sosfiltfilt

    if not 0 < low_hz < high_hz:
        raise ValueError(f"band-pass edges must satisfy 0 < low < high, not {low_hz}, {high_hz}")
    high_hz = min(high_hz, 0.45 * fs)
    if signal.shape[1] <= 15:  # too short for the filter's edge padding: unfiltered
        return signal
    sos = butter(2, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, signal, axis=1, padlen=min(signal.shape[1] - 1, 3 * int(fs / low_hz)))


def normalise(signal: np.ndarray, how: str) -> np.ndarray:
    """The model's input from a clean signal: per lead, the mean removed and (``how = "std"``)
    divided by the SD (a flat or missing lead stays zero)."""
    signal = signal - signal.mean(axis=1, keepdims=True)
    if how == "std":
        spread = signal.std(axis=1, keepdims=True)
        signal = signal / np.where(spread > 1e-6, spread, 1.0)
    return np.ascontiguousarray(signal, dtype=np.float32)


def prepare(data: np.ndarray, header_lines: list[str] | str, config: Config) -> np.ndarray:
    """The model's input for one record: 12 leads, normalised, at ``config.fs`` (float32)."""
    return normalise(clean(data, header_lines, config), config.normalisation)


def preprocessing(config: Config) -> tuple:
    """What ``clean`` depends on in a configuration: configurations alike here share a cache and,
    in an ensemble, one cleaning of each record."""
    return config.fs, config.bandpass_hz


def demographic_inputs(age: float, sex: str) -> np.ndarray:
    """Age and sex as the networks read them (``N_DEMOGRAPHICS``): age / 100 and whether it
    is known (PTB-XL writes 300 for the over-89s: taken as 90), male, female (neither: unknown)."""
    age_given = math.isfinite(age) and age >= 0
    sex = sex.strip().lower()
    return np.array([min(age, 90.0) / 100 if age_given else 0.0, float(age_given),
                     float(sex in ("male", "m")), float(sex in ("female", "f"))], dtype=np.float32)
