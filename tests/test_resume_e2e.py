"""Worker failure and resume, end to end on a real 2-worker Ray Train job whose checkpoints
and MLflow artifacts live on S3 (the session's S3 server), as on a cluster: a run whose
worker process is killed mid-run, then continued with `--resume RUN_ID`, has at each end
weights bitwise identical to an uninterrupted run's at the same step, in one MLflow run on
one step axis; resumed again from an older checkpoint, the run's next `--resume RUN_ID`
finds that branch's checkpoints. (One chain of three Ray Train runs: each costs some 15 s of
process starts.)

The uninterrupted run is the same loop in two plain torch DDP processes, without Ray: so
this test also shows that Ray Train adds nothing to what is computed."""

import os
import signal
import threading
import time
from dataclasses import dataclass

import pytest
import torch
from mlflow import MlflowClient
from spawn_helpers import ray_actors, spawn_gloo

from pipelines.config import build, load, to_dict
from pipelines.config.schema import TrackingConfig
from pipelines.core import loop, storage
from pipelines.core.checkpoint import load_checkpoint
from pipelines.data.manifest import read_dataset
from pipelines.inference.model import load_trained
from pipelines.inference.run import generated
from pipelines.train.build import build_batches, build_engine
from pipelines.train.launch import train
from pipelines.train.resume import find_checkpoint, resume_config

pytestmark = pytest.mark.slow

# Exact epochs: a resume skips the batches already trained on, so the data order is the same.
BASE = [
    "train.workers=2",
    "model.ngf=8",
    "model.ndf=8",
    "data.batch_size=16",
    "data.mode=exact",
    "train.log_every=10",
    "train.sample_every=1000",
    "eval.every=0",
]


def _cfg(shards, tmp_path, steps, *extra, bucket=None):
    remote = bucket is not None  # storage and artifacts on S3, else in tmp_path
    return load(
        "lsgan",
        overrides=[
            f"data.path={shards}",
            *BASE,
            f"train.steps={steps}",
            *extra,
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_root={f'{bucket}/mlflow' if remote else (tmp_path / 'art').as_uri()}",
            f"train.storage_path={f'{bucket}/ray' if remote else tmp_path / 'ray'}",
        ],
    )


def _weights(checkpoint_path=None, state=None):
    state = (state or load_checkpoint(checkpoint_path))["engine"]
    return {
        **state["nets"]["G"],
        **{f"D.{k}": v for k, v in state["nets"]["D"].items()},
        **{f"optim.{g}": o["state"][0]["exp_avg"] for g, o in state["optim"].items()},
    }


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@dataclass
class _SavingHooks(loop.CollectingHooks):
    """Writes each checkpoint when it is taken: the engine's state dict holds live tensors."""

    folder: str = ""

    def on_step(self, event):
        if event.state is not None:
            torch.save(event.state, f"{self.folder}/{event.step}.pt")


def _plain_rank(rank, world, cfg_tree, folder):
    cfg = build(cfg_tree)
    dataset = read_dataset(cfg.data.path)
    engine = build_engine(cfg, dataset, torch.device("cpu"))
    hooks = _SavingHooks(chief=rank == 0, folder=folder)
    loop.run(cfg, engine, build_batches(cfg, dataset, engine, rank, world), hooks, rank=rank)


@pytest.fixture(scope="module")
def straight(digit_shards, tmp_path_factory):
    """The uninterrupted reference run to step 300, in plain torch DDP processes: its weights
    at steps 200 and 300."""
    tmp = tmp_path_factory.mktemp("straight")
    cfg = _cfg(digit_shards, tmp, 300, "train.checkpoint_every=100")
    spawn_gloo(_plain_rank, 2, tmp, to_dict(cfg), str(tmp))
    return {step: _weights(state=torch.load(tmp / f"{step}.pt", weights_only=True)) for step in (200, 300)}


