"""Running a saved model on records: the work behind ``load_12ECG_model`` and
``run_12ECG_classifier``."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint
from .checkpoint import ModelFileError
from .config import Config
from .data import collate, prepare
from .models import build_model
from .records import RecordError


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedModel:
    network: nn.Module
    config: Config
    classes: list[str]
    thresholds: np.ndarray
    description: dict
    device: torch.device
    failures: list[tuple[str, str]] = field(default_factory=list)  # (record, reason) it answered with zeros


def load_model(model_dir: str | Path) -> LoadedModel:
    document, tensors = checkpoint.load(model_dir)
    config = Config.from_json(document["config"])
    network = build_model(config, len(document["classes"]))
    try:
        network.load_state_dict(tensors)
    except RuntimeError as error:
        raise ModelFileError(f"{Path(model_dir) / document['weights']}: tensors do not fit the "
                             f"configured {config.model} model ({str(error).splitlines()[0]})") from None
    run_on = device()
    network.to(run_on).eval()
    return LoadedModel(network, config, list(document["classes"]),
                       np.asarray(document["thresholds"], dtype=np.float64), document, run_on)


def predict_probabilities(network: nn.Module, signals, run_on: torch.device, batch_size: int = 20) -> np.ndarray:
    """Class probabilities for preprocessed signals (a list, or a ``SignalStore`` read a batch at a time),
    batching records of similar length."""
    network.eval()
    lengths = signals.lengths if hasattr(signals, "lengths") else [s.shape[1] for s in signals]
    order = np.argsort(lengths, kind="stable")
    probabilities = np.zeros((len(signals), 0), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch, batch_lengths = collate([signals[i] for i in chosen])
            out = torch.sigmoid(network(batch.to(run_on), batch_lengths)).double().cpu().numpy()
            if probabilities.shape[1] == 0:
                probabilities = np.zeros((len(signals), out.shape[1]))
            probabilities[chosen] = out
    return probabilities


def decide(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """0/1 labels: each class at its threshold, and the most probable class when none passes."""
    probabilities = np.atleast_2d(probabilities)
    labels = (probabilities >= thresholds).astype(int)
    empty = labels.sum(axis=1) == 0
    labels[empty, np.argmax(probabilities[empty], axis=1)] = 1
    return labels


def classify(data: np.ndarray, header_lines: list[str], model: LoadedModel):
    """``(labels, probabilities, classes)`` for one record; unreadable records get zeros.

    An unreadable record is reported on stderr, once, and remembered in
    ``model.failures``; it never raises.
    """
    try:
        signal = prepare(data, header_lines, model.config)
        probabilities = predict_probabilities(model.network, [signal], model.device)[0]
    except Exception as error:  # one bad record must never end a challenge run
        reason = str(error) if isinstance(error, RecordError) else f"unexpected {type(error).__name__}: {error}"
        name = record_name(header_lines)
        model.failures.append((name, reason))
        print(f"error: record {name}: {reason}; its outputs are all 0", file=sys.stderr)
        zeros = np.zeros(len(model.classes))
        return zeros.astype(int), zeros, model.classes
    return decide(probabilities, model.thresholds)[0], probabilities, model.classes


def record_name(header_lines) -> str:
    for line in header_lines or []:
        if line.strip() and not line.strip().startswith("#"):
            return line.split()[0]
    return "<no record line>"
