"""``ganforge train --resume RUN_ID_OR_CHECKPOINT``: find the checkpoint to continue from and
the config it was trained with. A run id finds its newest checkpoint in Ray Train's storage
(where every periodic checkpoint is kept), else the final checkpoint logged to MLflow."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pipelines.config import ConfigError, GanforgeConfig, build
from pipelines.config.load import apply_overrides
from pipelines.config.schema import TrackingConfig
from pipelines.core.checkpoint import CONFIG, STATE
from pipelines.errors import NotFound
from pipelines.inference.model import RUN_ID

STORAGE_TAG = "ganforge.ray_storage"


def _newest(folders: Iterable[Path]) -> Path | None:
    states = [f for folder in folders for f in folder.glob(f"checkpoint_*/{STATE}")]
    return max(states, key=lambda f: f.stat().st_mtime).parent if states else None


def _from_run(run_id: str, tracking: TrackingConfig) -> Path:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipelines.tracking.runs import check_store

    check_store(tracking.uri)
    client = MlflowClient(tracking.uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise NotFound(f"no MLflow run {run_id} in the tracking store {tracking.uri}") from exc
    storage = run.data.tags.get(STORAGE_TAG)
    newest = _newest(Path(storage).glob(f"ganforge-{run_id}*")) if storage else None
    if newest is not None:
        return newest
    if any(a.path == "checkpoint" for a in client.list_artifacts(run_id)):
        return Path(client.download_artifacts(run_id, "checkpoint", tempfile.mkdtemp(prefix="ganforge-resume-")))
    raise NotFound(
        f"MLflow run {run_id} in {tracking.uri} has no checkpoint to resume from (none in the storage "
        f"path {storage} or in its artifacts)"
    )


def find_checkpoint(source: str, tracking: TrackingConfig) -> Path:
    path = Path(source).expanduser()
    if path.is_file() and path.name == STATE:
        return path.parent
    if (path / STATE).is_file():
        return path
    if RUN_ID.match(source):
        return _from_run(source, tracking)
    raise NotFound(f"no checkpoint at {source} (a checkpoint folder holds {STATE}), and it is not an MLflow run id")


def resume_config(gan: str, checkpoint: Path, overrides: Iterable[str]) -> GanforgeConfig:
    """The checkpoint's config with ``overrides`` on top (e.g. more steps)."""
    tree = json.loads((checkpoint / CONFIG).read_text())
    if tree.get("gan") != gan:
        raise ConfigError(f"{checkpoint} is a {tree.get('gan')} checkpoint, not {gan}")
    return build(apply_overrides(copy.deepcopy(tree), overrides))
