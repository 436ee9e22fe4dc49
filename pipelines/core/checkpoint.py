"""Checkpoint folders: ``state.pt`` (full training state) + ``config.json``; and the exported
generator: the sampling nets' weights + what is needed to rebuild them. Written via a temp
file and rename so a crash mid-write never leaves a file that loads; read with
``weights_only=True`` so loading a checkpoint never runs pickled code."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from pipelines.errors import DataError, NotFound

STATE = "state.pt"
CONFIG = "config.json"
GENERATOR_FILE = "generator.pt"


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(folder: str | Path, state: dict[str, Any]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_text(json.dumps(state["config"], indent=2), folder / CONFIG)
    _atomic_save(state, folder / STATE)  # last: its presence marks a complete checkpoint
    return folder


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    file = path / STATE if path.is_dir() else path
    if not file.is_file():
        raise NotFound(f"no checkpoint at {path} (expected {STATE})")
    try:
        return torch.load(file, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:  # not a torch file, or a truncated one
        # torch's own message would suggest weights_only=False, which ganforge never does
        raise DataError(f"{file} is not a checkpoint ganforge can read ({type(exc).__name__})") from exc


def export_generator(folder: str | Path, nets: dict[str, torch.nn.Module], meta: dict[str, Any]) -> Path:
    """The nets needed to generate (EMA copies where they exist) and how to rebuild them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save({name: net.state_dict() for name, net in nets.items()}, folder / GENERATOR_FILE)
    _atomic_text(json.dumps(meta, indent=2), folder / CONFIG)
    return folder