def test_a_killed_worker_and_then_a_resume_continue_the_run_bitwise(
    digit_shards, ray_local, tmp_path, empty_store, straight, s3_bucket_uri
):
    # To step 200, a worker's process killed mid-run after the step-100 checkpoint: Ray Train
    # starts a new worker group, which restores that checkpoint from S3.
    cfg = _cfg(digit_shards, tmp_path, 200, "train.checkpoint_every=100", "train.max_failures=1", bucket=s3_bucket_uri)
    first = _run_killing_a_worker(cfg, f"{s3_bucket_uri}/ray", before_step=170)
    client = MlflowClient(cfg.tracking.uri)
    assert client.get_run(first.run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(first.run_id, "loss/G")]
    assert [s for s in steps if s <= 100] == list(range(10, 110, 10))  # nothing before the checkpoint again
    assert steps[-1] == 200 and sorted(set(steps)) == list(range(10, 210, 10))
    assert first.checkpoint_path.startswith(f"{s3_bucket_uri}/ray/ganforge-{first.run_id}/checkpoint_")
    assert _same(_weights(storage.download(first.checkpoint_path)), straight[200])

    # Then `ganforge train --resume RUN_ID`: the same MLflow run, from Ray's newest checkpoint
    # (its own books say which), to step 300.
    checkpoint = find_checkpoint(first.run_id, TrackingConfig(uri=first.tracking.uri))
    assert checkpoint == first.checkpoint_path
    resumed = train(resume_config("lsgan", checkpoint, ["train.steps=300"]), progress=False, resume_from=checkpoint)
    assert resumed.run_id == first.run_id and client.get_run(first.run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(first.run_id, "loss/G")]
    assert sorted(set(steps)) == list(range(10, 310, 10))  # one step axis...
    assert all(steps.count(s) == 1 for s in range(200, 310, 10))  # ...on which the resume logged nothing twice
    assert _same(_weights(storage.download(resumed.checkpoint_path)), straight[300])
    # Nothing of the run on local disk: checkpoints and artifacts are in the bucket.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
    assert {a.path for a in client.list_artifacts(first.run_id)} >= {"checkpoint", "data"}
    assert client.get_run(first.run_id).info.artifact_uri.startswith(f"{s3_bucket_uri}/mlflow/")
    # `sample` (and `translate`, `evaluate`: the same loader) from the run id reads its model
    # from the bucket's artifacts; from the checkpoint's URI, from Ray's storage: the same EMA generator.
    tracking = TrackingConfig(uri=cfg.tracking.uri)
    by_run, by_uri = (
        next(generated(load_trained(s, tracking), 8, seed=3)) for s in (first.run_id, resumed.checkpoint_path)
    )
    assert torch.equal(by_run, by_uri)

    # A resume from an older checkpoint (step 200) starts new Ray books; the run's tag names
    # them, so a later `--resume RUN_ID` continues from their newest checkpoint, not step 300.
    # On one worker, the exact epoch that checkpoint is inside is dealt differently: the run
    # starts the next one, and the driver's terminal (not only rank 0's log) says so.
    branch = resume_config("lsgan", checkpoint, ["train.steps=210", "train.workers=1"])
    with pytest.warns(UserWarning, match="rank 0: data.mode=exact: the checkpoint was written by 2 workers"):
        again = train(branch, progress=False, resume_from=checkpoint)
    assert again.checkpoint_path.startswith(f"{s3_bucket_uri}/ray/ganforge-{first.run_id}-from-")
    assert find_checkpoint(first.run_id, tracking) == again.checkpoint_path


def _worker_pids():
    return [a.pid for a in ray_actors("RayTrainWorker", state="ALIVE")]


def _run_killing_a_worker(cfg, storage, before_step):
    """Train ``cfg``, killing a worker's process once a checkpoint is in Ray Train's books and
    before rank 0 has logged ``before_step``; the run's outcome."""
    outcome, errors = {}, []
    job = threading.Thread(target=lambda: _run(cfg, outcome, errors), daemon=True)
    job.start()
    client, killed = MlflowClient(cfg.tracking.uri), None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline and job.is_alive():
        experiment = client.get_experiment_by_name("ganforge-lsgan")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        done = [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss/G")] if runs else []
        if done and max(done) < before_step and _checkpoint_registered(storage):
            killed = _worker_pids()[-1]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    job.join(timeout=300)
    assert killed is not None and not errors, errors
    return outcome["result"]


def _checkpoint_registered(runs):
    """Ray Train's controller has taken the step-100 checkpoint into its books (it learns of
    reports by polling, so a worker killed right after reporting can take the report with it)."""
    books = [storage.join(runs, run, "checkpoint_manager_snapshot.json") for run in storage.children(runs)]
    return any(storage.is_file(f) and "checkpoint_" in storage.read_text(f) for f in books)


def _run(cfg, outcome, errors):
    try:
        outcome["result"] = train(cfg, progress=False)
    except BaseException as exc:  # surfaced by the test's assertion
        errors.append(exc)
