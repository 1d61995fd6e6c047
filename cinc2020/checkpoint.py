"""A saved model is a folder: ``model.json`` (classes, decision thresholds, each member
network's configuration, what it was trained on, how it scored, the auxiliary codes its
networks learned beside the classes if any) and
``weights-<hash>.safetensors`` (tensors only).

A model is one or more member networks (the fold models of a cross-validated
ensemble, of one or two architectures) and, optionally, a stacking
meta-classifier over the architectures' probabilities. Member ``i``'s tensors
are named ``member<i>.<parameter>``, the meta-classifier's ``stacker.<name>``.

Loading reads JSON and raw tensors and never unpickles, so a model folder from a
stranger cannot run code; the JSON carries the weights' SHA-256, so a tampered or
mismatched file is refused. Saving writes a new weights file, then replaces the
JSON atomically (the moment the new model exists), then removes the old weights:
a run killed at any point leaves one complete model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as tensors_to_bytes

from .config import Config

MODEL_FILE = "model.json"
WEIGHTS_NAME = re.compile(r"^weights-[0-9a-f]{16}\.safetensors$")
FORMAT = 3  # 3: the shared convolution stack's tensor names (format 2 models need retraining)
MEMBER_PREFIX = "member{}."
STACKER_PREFIX = "stacker."


class ModelFileError(Exception):
    """A model folder that is missing, truncated or tampered with."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)``, then move the result onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes files private; a model is meant to be shared
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_document(folder: str | Path, filename: str, document: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Save tensors and the JSON document that names them, crash-safely (see the module's doc)."""
    folder = Path(folder)
    weights = write_tensors(folder, tensors)
    atomic_write(folder / filename, lambda p: p.write_text(json.dumps({**document, **weights}, indent=2)))
    for stale in folder.glob("weights-*.safetensors"):
        if stale.name != weights["weights"]:
            stale.unlink()


def read_document(folder: str | Path, filename: str, check=None) -> tuple[dict, dict[str, torch.Tensor]]:
    """A JSON document and the tensors it names; ``check(document, path)`` vets the JSON first."""
    folder = Path(folder)
    path = folder / filename
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file (is {folder} a model folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise ModelFileError(f"{path}: not a JSON object")
    if check is not None:
        check(document, path)
    return document, read_tensors(folder, document, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass
class Member:
    """One network of a saved model."""
    config: Config
    state: dict[str, torch.Tensor]
    description: dict = field(default_factory=dict)  # how it was trained and scored


@dataclass
class SavedModel:
    classes: list[str]
    thresholds: list[float]
    members: list[Member]
    stacker: dict[str, torch.Tensor] | None = None  # "coefficients" (classes x inputs), "intercepts"
    stacker_inputs: list[str] = field(default_factory=list)  # the architectures it reads, in order
    description: dict = field(default_factory=dict)  # the whole model.json
    auxiliary: list[str] = field(default_factory=list)  # codes the networks learned beside the classes, never answered


def save(model_dir: str | Path, model: SavedModel, **metadata) -> None:
    tensors = {MEMBER_PREFIX.format(i) + name: value
               for i, member in enumerate(model.members) for name, value in member.state.items()}
    document = {"format": FORMAT, "classes": list(model.classes), "thresholds": [float(t) for t in model.thresholds],
                "members": [{"config": m.config.to_json(), **m.description} for m in model.members], **metadata}
    if model.auxiliary:
        document["auxiliary"] = list(model.auxiliary)
    if model.stacker is not None:
        tensors |= {STACKER_PREFIX + name: value for name, value in model.stacker.items()}
        document["stacker"] = {"inputs": list(model.stacker_inputs)}
    write_document(model_dir, MODEL_FILE, document, tensors)


def write_tensors(folder: Path, tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """Write tensors to a content-named file; returns the keys that name it in a JSON document."""
    payload = tensors_to_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    digest = hashlib.sha256(payload).hexdigest()
    name = f"weights-{digest[:16]}.safetensors"
    atomic_write(folder / name, lambda p: p.write_bytes(payload))
    return {"weights": name, "weights_sha256": digest}


def read_tensors(folder: Path, document: dict, described_by: Path) -> dict[str, torch.Tensor]:
    """The tensors a JSON document names, checked against its SHA-256."""
    name = document.get("weights")
    if not isinstance(name, str) or not WEIGHTS_NAME.match(name):
        raise ModelFileError(f"{described_by}: 'weights' must name a weights-<hash>.safetensors file in the folder")
    path = folder / name
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    if hashlib.sha256(payload).hexdigest() != document.get("weights_sha256"):
        raise ModelFileError(f"{path}: contents do not match the SHA-256 in {described_by.name} "
                             "(truncated, altered, or from another model)")
    try:
        return tensors_from_bytes(payload)
    except (SafetensorError, ValueError) as error:
        raise ModelFileError(f"{path}: not a readable safetensors file ({error})") from None


def load(model_dir: str | Path) -> SavedModel:
    """A saved model; ``ModelFileError`` names the bad file."""
    document, tensors = read_document(model_dir, MODEL_FILE, check=_check_model_document)
    members = []
    for i, entry in enumerate(document["members"]):
        prefix = MEMBER_PREFIX.format(i)
        state = {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}
        if not state:
            raise ModelFileError(f"{Path(model_dir) / document['weights']}: no tensors for member {i}")
        description = {k: v for k, v in entry.items() if k != "config"}
        members.append(Member(Config.from_json(entry["config"]), state, description))
    stacker = {name[len(STACKER_PREFIX):]: value for name, value in tensors.items() if name.startswith(STACKER_PREFIX)}
    inputs = document.get("stacker", {}).get("inputs", [])
    if bool(stacker) != ("stacker" in document):
        raise ModelFileError(f"{Path(model_dir) / MODEL_FILE}: stacker tensors and description disagree")
    if stacker:
        n_classes = len(document["classes"])
        if (tuple(stacker.get("coefficients", torch.empty(0)).shape) != (n_classes, len(inputs) * n_classes)
                or tuple(stacker.get("intercepts", torch.empty(0)).shape) != (n_classes,)
                or set(inputs) != {m.config.model for m in members}):
            raise ModelFileError(f"{Path(model_dir) / document['weights']}: the stacker does not fit "
                                 f"{n_classes} classes from {', '.join(inputs) or 'no'} models")
    return SavedModel(list(document["classes"]), list(document["thresholds"]), members,
                      stacker or None, list(inputs), document, list(document.get("auxiliary", [])))


def _check_model_document(document: dict, path: Path) -> None:
    if document.get("format") != FORMAT:
        older = isinstance(document.get("format"), int) and document["format"] < FORMAT
        raise ModelFileError(f"{path}: not a model description of format {FORMAT}"
                             + (f" (it is format {document['format']}, written by an older version of this code: "
                                "retrain it)" if older else ""))
    for key in ("members", "classes", "thresholds"):
        if key not in document:
            raise ModelFileError(f"{path}: missing '{key}'")
    if not isinstance(document["members"], list) or not document["members"]:
        raise ModelFileError(f"{path}: 'members' must list at least one network")
    try:
        configs = [Config.from_json(entry["config"]) for entry in document["members"]]
    except (TypeError, ValueError, KeyError) as error:
        raise ModelFileError(f"{path}: bad member configuration ({error})") from None
    if len({c.labels for c in configs}) != 1:
        raise ModelFileError(f"{path}: members use different label schemes")
    if len(document["thresholds"]) != len(document["classes"]):
        raise ModelFileError(f"{path}: {len(document['thresholds'])} thresholds for {len(document['classes'])} classes")
