"""One Tune trial: a full Ray Train run of the sampled config (the Ray Train V2 pattern: a
Tune function that builds and fits a ``TorchTrainer``).

Rank 0's reports reach Tune through this process: a Train callback (in the Train controller)
forwards each report to a queue, and the trial function re-reports it with ``tune.report``,
adding a small Tune checkpoint that points at the Train checkpoint. That pointer is what
lets PBT exploit (Ray's own ``TuneReportCallback`` registers no Tune checkpoint): a trial
restarted from another trial's pointer resumes that trial's weights under its own new
config, whose learning rates the worker re-applies after loading."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from ray import tune
from ray.train import UserCallback
from ray.util.queue import Queue

from pipelines.config import build
from pipelines.config.space import apply_point
from pipelines.core import storage
from pipelines.core.checkpoint import STATE
from pipelines.errors import Diverged, user_error_of
from pipelines.train.resume import checkpoint_location
from pipelines.train.run_spec import RunSpec
from pipelines.train.torch_trainer import torch_trainer
from pipelines.tune.mlflow_runs import trial_run

POINTER = "train_checkpoint.json"


class ForwardReports(UserCallback):
    """Runs in the Train controller: hands each report of rank 0 to the trial function, with
    its checkpoint's location as a URI (Ray gives a path within the storage's filesystem)."""

    def __init__(self, queue: Queue, run_folder: str):
        self.queue, self.run_folder = queue, run_folder

    def after_report(self, run_context, metrics, checkpoint) -> None:
        where = checkpoint_location(self.run_folder, checkpoint.path) if checkpoint else None
        self.queue.put((metrics[0], where))


def tune_result(metrics: dict[str, Any], metric: str) -> dict[str, Any]:
    """What Tune sees: flat names without '/', and the objective under one name."""
    result = {k.replace("/", "_"): v for k, v in metrics.items() if isinstance(v, (int, float))}
    if metric in metrics:
        result["objective"] = metrics[metric]
    return result


def _report(result: dict[str, Any], train_checkpoint: str | None) -> None:
    if train_checkpoint is None:
        tune.report(result)
        return
    with tempfile.TemporaryDirectory(prefix="ganforge-tune-") as folder:
        # The result goes with the pointer: a trial restarted from it at the end of its budget
        # (PBT may exploit at the last evaluation) trains no further and reports this result.
        Path(folder, POINTER).write_text(json.dumps({"path": train_checkpoint, "result": result}))
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))


def donor_checkpoint() -> tuple[str | None, dict[str, Any]]:
    """The Train checkpoint this trial restarts from (its own after a failure or a resume,
    another trial's after a PBT exploit) and the result reported with it; None on a first start."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, {}
    with checkpoint.as_directory() as folder:
        pointer = json.loads(Path(folder, POINTER).read_text())
    path = pointer["path"]
    if not storage.is_file(storage.join(path, STATE)):
        raise FileNotFoundError(
            f"Train checkpoint {path} named by Tune's checkpoint is gone; keep more "
            "(train.keep_checkpoints) or put train.storage_path on storage every node sees"
        )
    return path, pointer.get("result", {})


def run_trial(point: dict[str, Any], search: dict[str, Any]) -> None:
    """Tune's trainable. ``search``: the base config tree, the parent run id, the search name,
    the objective's metric name and the Train storage folder."""
    trial_id = tune.get_context().get_trial_id()
    cfg = build(apply_point(search["tree"], point))
    resume_from, last = donor_checkpoint()
    run_id = trial_run(cfg, search["parent"], search["name"], trial_id, point, resume_from)
    cfg = dataclasses.replace(
        cfg,
        tracking=dataclasses.replace(cfg.tracking, run_id=run_id),
        train=dataclasses.replace(cfg.train, storage_path=search["storage"]),
    )
    queue: Queue = Queue(actor_options={"num_cpus": 0})
    # A fresh Train run name per start: a restarted trial resumes from the checkpoint Tune gives
    # it (which, after an exploit, is another trial's), never from this name's own storage.
    name = f"{trial_id}-{uuid.uuid4().hex[:6]}"
    trainer = torch_trainer(
        RunSpec(cfg, resume_from, rank_checkpoints=cfg.tune.scheduler != "pbt"),
        name,
        callbacks=[ForwardReports(queue, storage.join(search["storage"], name))],
    )
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:
            failure.append(exc)
        finally:
            queue.put(None)

    threading.Thread(target=fit, name="ganforge-trial-fit", daemon=True).start()
    while (item := queue.get()) is not None:
        metrics, checkpoint = item
        last = tune_result(metrics, search["metric"])
        _report(last, checkpoint)
    if failure:
        _finish_failed(failure[0], last)
    else:
        tune.report({**last, "stop_reason": "completed"})


def _finish_failed(exc: BaseException, last: dict[str, Any]) -> None:
    """An unstable trial ends normally with its reason (the search goes on); anything else
    is an error of the trial."""
    cause = user_error_of(exc)
    if not isinstance(cause, Diverged):
        raise exc
    tune.report(
        {
            **last,
            "objective": last.get("objective", float("inf")),
            "stop_reason": cause.reason,
            "stop_detail": str(cause),
        }
    )
