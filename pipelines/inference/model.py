"""Load a trained GAN's sampling nets from what training leaves behind, on CPU or GPU:

* an MLflow run id: its ``generator`` artifact (EMA weights), else its ``checkpoint``;
* a folder written by ``export_generator`` (``generator.pt`` + ``config.json``);
* a checkpoint folder or ``state.pt`` file (Ray Train's checkpoints, the MLflow ``checkpoint``
  artifact): EMA copies where there are any.

Everything is read with ``weights_only=True``."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import gan_core
from gan_core.interface import GAN
from pipelines.config.load import build_dataclass
from pipelines.config.schema import TrackingConfig
from pipelines.train.checkpoint import CONFIG, GENERATOR, STATE, load_checkpoint

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Trained:
    gan: GAN
    nets: dict[str, nn.Module]  # eval mode, on ``device``
    device: torch.device
    source: str


def _build(meta: dict[str, Any], weights: dict[str, dict], device: torch.device, source: str) -> Trained:
    gan_cls = gan_core.get(meta["gan"])
    model_cfg = build_dataclass(gan_cls.Config, meta["model"], "model.")
    gan = gan_cls(model_cfg, int(meta["resolution"]), int(meta["channels"]))
    nets = {name: net for name, net in gan.build_nets().items() if name in weights}
    for name, net in nets.items():
        net.load_state_dict(weights[name])
        net.to(device).eval().requires_grad_(False)
    return Trained(gan, nets, device, source)


def _from_export(folder: Path, device: torch.device) -> Trained:
    meta = json.loads((folder / CONFIG).read_text())
    weights = torch.load(folder / GENERATOR, map_location="cpu", weights_only=True)
    return _build(meta, weights, device, str(folder))


def _from_checkpoint(path: Path, device: torch.device) -> Trained:
    state = load_checkpoint(path, "cpu")
    engine, config = state["engine"], state["config"]
    if "image" not in state:
        raise FileNotFoundError(f"{path} has no image size metadata (an older checkpoint); use the run's generator artifact")
    meta = {"gan": config["gan"], "model": config["model"], **state["image"]}
    generators = gan_core.get(config["gan"]).groups["G"]
    weights = {name: engine["ema"].get(name, engine["nets"][name]) for name in generators}
    return _build(meta, weights, device, str(path))


def _from_run(run_id: str, tracking: TrackingConfig, device: torch.device) -> Trained:
    from mlflow import MlflowClient  # only this source needs MLflow

    client = MlflowClient(tracking.uri)
    names = {a.path for a in client.list_artifacts(run_id)}
    target = "generator" if "generator" in names else "checkpoint" if "checkpoint" in names else None
    if target is None:
        raise FileNotFoundError(f"MLflow run {run_id} has no generator or checkpoint artifact (did it finish?)")
    folder = Path(tempfile.mkdtemp(prefix="ganforge-run-"))
    local = Path(client.download_artifacts(run_id, target, str(folder)))
    trained = _from_export(local, device) if target == "generator" else _from_checkpoint(local, device)
    trained.source = f"MLflow run {run_id} ({target})"
    return trained


def load_trained(source: str, tracking: TrackingConfig, device: str | torch.device = "cpu") -> Trained:
    device = torch.device(device)
    path = Path(source).expanduser()
    if path.is_dir() and (path / GENERATOR).is_file():
        return _from_export(path, device)
    if path.exists() and (path.is_file() or (path / STATE).is_file()):
        return _from_checkpoint(path, device)
    if RUN_ID.match(source):
        return _from_run(source, tracking, device)
    raise FileNotFoundError(f"{source} is neither a checkpoint or generator folder, a state.pt file, "
                            f"nor an MLflow run id")
