"""``ganforge train --resume RUN_ID_OR_CHECKPOINT``: find the checkpoint to continue from and
the config it was trained with.

A run id names a Ray Train run, ``ganforge-<run id>`` (or the later one its tags name) in the
storage path the run's tags give (local or a URI such as ``s3://``). Ray Train's own books
(``Result.from_path``) say which of its checkpoints is newest, and the resumed run reuses
that name, so Ray Train restores the checkpoint itself and keeps managing the run's
checkpoints. A run whose Ray storage is gone falls back to the final checkpoint logged to
MLflow, copied to the storage path so that workers on every node can read it."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterable

from pipelines.config import ConfigError, GanforgeConfig, build
from pipelines.config.load import apply_overrides
from pipelines.config.schema import TrackingConfig
from pipelines.core import storage
from pipelines.core.checkpoint import CONFIG, STATE
from pipelines.errors import NotFound
from pipelines.inference.model import RUN_ID

STORAGE_TAG = "ganforge.ray_storage"
RAY_RUN_TAG = "ganforge.ray_run"


def ray_run_name(run_id: str) -> str:
    """The Ray Train run of an MLflow run: one name for its first start and every resume
    from its newest checkpoint."""
    return f"ganforge-{run_id}"


def ray_books(tags: dict[str, str], run_id: str) -> str:
    """The Ray Train run that holds an MLflow run's newest checkpoints: the one its tags name
    (a resume from an older checkpoint starts new books), else the run's first."""
    return tags.get(RAY_RUN_TAG) or ray_run_name(run_id)


def checkpoint_location(run_folder: str, ray_path: str) -> str:
    """A Ray checkpoint's location as a URI (or local path): Ray gives its path within the
    storage's filesystem (``bucket/key``), which has lost the scheme."""
    return storage.join(run_folder, storage.basename(ray_path))


def newest_checkpoint(run_folder: str) -> str | None:
    """The newest checkpoint in Ray Train's books for the run in ``run_folder``; None if the
    run has none (or the folder is not a Ray Train run)."""
    from ray.train import Result

    try:
        result = Result.from_path(run_folder)
    except RuntimeError:  # no such folder, or no checkpoint manager snapshot in it
        return None
    return checkpoint_location(run_folder, result.checkpoint.path) if result.checkpoint else None


def _from_run(run_id: str, tracking: TrackingConfig) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipelines.tracking.runs import check_store

    check_store(tracking.uri)
    client = MlflowClient(tracking.uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise NotFound(f"no MLflow run {run_id} in the tracking store {tracking.uri}") from exc
    where = run.data.tags.get(STORAGE_TAG)
    newest = newest_checkpoint(storage.join(where, ray_books(run.data.tags, run_id))) if where else None
    if newest is not None:
        return newest
    if where and any(a.path == "checkpoint" for a in client.list_artifacts(run_id)):
        with tempfile.TemporaryDirectory(prefix="ganforge-resume-") as folder:
            local = client.download_artifacts(run_id, "checkpoint", folder)
            return storage.upload(local, storage.join(where, f"{ray_run_name(run_id)}-mlflow-checkpoint"))
    raise NotFound(
        f"MLflow run {run_id} in {tracking.uri} has no checkpoint to resume from (none in the storage "
        f"path {where} or in its artifacts)"
    )


def find_checkpoint(source: str, tracking: TrackingConfig) -> str:
    """A checkpoint folder (local or a storage URI), or the newest checkpoint of a run id."""
    if storage.basename(source) == STATE and storage.is_file(source):
        return storage.absolute(source[: -len(STATE)].rstrip("/") or ".")
    if storage.is_file(storage.join(source, STATE)):
        return storage.absolute(source)
    if RUN_ID.match(source):
        return _from_run(source, tracking)
    raise NotFound(f"no checkpoint at {source} (a checkpoint folder holds {STATE}), and it is not an MLflow run id")


def resume_config(gan: str, checkpoint: str, overrides: Iterable[str]) -> GanforgeConfig:
    """The checkpoint's config with ``overrides`` on top (e.g. more steps)."""
    tree = json.loads(storage.read_text(storage.join(checkpoint, CONFIG)))
    if tree.get("gan") != gan:
        raise ConfigError(f"{checkpoint} is a {tree.get('gan')} checkpoint, not {gan}")
    return build(apply_overrides(copy.deepcopy(tree), overrides))
