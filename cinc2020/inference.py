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
from .augment import network_leads
from .batches import collate
from .decisions import decide
from .ensemble import combine
from .labels import CPSC_CLASSES, answering_classes
from .models import build_model
from .preprocess import clean, demographic_inputs, normalise, preprocessing
from .records import LEAD_SETS_2021, RecordError, parse_header
from .scoring import WEIGHTS_2021_FILE, load_weights, scored_columns


ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = {"snomed": ROOT / "model", "cpsc": ROOT / "model" / "cpsc"}  # each label scheme's shipped model


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedModel:
    networks: list[nn.Module]
    configs: list[Config]            # one per network
    classes: list[str]
    thresholds: np.ndarray
    stacker: dict[str, np.ndarray] | None
    stacker_inputs: list[str]
    description: dict
    device: torch.device
    failures: list[tuple[str, str]] = field(default_factory=list)  # (record, reason) it answered with zeros

    def preparations(self, data: np.ndarray, header_lines: list[str]) -> dict[tuple, np.ndarray]:
        """The record cleaned once for each preprocessing its members use (``preprocess.preprocessing``)."""
        prepared: dict[tuple, np.ndarray] = {}
        for config in self.configs:
            if preprocessing(config) not in prepared:
                prepared[preprocessing(config)] = clean(data, header_lines, config)
        return prepared

    def probabilities(self, data: np.ndarray, header_lines: list[str]) -> np.ndarray:
        """The model's class probabilities for one record, from every member network."""
        prepared = self.preparations(data, header_lines)
        header = parse_header(header_lines)
        person = demographic_inputs(header.age, header.sex)[None]
        outputs = [predict_probabilities(network, config, [prepared[preprocessing(config)]], person, self.device)[0]
                   for network, config in zip(self.networks, self.configs)]
        return combine(np.stack(outputs)[:, None, :], [c.model for c in self.configs],
                       self.stacker, self.stacker_inputs)[0]


def load_model(model_dir: str | Path) -> LoadedModel:
    saved = checkpoint.load(model_dir)
    run_on = device()
    networks = []
    for i, member in enumerate(saved.members):
        network = build_model(member.config, len(saved.classes), len(saved.auxiliary))
        try:
            network.load_state_dict(member.state)
        except RuntimeError as error:
            raise ModelFileError(f"{Path(model_dir) / saved.description['weights']}: member {i}'s tensors do not "
                                 f"fit its {member.config.model} model ({str(error).splitlines()[0]})") from None
        networks.append(network.to(run_on).eval())
    stacker = None if saved.stacker is None else {k: v.double().numpy() for k, v in saved.stacker.items()}
    return LoadedModel(networks, [m.config for m in saved.members], saved.classes,
                       np.asarray(saved.thresholds, dtype=np.float64), stacker, saved.stacker_inputs,
                       saved.description, run_on)


# How a record longer than the training crop is predicted: "whole" (the network runs over all of it, far
# more time steps than training ever showed its recurrence and attention), or cut into pieces of the crop's
# length whose probabilities are combined per class by their "mean" or "max". Chosen on development records
# repeated to 2, 10 and 30 minutes (experiments/long_records.py, docs/recipe.md): what drifts least from the
# 10-s record's own probabilities.
LONG_RECORDS = "mean"


