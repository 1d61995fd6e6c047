"""The state a killed training run resumes from: after every epoch, the network, optimiser, history and best
weights so far, saved in the model folder (``RESUME_FOLDER``) as JSON and tensors."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from . import checkpoint
from .config import Config
from .data import TrainingSet


RESUME_FOLDER = "resume"  # inside the model folder: the state after the last completed epoch


STATE_FILE = "state.json"


STATE_VERSION = 2  # states of another version (other random streams, other tensor names) are not resumed


def save_state(state_dir: Path, config: Config, data: TrainingSet, model: nn.Module, optimiser, scaler,
               history: list[dict], best: dict, best_state: dict | None) -> None:
    """Everything needed to continue training exactly where it stands (the random streams start afresh
    each epoch from the seed, and the schedule's step follows from the epoch)."""
    optimiser_state = optimiser.state_dict()
    tensors = {f"network.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"best.{k}": v for k, v in (best_state or {}).items()}  # none before a finite validation loss
    tensors |= {f"optimiser.{index}.{key}": value for index, entry in optimiser_state["state"].items()
                for key, value in entry.items()}
    document = {"version": STATE_VERSION, "config": config.to_json(), "records": data.names, "history": history,
                "best": best, "optimiser_groups": optimiser_state["param_groups"], "scaler": scaler.state_dict()}
    checkpoint.write_document(state_dir, STATE_FILE, document, tensors)


def resume_mismatch(saved: Path) -> ValueError:
    """The error for --resume over work saved with other options or records."""
    return ValueError(f"{saved} belongs to another configuration or training set: "
                      "resume with the same ones, or start afresh without --resume")


def restore_state(state_dir: Path, config: Config, data: TrainingSet, model: nn.Module, optimiser,
                  scaler) -> tuple[list[dict], dict, dict | None]:
    document, tensors = checkpoint.read_document(state_dir, STATE_FILE)
    if document.get("version") != STATE_VERSION:
        raise ValueError(f"{state_dir} was saved by another version of this code: start afresh without --resume")
    if not Config.from_json(document["config"]).same_results(config) or document["records"] != data.names:
        raise resume_mismatch(state_dir)
    model.load_state_dict({k[len("network."):]: v for k, v in tensors.items() if k.startswith("network.")})
    best_state = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} or None
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimiser."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": document["optimiser_groups"]})
    if document["scaler"]:
        scaler.load_state_dict(document["scaler"])
    return document["history"], document["best"], best_state
