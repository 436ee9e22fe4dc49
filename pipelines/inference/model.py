"""Load a trained GAN's sampling nets from what training leaves behind, on CPU or GPU:

* an MLflow run id: its ``generator`` artifact (EMA weights), else its ``checkpoint``;
* a ``runs:/RUN_ID/PATH`` URI, or a registered model version (``models:/NAME@ALIAS``,
  ``models:/NAME/VERSION``: the generator a search registers);
* a folder written by ``export_generator`` (``generator.pt`` + ``config.json``), or the
  MLflow model that holds one;
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
from gan_core.interface import GAN, GENERATOR
from pipelines.config.load import build_dataclass
from pipelines.config.schema import TrackingConfig
from pipelines.core import storage
from pipelines.core.checkpoint import CONFIG, GENERATOR_FILE, STATE, load_checkpoint
from pipelines.errors import NotFound

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MLMODEL = "MLmodel"  # the file that marks an MLflow model folder


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
    weights = torch.load(folder / GENERATOR_FILE, map_location="cpu", weights_only=True)
    return _build(meta, weights, device, str(folder))


def _from_checkpoint(path: Path, device: torch.device) -> Trained:
    state = load_checkpoint(path, "cpu")
    engine, config = state["engine"], state["config"]
    if "image" not in state:
        raise FileNotFoundError(
            f"{path} has no image size metadata (an older checkpoint); use the run's generator artifact"
        )
    meta = {"gan": config["gan"], "model": config["model"], **state["image"]}
    generators = gan_core.get(config["gan"]).nets_with(GENERATOR)
    weights = {name: engine["ema"].get(name, engine["nets"][name]) for name in generators}
    return _build(meta, weights, device, str(path))


def load_trained_folder(folder: Path, device: str | torch.device = "cpu") -> Trained:
    """An exported generator folder (``generator.pt`` + ``config.json``)."""
    return _from_export(folder, torch.device(device))


def _from_folder(folder: Path, device: torch.device, source: str) -> Trained:
    """An exported generator, an MLflow model of one, or a checkpoint, whichever ``folder`` holds."""
    if (folder / MLMODEL).is_file():  # the pyfunc model: the exported generator is an artifact inside it
        inside = next(folder.glob(f"artifacts/*/{GENERATOR_FILE}"), None)
        folder = inside.parent if inside else folder
    if (folder / GENERATOR_FILE).is_file():
        trained = _from_export(folder, device)
    elif (folder / STATE).is_file():
        trained = _from_checkpoint(folder, device)
    else:
        raise NotFound(f"{source} holds neither an exported generator ({GENERATOR_FILE}) nor a checkpoint ({STATE})")
    trained.source = source
    return trained


def _from_run(run_id: str, tracking: TrackingConfig, device: torch.device) -> Trained:
    """The run's best generator model (named by its tags), else its newest one, else (runs of
    older versions) its ``generator`` or ``checkpoint`` artifact."""
    from mlflow import MlflowClient  # only these sources need MLflow
    from mlflow.exceptions import MlflowException

    from pipelines.tracking.models import RUN_MODEL_TAG, run_models

    client = MlflowClient(tracking.uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise NotFound(f"no MLflow run {run_id} in the tracking store {tracking.uri}") from exc
    named = run.data.tags.get(RUN_MODEL_TAG)
    models = [] if named else run_models(client, run_id)
    if named or models:
        model_id = named.removeprefix("models:/") if named else models[-1].model_id
        return _from_logged_model(client, model_id, tracking, device, f"MLflow run {run_id} (model {model_id})")
    names = {a.path for a in client.list_artifacts(run_id)}
    target = "generator" if "generator" in names else "checkpoint" if "checkpoint" in names else None
    if target is None:
        raise NotFound(f"MLflow run {run_id} in {tracking.uri} has no logged generator or checkpoint (did it finish?)")
    return _from_run_path(client, run_id, target, device)


def _from_logged_model(client, model_id: str, tracking: TrackingConfig, device: torch.device, source: str) -> Trained:
    from mlflow.artifacts import download_artifacts

    location = client.get_logged_model(model_id).artifact_location
    folder = tempfile.mkdtemp(prefix="ganforge-model-")
    local = Path(download_artifacts(artifact_uri=location, dst_path=folder, tracking_uri=tracking.uri))
    return _from_folder(local, device, source)


def _from_run_path(client, run_id: str, path: str, device: torch.device) -> Trained:
    folder = Path(tempfile.mkdtemp(prefix="ganforge-run-"))
    local = Path(client.download_artifacts(run_id, path, str(folder)))
    return _from_folder(local, device, f"MLflow run {run_id} ({path})")


def _from_uri(uri: str, tracking: TrackingConfig, device: torch.device) -> Trained:
    """``runs:/RUN_ID/PATH``, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, looked up in
    the tracking store (whose model registry a local store holds too)."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking.uri, registry_uri=tracking.uri)
    try:
        if uri.startswith("runs:/"):
            run_id, _, path = uri.removeprefix("runs:/").partition("/")
            return _from_run_path(client, run_id, path or "generator", device)
        found = _model_version(client, uri)
        local = Path(
            download_artifacts(
                artifact_uri=client.get_model_version_download_uri(found.name, found.version),
                dst_path=tempfile.mkdtemp(prefix="ganforge-model-"),
                tracking_uri=tracking.uri,
            )
        )
    except MlflowException as exc:
        where = "tracking store" if uri.startswith("runs:/") else "model registry of"
        raise NotFound(f"no {uri} in the {where} {tracking.uri}: {exc.message.splitlines()[0]}") from exc
    return _from_folder(local, device, f"{uri} (version {found.version}, run {found.run_id})")


