"""Real Ray Tune searches whose trials are real Ray Train runs of a tiny LSGAN, tracked as
nested runs in a real MLflow store: ASHA stops poor and unstable trials, PBT exploits, and an
interrupted search resumes without repeating finished trials."""

from __future__ import annotations

import csv
import os
import signal
import time

import pytest
from mlflow import MlflowClient
from ray.tune import Callback

from cluster.capacity import of_connected
from pipelines.config import load
from pipelines.core import storage
from pipelines.errors import SearchInterrupted
from pipelines.tune.mlflow_runs import RESTORED_TAG
from pipelines.tune.search import concurrency, run_search
from pipelines.tune.summary import best_config

pytestmark = [pytest.mark.slow, pytest.mark.search]

TINY = [
    "model.ngf=8",
    "model.ndf=8",
    "model.latent_dim=16",
    "data.batch_size=16",
    "data.shuffle_buffer=100",
    "train.log_every=10",
    "train.sample_every=1000",
    "train.sample_count=16",
    "eval.samples=128",
    "train.workers=1",
    "tune.space=[optim.lr_g=loguniform:1e-6:10,optim.lr_d=loguniform:1e-6:1]",
]
DEFAULT = "optim.lr_g=2e-4,optim.lr_d=2e-4"
WRECKED_G = "optim.lr_g=5.0,optim.lr_d=1e-6"  # G's huge rate wrecks its samples; D is too slow to win


def _search_cfg(shards, tmp_path, *extra, bucket=None):
    """A search's config; with ``bucket`` (s3://...) its Ray storage and MLflow artifacts are there."""
    root = bucket or tmp_path.as_uri()
    return load(
        "lsgan",
        overrides=[
            *TINY,
            f"data.path={shards}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_root={root}/art",
            f"train.storage_path={bucket + '/ray' if bucket else tmp_path / 'ray'}",
            *extra,
        ],
    )


def _nothing_local(tmp_path):
    """Only the MLflow database is on local disk: storage and artifacts went to the bucket."""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def _children(client, parent):
    exp = client.get_run(parent).info.experiment_id
    return {
        r.data.tags["ganforge.trial_id"]: r
        for r in client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    }


def _in_order(client, run_id, key):
    return sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)


def _history(client, run_id, key):
    return [m.value for m in _in_order(client, run_id, key)]


def cpus_come_back(ray, cpus: float, within: float = 30.0) -> bool:
    """Whether the trials' workers gave their CPUs back. Ray Train removes a finished or
    stopped run's placement group asynchronously, so the last one may still be going when
    the search returns (measured: about 0.5 s); a group that is never removed (the stopped
    trials of ray-project/ray#54305) keeps its CPU for good and fails this."""
    deadline = time.monotonic() + within
    while ray.available_resources().get("CPU") != cpus:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def test_asha_search_stops_poor_and_unstable_trials_and_records_the_best(digit_shards, ray_local, tmp_path):
    import ray

    # Four 1-worker trials, two at a time on 2 CPUs, in this order: (1) the default balance;
    # (2) a planted unstable config, a D rate so large its outputs overflow at once: it ends
    # early as diverged; (3) the wrecked G reaches ASHA's rung after (1) has and is stopped
    # there; (4) a reasonable config. (3) and (4) can start only if the trials before them
    # gave their workers' CPUs back.
    cfg = _search_cfg(
        digit_shards,
        tmp_path,
        "train.steps=40",
        "eval.every=20",
        "tune.samples=4",
        "tune.scheduler=asha",
        "tune.grace_evals=1",
        "tune.reduction_factor=2",
        "train.max_nonfinite_steps=3",
    )
    cfg.tune.points = [DEFAULT, "optim.lr_g=2e-4,optim.lr_d=1e30", WRECKED_G, "optim.lr_g=2e-4,optim.lr_d=1e-4"]
    outcome = run_search(cfg, name="asha", progress=False)

    reasons = {(t.point["optim.lr_g"], t.point["optim.lr_d"]): t.reason for t in outcome.trials}
    assert reasons[(2e-4, 2e-4)] == "completed" and reasons[(2e-4, 1e30)] == "diverged"
    assert reasons[(5.0, 1e-6)] == "early_stopped" and reasons[(2e-4, 1e-4)] in ("completed", "early_stopped")
    assert outcome.best.reason == "completed" and outcome.best.point["optim.lr_g"] == 2e-4
    assert cpus_come_back(ray, 2)  # nothing left holding the workers' CPUs
    assert concurrency(cfg, of_connected("the session's Ray")) == 2

    client = MlflowClient(outcome.tracking.uri)
    parent = client.get_run(outcome.parent_run_id)
    children = _children(client, outcome.parent_run_id)
    assert len(children) == 4
    best_run = children[outcome.best.trial_id]
    assert (
        parent.data.params["best.optim.lr_g"] == "0.0002" and parent.data.params["best.run_id"] == best_run.info.run_id
    )
    assert parent.data.metrics["best/objective"] == pytest.approx(best_run.data.metrics["eval/swd"])
    assert parent.data.metrics["trials/diverged"] == 1 and parent.data.metrics["trials/early_stopped"] >= 1
    for child in children.values():  # each trial: its own params, curves and end
        reason = child.data.tags["ganforge.stop_reason"]
        assert child.data.params["optim.lr_d"] == child.data.tags["ganforge.point.optim.lr_d"]
        assert reason == "diverged" or "loss/D" in child.data.metrics
        assert child.info.status == {"completed": "FINISHED", "early_stopped": "KILLED"}.get(reason, "FAILED")
    unstable = [c for c in children.values() if c.data.tags["ganforge.stop_reason"] == "diverged"]
    assert len(unstable) == 1 and "non-finite" in unstable[0].data.tags["ganforge.end_reason"]

    files = {a.path for a in client.list_artifacts(outcome.parent_run_id)}
    assert {"trials.csv", "lr_heatmap.png", "best_config.yaml"} <= files
    rows = list(csv.DictReader(open(client.download_artifacts(outcome.parent_run_id, "trials.csv", str(tmp_path)))))
    assert sorted(r["stop_reason"] for r in rows) == sorted(t.reason for t in outcome.trials)
    version = client.get_model_version_by_alias("lsgan-generator", "best")
    assert version.run_id == best_run.info.run_id
    # The best trial's best-scored evaluation, named in its run with the step it was taken at.
    best_model = client.get_run(best_run.info.run_id).data.tags
    assert (
        version.source == best_model["ganforge.model"]
        and version.tags["ganforge.step"] == best_model["ganforge.model_step"]
    )
    tree = best_config(outcome.parent_run_id, outcome.tracking.uri)
    assert tree["optim"]["lr_g"] == 2e-4 and tree["stability"]["check"] is False and tree["tracking"]["run_id"] == ""


