"""Tracking faults against a real `mlflow server` on 127.0.0.1: a server that is down at start
stops the job before Ray starts a worker; one that dies mid-run does not stop training: the
checkpoints are still written, the terminal warns, and metrics queued during the outage
reach the server once it is back."""

import os
import signal
import subprocess
import threading
import time

import pytest
from mlflow import MlflowClient
from spawn_helpers import free_port, wait_for_http

from cluster.services import mlflow_server_command, server_env
from pipelines.config import load
from pipelines.core.checkpoint import load_checkpoint
from pipelines.train.launch import train

pytestmark = pytest.mark.slow


def _start_server(tmp_path, port, store):
    server = subprocess.Popen(
        mlflow_server_command(store, str(tmp_path / "art"), port),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=server_env(),
    )
    assert wait_for_http(f"http://127.0.0.1:{port}/health", server, "mlflow server") == b"OK"
    return server


def _stop(server):
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)


def _cfg(shards, tmp_path, uri, steps):
    return load(
        "lsgan",
        overrides=[
            f"data.path={shards}",
            "train.workers=2",
            f"train.steps={steps}",
            "model.ngf=16",
            "model.ndf=16",
            "data.batch_size=32",
            "train.log_every=10",
            "train.sample_every=100000",
            "train.checkpoint_every=500",
            "eval.every=0",
            f"tracking.uri={uri}",
            f"train.storage_path={tmp_path / 'ray'}",
        ],
    )


def test_an_unreachable_server_stops_the_job_before_ray_starts(digit_shards, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.time()
    with pytest.raises(ConnectionError, match="MLflow tracking server .* is not reachable"):
        train(_cfg(digit_shards, tmp_path, uri, 10), progress=False)
    assert time.time() - start < 30 and not (tmp_path / "ray").exists()


def test_a_server_outage_mid_run_does_not_stop_training(digit_shards, ray_local, tmp_path, empty_store):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_server(tmp_path, port, empty_store)
    # Training ends during the outage; rank 0's final flush waits for the server to return.
    cfg = _cfg(digit_shards, tmp_path, uri, 150)
    client = MlflowClient(uri)
    outage = threading.Event()

    def cut_and_restore():
        nonlocal server
        deadline = time.time() + 300
        while time.time() < deadline:  # wait for the first metrics, then take the server away
            experiment = client.get_experiment_by_name("ganforge-lsgan")
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            if runs and client.get_metric_history(runs[0].info.run_id, "loss/G"):
                break
            time.sleep(0.5)
        _stop(server)
        outage.set()
        time.sleep(3)
        server = _start_server(tmp_path, port, empty_store)  # same store: back about 15 s later

    chaos = threading.Thread(target=cut_and_restore, daemon=True)
    chaos.start()
    try:
        with pytest.warns(UserWarning, match="MLflow became unreachable"):
            outcome = train(cfg, progress=False)
        chaos.join(timeout=120)
        assert outage.is_set()
        assert load_checkpoint(outcome.checkpoint_path)["engine"]["step"] == 150  # checkpoints were written
        steps = {m.step for m in client.get_metric_history(outcome.run_id, "loss/G")}
        assert steps == set(range(10, 160, 10)), "metrics logged during the outage were lost"
        assert client.get_run(outcome.run_id).info.status == "FINISHED"
    finally:
        _stop(server)