def pieces(length: int, piece: int | None) -> list[tuple[int, int]]:
    """(start, end) of the pieces a record of ``length`` samples is cut into: the record itself when it is no
    longer than ``piece`` (or ``piece`` is None); else the fewest pieces of ``piece`` samples that cover it,
    evenly spaced from its start to its end, so that their overlaps are spread alike and no stretch of the
    record (its tail, say) counts more than any other in their mean."""
    if piece is None or length <= piece:
        return [(0, length)]
    count = -(-length // piece)
    return [(start, start + piece) for start in (round(k * (length - piece) / (count - 1)) for k in range(count))]


def predict_probabilities(network: nn.Module, config: Config, signals, demographics: np.ndarray,
                          run_on: torch.device, batch_size: int = 20, long_records: str = LONG_RECORDS) -> np.ndarray:
    """Class probabilities for clean signals (``preprocess.clean``: a list, or a ``SignalStore`` read a batch at
    a time) with their demographic inputs (records x ``preprocess.N_DEMOGRAPHICS``), batching records of
    similar length. A record longer than the training crop is predicted as ``long_records`` says (its pieces
    join the batches, so the batches of the shorter records beside it change make-up, not their outputs
    beyond rounding: every operation is masked).
    Auxiliary outputs (``models.build_model``) are left out."""
    if long_records not in ("whole", "mean", "max"):
        raise ValueError(f"long_records must be 'whole', 'mean' or 'max', not {long_records!r}")
    if network.training:  # eval() walks every module: a millisecond a record if the driver paid it each time
        network.eval()
    lengths = signals.lengths if hasattr(signals, "lengths") else [s.shape[1] for s in signals]
    piece = None if long_records == "whole" else int(config.train_crop_s * config.fs)
    parts = [(i, start, end) for i, n in enumerate(lengths) for start, end in pieces(int(n), piece)]
    order = sorted(range(len(parts)), key=lambda j: parts[j][2] - parts[j][1])
    outputs = np.zeros((len(parts), network.answered_classes))
    with torch.inference_mode():
        for first in range(0, len(order), batch_size):
            chosen = order[first:first + batch_size]
            records = [parts[j][0] for j in chosen]
            signal_of = {i: signals[i] for i in dict.fromkeys(records)}  # each record read once a batch
            batch, batch_lengths = collate([normalise(network_leads(signal_of[i][:, start:end], config),
                                                      config.normalisation)
                                            for i, start, end in (parts[j] for j in chosen)])
            person = torch.from_numpy(np.asarray(demographics[records], dtype=np.float32)).to(run_on)
            logits = network(batch.to(run_on), batch_lengths, person)[:, :network.answered_classes]
            for j, row in zip(chosen, torch.sigmoid(logits).double().cpu().numpy()):
                outputs[j] = row
    owner = np.array([i for i, _, _ in parts], dtype=np.int64)
    if long_records == "max":
        probabilities = np.zeros((len(signals), outputs.shape[1]))
        np.maximum.at(probabilities, owner, outputs)
        return probabilities
    counts = np.bincount(owner, minlength=len(signals))[:, None]
    probabilities = np.zeros((len(signals), outputs.shape[1]))
    np.add.at(probabilities, owner, outputs)
    return probabilities / np.maximum(counts, 1)



def classify(data: np.ndarray, header_lines: list[str], model: LoadedModel, thresholds: np.ndarray | None = None):
    """``(labels, probabilities, classes)`` for one record, decided with the model's thresholds (or
    ``thresholds``); unreadable records get zeros.

    An unreadable record is reported on stderr, once, and remembered in
    ``model.failures``; it never raises.
    """
    try:
        probabilities = model.probabilities(data, header_lines)
    except Exception as error:  # one bad record must never end a challenge run
        reason = str(error) if isinstance(error, RecordError) else f"unexpected {type(error).__name__}: {error}"
        name = record_name(header_lines)
        model.failures.append((name, reason))
        print(f"error: record {name}: {reason}; its outputs are all 0", file=sys.stderr)
        zeros = np.zeros(len(model.classes))
        return zeros.astype(int), zeros, model.classes
    return decide(probabilities, model.thresholds if thresholds is None else thresholds)[0], probabilities, \
        model.classes


def answer_for(requested: list[str], labels: np.ndarray, probabilities: np.ndarray,
               classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A model's ``(labels, probabilities)`` over its ``classes`` restated for the ``requested`` class list:
    each requested class takes its answering classes' highest probability and any of their labels
    (``labels.answering_classes``); a class the model cannot answer is 0 and negative."""
    column = {c: j for j, c in enumerate(classes)}
    answers = [[column[c] for c in answering_classes(r, classes)] for r in requested]
    return (np.array([int(any(labels[j] for j in a)) for a in answers], dtype=int),
            np.array([max((float(probabilities[j]) for j in a), default=0.0) for a in answers]))


@dataclass
class LeadSetModel:
    """A model as the 2021 contract loads it, once per lead set of the test headers: its networks, the
    thresholds for that lead set, and the 2021 table's classes it answers."""
    model: LoadedModel
    lead_set: str               # the name in records.LEAD_SETS_2021 whose thresholds it decides with
    thresholds: np.ndarray      # over ``model.classes``
    classes: list[str]          # the 2021 table's, "|"-joined where codes are equivalent


def load_for_leads(model_dir: str | Path, leads) -> LeadSetModel:
    """The model of ``model_dir`` for records with these ``leads``: decided with the thresholds tuned for the 2021
    metric on out-of-fold predictions made with that lead set's leads (``recipe``: ``thresholds_2021``); for
    leads that are no 2021 set, the largest set among them. A model trained before those thresholds existed
    decides with its 2020 thresholds, and says so."""
    model = load_model(model_dir)
    given = set(leads)
    lead_set = next((name for name, chosen in LEAD_SETS_2021.items() if set(chosen) == given), None) or next(
        (name for name, chosen in LEAD_SETS_2021.items() if set(chosen) <= given), "12 leads")
    tuned = model.description.get("thresholds_2021", {})
    if lead_set not in tuned:
        print(f"note: {model_dir} has no thresholds tuned for {lead_set} and the 2021 metric: it decides with its "
              "2020 thresholds (retrain to tune them)", file=sys.stderr)
    thresholds = np.asarray(tuned.get(lead_set, model.thresholds), dtype=np.float64)
    if thresholds.shape != (len(model.classes),):
        raise ModelFileError(f"{model_dir}: {len(thresholds)} thresholds for {lead_set}, not one per class "
                             f"({len(model.classes)})")
    return LeadSetModel(model, lead_set, thresholds, load_weights(WEIGHTS_2021_FILE)[0])


def classify_2021(header: str, recording: np.ndarray, model: LeadSetModel) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(classes, labels, probabilities)`` over the 2021 table's classes for one record (``header``: the header
    file's text; ``recording``: its raw ``val`` array, the header's leads only): each class answered by the
    model's classes for any of its codes; a class the model cannot answer is 0 and negative. Never raises: a
    record that cannot be read gets all zeros and one stderr line (``classify``)."""
    header_lines = header.splitlines(keepends=True) if isinstance(header, str) else header
    labels, probabilities, classes = classify(recording, header_lines, model.model, model.thresholds)
    return (model.classes, scored_columns(np.asarray(labels, dtype=np.int64)[None], classes, model.classes)[0],
            scored_columns(np.asarray(probabilities, dtype=np.float64)[None], classes, model.classes)[0])


@dataclass
class ShippedModels:
    """Both shipped models, for the unofficial phase's driver, which loads with no folder: the class
    list of its first call picks the one that speaks it (CPSC text classes or SNOMED CT codes)."""
    models: dict[str, LoadedModel]
    chosen: LoadedModel | None = None

    def pick(self, requested: list[str]) -> LoadedModel:
        if self.chosen is None:
            self.chosen = self.models["cpsc" if set(requested) & set(CPSC_CLASSES) else "snomed"]
        return self.chosen


def load_shipped_models() -> ShippedModels:
    return ShippedModels({scheme: load_model(folder) for scheme, folder in SHIPPED_MODELS.items()})


def record_name(header_lines) -> str:
    for line in header_lines or []:
        if line.strip() and not line.strip().startswith("#"):
            return line.split()[0]
    return "<no record line>"
