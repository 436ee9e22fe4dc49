"""MLflow runs: the driver creates a run and logs the config as params; rank 0 of the
training job logs metrics, sample grids and artifacts to that run by id. The driver owns
the run's lifetime, so restarted workers keep writing to the same run."""

from __future__ import annotations

import getpass
import subprocess
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from PIL import Image

from pipelines.config.schema import TrackingConfig
from pipelines.tracking.store import quiet_mlflow_logs

PARAM_BATCH = 100  # MLflow's limit of params per log_batch call


def git_commit(path: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def experiment_id(client: MlflowClient, cfg: TrackingConfig, gan: str) -> str:
    name = cfg.experiment or f"ganforge-{gan}"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = f"{cfg.artifact_root.rstrip('/')}/{name}" if cfg.artifact_root else None
    return client.create_experiment(name, artifact_location=location)


def start_run(cfg: TrackingConfig, gan: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    """Create a RUNNING run with params and tags; returns its id."""
    quiet_mlflow_logs()
    client = MlflowClient(cfg.uri)
    exp = experiment_id(client, cfg, gan)
    all_tags = {"mlflow.user": getpass.getuser(), "mlflow.source.name": "ganforge", **tags}
    run = client.create_run(exp, run_name=cfg.run_name or None, tags=all_tags)
    items = [Param(k, str(v)) for k, v in sorted(params.items())]
    for i in range(0, len(items), PARAM_BATCH):
        client.log_batch(run.info.run_id, params=items[i:i + PARAM_BATCH])
    return run.info.run_id


def reopen_run(cfg: TrackingConfig, run_id: str, tags: dict[str, str]) -> None:
    """Mark a finished or failed run RUNNING again: a resume keeps writing to it."""
    client = MlflowClient(cfg.uri)
    client.update_run(run_id, status="RUNNING")
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def end_run(cfg: TrackingConfig, run_id: str, status: str, reason: str = "") -> None:
    client = MlflowClient(cfg.uri)
    if reason:
        client.set_tag(run_id, "ganforge.end_reason", reason[:4000])
    client.set_terminated(run_id, status=status)


class RunLogger:
    """Rank 0's writer to an existing run. Metrics and images go asynchronously so the
    training step does not wait on the store; ``flush`` waits for all of them."""

    def __init__(self, uri: str, run_id: str):
        quiet_mlflow_logs()
        self.client, self.run_id = MlflowClient(uri), run_id
        self._pending: list[Any] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        self._pending.append(self.client.log_batch(self.run_id, metrics=metrics, synchronous=False))

    def image(self, step: int, image: Image.Image, key: str = "samples") -> None:
        self.client.log_image(self.run_id, image, key=key, step=step)

    def artifacts(self, folder: str | Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def flush(self) -> None:
        for op in self._pending:
            if op is not None:
                op.wait()
        self._pending.clear()