def _model_version(client, uri: str):
    """The version that ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/NAME/latest``
    (also ``@latest``: MLflow reserves that alias for the newest version) names."""
    from mlflow.exceptions import MlflowException

    rest = uri.removeprefix("models:/")
    name, at, alias = rest.partition("@")
    if not at:
        name, _, alias = rest.rpartition("/")
        if not name or not (alias.isdigit() or alias.lower() == "latest"):
            raise NotFound(
                f"{uri} is not a registry URI of the form models:/NAME@ALIAS, models:/NAME/VERSION "
                "or models:/NAME/latest"
            )
    if alias.isdigit() and not at:
        return client.get_model_version(name, alias)
    if alias.lower() != "latest":
        return client.get_model_version_by_alias(name, alias)
    newest = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"], max_results=1)
    if not newest:
        raise MlflowException(f"Registered model '{name}' has no versions")
    return newest[0]


def _fetched(location: str) -> Path:
    try:
        return storage.download(location)
    except (OSError, ValueError) as exc:  # pyarrow: no such object, or a scheme it cannot open
        raise NotFound(f"cannot read {location}: {exc}") from exc


def load_trained(source: str, tracking: TrackingConfig, device: str | torch.device = "cpu") -> Trained:
    """``source``: a run id, a ``runs:/`` or ``models:/`` URI, a local folder or file, or a
    folder in run storage (``s3://...``: a Ray checkpoint)."""
    device = torch.device(device)
    if storage.is_uri(source):  # a checkpoint or exported generator in run storage (s3://...)
        return _from_folder(_fetched(source), device, source)
    path = Path(source).expanduser()
    if path.is_dir() and (path / GENERATOR_FILE).is_file():
        return _from_export(path, device)
    if path.exists() and (path.is_file() or (path / STATE).is_file()):
        return _from_checkpoint(path, device)
    if source.startswith(("runs:/", "models:/")) or RUN_ID.match(source):
        from pipelines.tracking.runs import check_store  # MLflow: only for these sources

        check_store(tracking.uri)
        return _from_uri(source, tracking, device) if ":/" in source else _from_run(source, tracking, device)
    raise NotFound(
        f"no generator or checkpoint at {source} (a folder with {GENERATOR_FILE} or {STATE}, or a state.pt "
        f"file), and it is neither an MLflow run id nor a runs:/ or models:/ URI"
    )
