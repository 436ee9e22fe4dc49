"""Where runs are tracked. Default: a SQLite store ``mlflow.db`` in the working directory with
artifacts in ``mlartifacts/`` beside it; ``MLFLOW_TRACKING_URI`` or ``tracking.uri`` override.
Paths are made absolute here, in the driver, because Ray workers run in other directories."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

from pipelines.config.load import ConfigError
from pipelines.config.schema import TrackingConfig

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"


def quiet_mlflow_logs() -> None:
    # Schema migrations of a fresh SQLite store print a page of INFO lines.
    for name in ("alembic", "mlflow", "mlflow.store", "mlflow.tracking"):
        logging.getLogger(name).setLevel(logging.WARNING)


def is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def resolve(cfg: TrackingConfig, workdir: Path | None = None) -> TrackingConfig:
    """A copy of ``cfg`` with an absolute tracking URI and (for local stores) artifact root."""
    workdir = (workdir or Path.cwd()).resolve()
    uri = cfg.uri or os.environ.get("MLFLOW_TRACKING_URI", "") or f"sqlite:///{workdir / DB_NAME}"
    artifact_root = cfg.artifact_root
    if not artifact_root and is_local(uri):
        artifact_root = (workdir / ARTIFACT_DIR).as_uri()
    return dataclasses.replace(cfg, uri=uri, artifact_root=artifact_root)


def check_shared(uri: str, nodes: int) -> None:
    """On a cluster of several nodes rank 0 may run on any of them: a local store (SQLite
    file, folder) would keep the run on that node's disk, out of the driver's and the
    user's sight. Refused before the run is created."""
    if nodes > 1 and is_local(uri):
        raise ConfigError(
            f"this Ray cluster has {nodes} nodes, and the MLflow store {uri} is a local file: "
            "the run would be written on whichever node rank 0 lands on. Log to an MLflow server "
            "every node reaches (tracking.uri=http://HOST:5000 or MLFLOW_TRACKING_URI; "
            "`ganforge cluster up` starts one)"
        )


def ui_command(cfg: TrackingConfig, port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command over this store, bound to loopback."""
    # The running interpreter, so it works from an unactivated venv too.
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        cfg.uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if cfg.artifact_root:
        command += ["--default-artifact-root", cfg.artifact_root]
    return command