def test_pbt_exploits_the_better_trial_and_applies_the_perturbed_rates(
    digit_shards, ray_local, tmp_path, s3_bucket_uri
):
    # Two trials side by side; at step 20 (a synchronous round: both trials have got there) the
    # worse half, the wrecked G, copies the better trial's checkpoint (on S3) and continues it
    # under perturbed learning rates to step 30.
    cfg = _search_cfg(
        digit_shards,
        tmp_path,
        "train.steps=30",
        "eval.every=10",
        "tune.samples=2",
        "tune.scheduler=pbt",
        "tune.perturbation_evals=2",
        "tune.pbt_quantile=0.5",
        "tune.pbt_synch=true",
        "train.keep_checkpoints=3",  # all: tiny trials run through several while one restarts
        bucket=s3_bucket_uri,
    )
    cfg.tune.points = [DEFAULT, WRECKED_G]
    outcome = run_search(cfg, name="pbt", progress=False)

    client = MlflowClient(outcome.tracking.uri)
    children = _children(client, outcome.parent_run_id)
    rates = {trial: _history(client, run.info.run_id, "lr/G") for trial, run in children.items()}
    wrecked = next(trial for trial, history in rates.items() if history[0] == 5.0)
    donor = next(trial for trial in children if trial != wrecked)
    # It continued from the other trial's Train checkpoint (the run folder is named by trial id)...
    assert children[wrecked].data.tags[RESTORED_TAG].startswith(f"{s3_bucket_uri}/ray/pbt-train/{donor}-")
    # ...under its perturbed point (its run's tags show the point it ended with), whose rates
    # the worker applied after loading the donor's optimizer state with the donor's rates.
    perturbed = float(children[wrecked].data.tags["ganforge.point.optim.lr_g"])
    assert perturbed != 5.0 and rates[wrecked][-1] == pytest.approx(perturbed)
    assert {t.reason for t in outcome.trials} == {"completed"} and all(t.step == 30 for t in outcome.trials)
    _nothing_local(tmp_path)


class CtrlCOnceSecondTrialCheckpointed(Callback):
    """Ctrl+C (SIGINT to this process) as soon as Tune has taken a checkpoint of a trial that
    runs after another has finished. Tune saves its state, that checkpoint in it, and stops.
    A callback, not a watch on Tune's files: a trial writes its checkpoint before Tune takes it."""

    def __init__(self):
        self.finished: set[str] = set()
        self.sent = False  # a second Ctrl+C would stop Tune at once, without saving

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.finished.add(trial.trial_id)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        if self.finished and trial.trial_id not in self.finished and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupted_search_resumes_without_repeating_finished_trials(
    digit_shards, ray_local, tmp_path, s3_bucket_uri
):
    # Trial 2 has 80 steps left when Ctrl+C comes: it is stopped mid-run, never finished.
    # Tune's state, the search's and the trials' checkpoints are all on S3.
    cfg = _search_cfg(
        digit_shards,
        tmp_path,
        "train.steps=100",
        "eval.every=20",
        "tune.samples=2",
        "tune.scheduler=none",
        "tune.max_concurrent=1",
        bucket=s3_bucket_uri,
    )
    cfg.tune.points = [DEFAULT, "optim.lr_g=1e-4,optim.lr_d=2e-4"]
    with pytest.raises(SearchInterrupted, match="--resume resume"):
        run_search(cfg, name="resume", progress=False, callbacks=[CtrlCOnceSecondTrialCheckpointed()])

    outcome = run_search(cfg, name="resume", resume=True, progress=False)
    client = MlflowClient(outcome.tracking.uri)
    assert [t.reason for t in outcome.trials] == ["completed", "completed"]
    children = _children(client, outcome.parent_run_id)
    assert len(children) == 2  # the resumed trial kept its run
    first, second = sorted(children.values(), key=lambda r: r.info.start_time)

    def train_runs(run):  # the Train run folders of a trial, one per start
        trial = run.data.tags["ganforge.trial_id"]
        return [f for f in storage.children(f"{s3_bucket_uri}/ray/resume-train") if f.startswith(f"{trial}-")]

    assert len(train_runs(first)) == 1  # the finished trial was not run again
    assert (
        len(train_runs(second)) == 2 and f"/{second.data.tags['ganforge.trial_id']}-" in second.data.tags[RESTORED_TAG]
    )
    steps = [m.step for m in _in_order(client, second.info.run_id, "eval/swd")]
    assert steps.count(20) == 1 and steps[-1] == 100  # continued from its checkpoint, not restarted
    assert "ganforge.resumed" in client.get_run(outcome.parent_run_id).data.tags
    _nothing_local(tmp_path)
