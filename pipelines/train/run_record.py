"""A training run's MLflow record, kept by the driver: the run is created (or, for a
resume, reopened) before any worker starts, and ended as FINISHED, FAILED or KILLED."""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

from mlflow import MlflowClient

import gan_core
from pipelines.config import GanforgeConfig, flatten, to_dict
from pipelines.core import storage
from pipelines.data.batches import resolve_domains
from pipelines.data.manifest import read_dataset
from pipelines.errors import TrainingFailed, user_error_of
from pipelines.tracking.datasets import log_inputs, run_inputs
from pipelines.tracking.models import Registered, mark_best, register
from pipelines.tracking.runs import end_run, git_commit, reopen_run, start_run
from pipelines.train.resume import RAY_RUN_TAG, STORAGE_TAG, newest_checkpoint, ray_books, ray_run_name


def run_params(cfg: GanforgeConfig) -> dict[str, Any]:
    """A training run's MLflow params: its whole config but its own id and the search settings."""
    return {k: v for k, v in flatten(to_dict(cfg)).items() if k != "tracking.run_id" and not k.startswith("tune.")}


def open_run(cfg: GanforgeConfig, resume_from: str | None) -> GanforgeConfig:
    """A new MLflow run, or for a resume the run being continued, reopened; the returned
    config names it (``tracking.run_id``), so workers and checkpoints know it too."""
    storage = {STORAGE_TAG: cfg.train.storage_path}  # where `--resume RUN_ID` finds checkpoints
    if cfg.tracking.run_id:
        reopen_run(cfg.tracking, cfg.tracking.run_id, {**storage, "ganforge.resumed_from": str(resume_from)})
        log_lineage(cfg)  # the same shards are one input; other shards are another
        return cfg
    commit = git_commit()
    tags = {
        "gan": cfg.gan,
        "data": cfg.data.path,
        "workers": str(cfg.train.workers),
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        **storage,
    }
    run_id = start_run(cfg.tracking, cfg.gan, run_params(cfg), tags)
    cfg = dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, run_id=run_id))
    log_lineage(cfg)
    return cfg


def ray_run(cfg: GanforgeConfig, resume_from: str | None) -> str:
    """The Ray Train run to train in, named in the MLflow run's tags for a later ``--resume
    RUN_ID``. A run resumed from its newest checkpoint keeps its books, so Ray Train restores
    that checkpoint itself (and again after any failure of the resumed run); one resumed from
    an older checkpoint starts new books under a new name."""
    client, run_id = MlflowClient(cfg.tracking.uri), cfg.tracking.run_id
    name = ray_run_name(run_id)
    if resume_from:  # only a resumed run can have books of another name, or checkpoints
        name = ray_books(client.get_run(run_id).data.tags, run_id)
        if newest_checkpoint(storage.join(cfg.train.storage_path, name)) not in (None, resume_from):
            name = f"{ray_run_name(run_id)}-from-{time.strftime('%m%d-%H%M%S')}"
    client.set_tag(run_id, RAY_RUN_TAG, name)
    return name


def log_lineage(cfg: GanforgeConfig) -> None:
    """The run's dataset inputs: its shards, and the reference split it is evaluated on."""
    dataset = read_dataset(cfg.data.path)
    domains = resolve_domains(dataset, cfg.gan, gan_core.get(cfg.gan).domains, cfg.data.domain)
    log_inputs(cfg.tracking.uri, cfg.tracking.run_id, run_inputs(dataset, domains, evaluated=cfg.eval.every > 0))


def name_best_model(uri: str, run_id: str) -> Any | None:
    """Name the run's best LoggedModel in its tags (``ganforge.model``); a warning, not a
    failure, where the store does not answer: the models are logged either way."""
    try:
        return mark_best(MlflowClient(uri), run_id)
    except Exception as exc:
        warnings.warn(f"could not name the best model of run {run_id} ({type(exc).__name__}: {exc})", stacklevel=2)
        return None


def register_best(cfg: GanforgeConfig, run_id: str, name: str) -> Registered:
    """Register the run's best model under ``name``, moving the alias best if it scores better."""
    return register(
        MlflowClient(cfg.tracking.uri), name, run_id, description=f"{cfg.gan} generators trained by ganforge"
    )


def close_failed(cfg: GanforgeConfig, exc: BaseException) -> BaseException:
    """End the MLflow run as FAILED (or KILLED) and return the error the caller should see."""
    run_id = cfg.tracking.run_id
    user_error = user_error_of(exc)
    end_run(cfg.tracking, run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", str(user_error or exc))
    if user_error is not None:
        return user_error
    if isinstance(exc, Exception) and type(exc).__module__.startswith("ray"):
        return TrainingFailed(f"training run {run_id} failed: {exc}")
    return exc
