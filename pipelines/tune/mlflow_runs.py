"""The MLflow side of a search, owned by ganforge (Ray's MLflow callback makes flat runs and
breaks under PBT): one parent run per search and one nested child run per trial, found again
by its trial id so a trial that PBT restarts, or a resumed search, keeps writing to it."""

from __future__ import annotations

import dataclasses
from typing import Any

from mlflow import MlflowClient

from pipelines.config import GanforgeConfig, flatten, to_dict
from pipelines.config.schema import TrackingConfig
from pipelines.tracking.runs import end_run, experiment_id, git_commit, reopen_run, start_run
from pipelines.train.run_record import log_lineage, run_params

PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests runs by
TRIAL_TAG = "ganforge.trial_id"
SEARCH_TAG = "ganforge.search"
REASON_TAG = "ganforge.stop_reason"
RESTORED_TAG = "ganforge.restored_from"


def open_search_run(cfg: GanforgeConfig, name: str, space: dict[str, str], concurrency: int) -> str:
    commit = git_commit()
    params = {
        **{k: v for k, v in flatten(to_dict(cfg)).items() if k != "tracking.run_id"},
        **{f"space.{k}": v for k, v in space.items()},
        "search.concurrency": concurrency,
    }
    tags = {
        "gan": cfg.gan,
        "data": cfg.data.path,
        SEARCH_TAG: name,
        "ganforge.kind": "search",
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
    }
    return start_run(_named(cfg, f"search-{name}"), cfg.gan, params, tags)


def _named(cfg: GanforgeConfig, run_name: str) -> TrackingConfig:
    return dataclasses.replace(cfg.tracking, run_name=run_name)


def find_trial_run(cfg: GanforgeConfig, parent: str, trial_id: str) -> str | None:
    client = MlflowClient(cfg.tracking.uri)
    exp = experiment_id(client, cfg.tracking, cfg.gan)
    runs = client.search_runs(
        [exp], filter_string=f"tags.`{PARENT_TAG}` = '{parent}' and tags.`{TRIAL_TAG}` = '{trial_id}'"
    )
    return runs[0].info.run_id if runs else None


def trial_run(
    cfg: GanforgeConfig, parent: str, search: str, trial_id: str, point: dict[str, Any], restored_from: str | None
) -> str:
    """The trial's child run: reopened if the trial ran before (PBT exploit, resumed search),
    else created with the trial's config as params and its sampled point as tags."""
    found = find_trial_run(cfg, parent, trial_id)
    point_tags = {f"ganforge.point.{k}": str(v) for k, v in point.items()}
    if restored_from:  # after a PBT exploit: the other trial's checkpoint it continues from
        point_tags[RESTORED_TAG] = restored_from
    if found:  # params are immutable in MLflow: a perturbed point goes to tags (and lr/* metrics)
        reopen_run(cfg.tracking, found, point_tags)
        return found
    tags = {
        PARENT_TAG: parent,
        TRIAL_TAG: trial_id,
        SEARCH_TAG: search,
        "gan": cfg.gan,
        "data": cfg.data.path,
        "ganforge.kind": "trial",
        **point_tags,
    }
    run_id = start_run(_named(cfg, f"{search}-{trial_id}"), cfg.gan, run_params(cfg), tags)
    log_lineage(dataclasses.replace(cfg, tracking=dataclasses.replace(cfg.tracking, run_id=run_id)))
    return run_id


def end_trial_run(cfg: GanforgeConfig, parent: str, trial_id: str, status: str, reason: str, detail: str = "") -> None:
    run_id = find_trial_run(cfg, parent, trial_id)
    if run_id is None:  # the trial never got as far as creating it
        return
    MlflowClient(cfg.tracking.uri).set_tag(run_id, REASON_TAG, reason)
    end_run(cfg.tracking, run_id, status, detail)
