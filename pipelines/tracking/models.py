"""A run's generators as MLflow 3 LoggedModels: one per evaluation (and one at the end), each
with its step, its eval metrics and the score ganforge ranks them by; the run's best one is
then named in the run's tags and can be registered under a model name.

Registration gives the new version the alias ``best`` when it beats the version that holds
``best`` on the same eval metric and the same reference images (scores on another metric or
reference set do not compare). The newest version needs no alias: MLflow reserves ``latest``
and resolves ``models:/NAME/latest`` to it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

MODEL_NAME = "generator"
MODEL_TYPE = "ganforge-generator"
STEP_TAG = "ganforge.step"
SCORE_TAG = "ganforge.score"  # the eval metric the run ranks its checkpoints by (lower is better)
METRIC_TAG = "ganforge.metric"  # that metric's name
REFERENCE_TAG = "ganforge.reference"  # the images it was measured against
RUN_MODEL_TAG = "ganforge.model"  # on the run: models:/<id> of its best model
RUN_MODEL_STEP_TAG = "ganforge.model_step"
BEST = "best"


def log_logged_model(
    client: MlflowClient, run_id: str, folder: str | Path, step: int, metrics: dict[str, float], tags: dict[str, str]
) -> str:
    """Log the MLflow model saved in ``folder`` as a LoggedModel of ``run_id`` at ``step``, with
    ``metrics`` logged to the run linked to it; returns the model id."""
    experiment = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(
        experiment, MODEL_NAME, source_run_id=run_id, tags={STEP_TAG: str(step), **tags}, model_type=MODEL_TYPE
    )
    stamp = Model.load(str(folder))  # the MLmodel file names the LoggedModel it belongs to
    stamp.model_id, stamp.run_id, stamp.artifact_path = model.model_id, run_id, model.artifact_location
    stamp.save(str(Path(folder, "MLmodel")))
    client.log_model_artifacts(model.model_id, str(folder))
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
    now = int(time.time() * 1000)
    if metrics:
        client.log_batch(
            run_id, metrics=[Metric(k, float(v), now, step, model_id=model.model_id) for k, v in metrics.items()]
        )
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model.model_id


def _score(model: Any) -> float:
    value = model.tags.get(SCORE_TAG)
    return float(value) if value is not None else math.inf


def run_models(client: MlflowClient, run_id: str) -> list[Any]:
    """The run's finished LoggedModels, by step."""
    experiment = client.get_run(run_id).info.experiment_id
    found, token = [], None
    while True:
        page = client.search_logged_models(
            [experiment], filter_string=f"source_run_id = '{run_id}'", page_token=token, max_results=100
        )
        found += [m for m in page if m.status == LoggedModelStatus.READY]
        token = page.token
        if not token:
            return sorted(found, key=lambda m: int(m.tags.get(STEP_TAG, 0)))


def mark_best(client: MlflowClient, run_id: str) -> Any | None:
    """Name the run's best model in its tags: the lowest score, the latest step among equals
    (a run without evaluations: its last model). Returns it, or None if the run has none."""
    models = run_models(client, run_id)
    if not models:
        return None
    best = min(reversed(models), key=_score)
    client.set_tag(run_id, RUN_MODEL_TAG, f"models:/{best.model_id}")
    client.set_tag(run_id, RUN_MODEL_STEP_TAG, best.tags.get(STEP_TAG, ""))
    return best


@dataclass
class Registered:
    name: str
    version: str
    best: bool  # whether it took the alias ``best``
    note: str  # why it did not, where it did not


def register(client: MlflowClient, name: str, run_id: str, description: str = "") -> Registered:
    """Register the run's best model (``mark_best``) as a new version of ``name``."""
    model_uri = client.get_run(run_id).data.tags.get(RUN_MODEL_TAG)
    if not model_uri:
        raise MlflowException(f"run {run_id} has no logged generator to register (did it finish?)")
    model = client.get_logged_model(model_uri.removeprefix("models:/"))
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description or "generators trained by ganforge")
    keys = (STEP_TAG, SCORE_TAG, METRIC_TAG, REFERENCE_TAG)
    tags = {k: model.tags[k] for k in keys if k in model.tags}
    # MLflow's SQL registry looks a models:/<id> source up through the process's global
    # tracking URI, not the client's: set to the client's store meanwhile, then restored.
    with _use_tracking_uri(client.tracking_uri):
        version = client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model.model_id)
    takes, note = _beats_holder(client, name, tags)
    if takes:
        client.set_registered_model_alias(name, BEST, version.version)
    return Registered(name, str(version.version), takes, note)


def _beats_holder(client: MlflowClient, name: str, tags: dict[str, str]) -> tuple[bool, str]:
    try:
        holder = client.get_model_version_by_alias(name, BEST)
    except MlflowException:
        return True, ""
    same = all(holder.tags.get(k) == tags.get(k) for k in (METRIC_TAG, REFERENCE_TAG))
    if not same:
        return False, (
            f"version {holder.version} keeps @{BEST}: it was scored on {holder.tags.get(METRIC_TAG)} against "
            f"{holder.tags.get(REFERENCE_TAG)}, this one on {tags.get(METRIC_TAG)} against {tags.get(REFERENCE_TAG)}"
        )
    new, old = float(tags.get(SCORE_TAG, math.inf)), float(holder.tags.get(SCORE_TAG, math.inf))
    if new < old:
        return True, ""
    return False, f"version {holder.version} keeps @{BEST}: {tags.get(METRIC_TAG)} {old:.4g} <= {new:.4g}"
