"""Where `ganforge cluster up` records what it started, so later commands (submit, jobs, ui,
down) find the cluster and `down` stops only that. One JSON file under $GANFORGE_HOME
(default ~/.ganforge)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path


@dataclasses.dataclass
class ClusterState:
    root: str  # the cluster's folder: MLflow store, logs
    ray_address: str  # GCS address, for `ray.init` / `ray start --address`
    dashboard_url: str  # the Jobs API
    mlflow_uri: str  # the tracking server
    ray_pid: int  # `ray start --block`, leader of the head's process group
    mlflow_pid: int  # `mlflow server`, leader of its process group


def home() -> Path:
    return Path(os.environ.get("GANFORGE_HOME") or Path.home() / ".ganforge")


def state_file() -> Path:
    return home() / "cluster.json"


def load() -> ClusterState | None:
    path = state_file()
    if not path.is_file():
        return None
    return ClusterState(**json.loads(path.read_text()))


def save(state: ClusterState) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state), indent=2) + "\n")
    tmp.replace(path)  # never a half-written state file


def clear() -> None:
    state_file().unlink(missing_ok=True)
