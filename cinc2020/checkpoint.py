"""A saved model is a folder: ``model.json`` (configuration, classes, thresholds, what it
was trained on, how it scored) and ``weights.safetensors`` (tensors only).

Loading reads JSON and raw tensors and never unpickles, so a model folder from a
stranger cannot run code. Files are written to a temporary name and renamed, so
a run killed while saving leaves the previous model whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import Config

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT = 1


class ModelFileError(Exception):
    """A model folder that is missing, truncated or tampered with."""


def atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)``, then move the result onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def save(model_dir: str | Path, state: dict[str, torch.Tensor], config: Config, classes: list[str],
         thresholds: list[float], **metadata) -> None:
    """Write weights first and the JSON last: the JSON names a complete model."""
    model_dir = Path(model_dir)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(model_dir / WEIGHTS_FILE, lambda p: save_file(tensors, str(p)))
    document = {"format": FORMAT, "config": config.to_json(), "classes": list(classes),
                "thresholds": [float(t) for t in thresholds], **metadata}
    atomic_write(model_dir / MODEL_FILE, lambda p: p.write_text(json.dumps(document, indent=2)))


def load(model_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The model's JSON document and its tensors; ``ModelFileError`` names the bad file."""
    model_dir = Path(model_dir)
    description = model_dir / MODEL_FILE
    weights = model_dir / WEIGHTS_FILE
    try:
        document = json.loads(description.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{description}: no such file (is {model_dir} a model folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{description}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{description}: not a model description of format {FORMAT}")
    for key in ("config", "classes", "thresholds"):
        if key not in document:
            raise ModelFileError(f"{description}: missing '{key}'")
    try:
        Config.from_json(document["config"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{description}: bad configuration ({error})") from None
    if len(document["thresholds"]) != len(document["classes"]):
        raise ModelFileError(f"{description}: {len(document['thresholds'])} thresholds for {len(document['classes'])} classes")
    try:
        tensors = load_file(str(weights))
    except FileNotFoundError:
        raise ModelFileError(f"{weights}: no such file") from None
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({error})") from None
    return document, tensors
