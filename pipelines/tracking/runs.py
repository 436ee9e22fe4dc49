"""MLflow runs: the driver creates a run and logs the config as params; rank 0 of the
training job logs metrics, sample grids and artifacts to that run by id. The driver owns
the run's lifetime, so restarted workers keep writing to the same run."""

from __future__ import annotations

import collections
import getpass
import os
import subprocess
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from PIL import Image

from pipelines.config.schema import TrackingConfig
from pipelines.errors import NotFound
from pipelines.tracking.store import quiet_mlflow_logs

PARAM_BATCH = 100  # MLflow's limit of params per log_batch call


def git_commit(path: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
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
    all_tags = {"mlflow.user": getpass.getuser(), "mlflow.source.name": "ganforge", "mlflow.source.type": "JOB", **tags}
    run = client.create_run(exp, run_name=cfg.run_name or None, tags=all_tags)
    items = [Param(k, str(v)) for k, v in sorted(params.items())]
    for i in range(0, len(items), PARAM_BATCH):
        client.log_batch(run.info.run_id, params=items[i : i + PARAM_BATCH])
    return run.info.run_id


def reopen_run(cfg: TrackingConfig, run_id: str, tags: dict[str, str]) -> None:
    """Mark a finished or failed run RUNNING again: a resume keeps writing to it."""
    client = MlflowClient(cfg.uri)
    client.update_run(run_id, status="RUNNING")
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def end_run(cfg: TrackingConfig, run_id: str, status: str, reason: str = "") -> None:
    """Mark the run ended; if the store is unreachable by now, warn instead of failing the
    job (its checkpoints are in Ray Train's storage either way)."""
    client = MlflowClient(cfg.uri)
    try:
        if reason:
            client.set_tag(run_id, "ganforge.end_reason", reason[:4000])
        client.set_terminated(run_id, status=status)
    except Exception as exc:
        warnings.warn(f"could not mark MLflow run {run_id} {status} ({type(exc).__name__}: {exc})", stacklevel=2)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """A tracking server must answer before any worker starts (MLflow's own client would
    retry for minutes); local stores need no check."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            response.read()
    except OSError as exc:
        raise ConnectionError(
            f"MLflow tracking server {uri} is not reachable ({exc}); start it, "
            f"or leave tracking.uri empty for the local store"
        ) from exc


def check_store(uri: str) -> None:
    """Before a run or model is looked up in ``uri``: a server must answer, and a SQLite store
    must exist (MLflow would create an empty one, and then find nothing in it)."""
    check_reachable(uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise NotFound(
            f"no MLflow store at {uri} (no such file): pass --tracking-uri, or run the command "
            "in the folder the run was made in"
        )


def fail_fast_client(uri: str) -> MlflowClient:
    """A client for rank 0's logging, whose caller retries: MLflow's own client would retry
    each call for minutes and hold every later one behind it."""
    quiet_mlflow_logs()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    return MlflowClient(uri)


class RunLogger:
    """Rank 0's writer to an existing run. Metrics and images go through a background thread
    so the training step never waits on the store; when the store is unreachable they stay
    queued (oldest first) and are retried, with a warning, instead of failing the run.
    ``flush`` waits for the queue, up to a timeout. ``client``: an MLflow client of the
    store, or a ``RelayClient`` where the store is reached through the driver's node."""

    RETRY_SECONDS = 5.0
    MAX_QUEUED = 100_000  # log calls kept while the store is away; the oldest go first beyond

    def __init__(self, uri: str, run_id: str, client: Any = None):
        self.client, self.run_id = client or fail_fast_client(uri), run_id
        self._queue: collections.deque[Callable[[], object]] = collections.deque(maxlen=self.MAX_QUEUED)
        self._wake = threading.Condition()
        self._outage = False
        self._thread = threading.Thread(target=self._drain, name="ganforge-mlflow", daemon=True)
        self._thread.start()

    def _submit(self, call: Callable[[], object]) -> None:
        with self._wake:
            self._queue.append(call)
            self._wake.notify()

    def _drain(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                call = self._queue[0]
            try:
                call()
            except Exception as exc:  # the store is away: keep the call, try again later
                if not self._outage:
                    warnings.warn(
                        f"MLflow is unreachable ({type(exc).__name__}); training goes on and "
                        f"tracking calls are queued for retry",
                        stacklevel=1,
                    )
                self._outage = True
                time.sleep(self.RETRY_SECONDS)
                continue
            if self._outage:
                warnings.warn("MLflow is reachable again; queued tracking calls are being sent", stacklevel=1)
                self._outage = False
            with self._wake:
                self._queue.popleft()
                self._wake.notify_all()

    @property
    def outage(self) -> bool:
        return self._outage

    def metrics(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        self._submit(lambda: self.client.log_batch(self.run_id, metrics=metrics))

    def image(self, step: int, image: Image.Image, key: str = "samples") -> None:
        self._submit(lambda: self.client.log_image(self.run_id, image, key=key, step=step))

    def artifacts(self, folder: str | Path, artifact_path: str) -> None:
        """Synchronous (the folder may be temporary); a failure is a warning, not a crash."""
        try:
            self.client.log_artifacts(self.run_id, str(folder), artifact_path)
        except Exception as exc:
            warnings.warn(
                f"could not upload {artifact_path} to MLflow ({exc}); Ray Train's checkpoints keep it", stacklevel=2
            )

    def model(self, step: int, folder: str | Path, metrics: dict[str, float], tags: dict[str, str]) -> str | None:
        """Log the MLflow model in ``folder`` as a LoggedModel at ``step``, with ``metrics`` linked
        to it; returns its id. Synchronous (the folder may be temporary); on failure a warning
        and None, and the caller logs the metrics on their own."""
        from pipelines.tracking.models import log_logged_model

        try:
            if isinstance(self.client, MlflowClient):
                return log_logged_model(self.client, self.run_id, folder, step, metrics, tags)
            return self.client.log_logged_model(self.run_id, str(folder), step, metrics, tags)
        except Exception as exc:
            warnings.warn(f"could not log the generator at step {step} to MLflow ({exc})", stacklevel=2)
            return None

    def tags(self, tags: dict[str, str]) -> None:
        items = [RunTag(k, v) for k, v in tags.items()]
        self._submit(lambda: self.client.log_batch(self.run_id, tags=items))

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every queued call is sent; False if the store stayed away too long."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._queue and time.monotonic() < deadline:
                self._wake.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            left = len(self._queue)
        if left:
            warnings.warn(f"{left} MLflow calls could not be sent before the timeout", stacklevel=2)
        return not left
