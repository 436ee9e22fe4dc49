"""End to end, as a user runs it: `ganforge cluster up` starts a real Ray head and a real
`mlflow server` on 127.0.0.1; `ganforge submit` sends a training job through the Ray Jobs
API; the run, its metrics and its sample grid are then read back through the MLflow
server's REST API; `ganforge cluster down` stops exactly what `up` started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from cluster.services import alive

pytestmark = pytest.mark.slow

TINY_LSGAN = ["--set", "model.ngf=8", "--set", "model.ndf=8", "--set", "model.latent_dim=16", "--set",
              "train.log_every=10", "--set", "train.sample_every=10", "--set", "train.checkpoint_every=20",
              "--set", "eval.every=0", "--workers", "1", "--steps", "20", "--batch-size", "16"]


def cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def rest(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def port_open(address: str) -> bool:
    host, port = address.replace("http://", "").rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("ganforge-home")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["GANFORGE_HOME"] = str(home)
    up = cli(["cluster", "up", "--num-cpus", "2"], env)
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((home / "cluster.json").read_text())
    yield env, state
    if (home / "cluster.json").exists():  # a test failed before `down` ran
        cli(["cluster", "down"], env)


def test_cluster_up_serves_ray_and_mlflow_on_loopback(cluster):
    env, state = cluster
    for url in (state["dashboard_url"], state["mlflow_uri"]):
        assert url.startswith("http://127.0.0.1:") and port_open(url)
    status = cli(["cluster", "status"], env)
    assert status.returncode == 0 and status.stdout.count("[up]") == 2
    again = cli(["cluster", "up"], env)
    assert again.returncode == 2 and "already up" in again.stderr


def test_submitted_job_trains_and_its_run_is_found_through_the_mlflow_server(cluster, digit_shards):
    env, state = cluster
    submit = cli(["submit", "--job-id", "tiny-lsgan", "--wait", "--", "train", "lsgan", "--data", str(digit_shards),
                  "--no-progress", *TINY_LSGAN], env)
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
    assert "job tiny-lsgan: SUCCEEDED" in submit.stdout

    listed = cli(["jobs", "list"], env)
    assert any(line.split()[:2] == ["tiny-lsgan", "SUCCEEDED"] for line in listed.stdout.splitlines())
    assert cli(["jobs", "status", "tiny-lsgan"], env).stdout.startswith("tiny-lsgan: SUCCEEDED")
    assert "ganforge" in cli(["jobs", "logs", "tiny-lsgan"], env).stdout

    server = state["mlflow_uri"]
    experiment = rest(server, "experiments/get-by-name?experiment_name=ganforge-lsgan")["experiment"]
    runs = rest(server, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED"
    run_id = runs[0]["info"]["run_id"]
    history = rest(server, f"metrics/get-history?run_id={run_id}&metric_key=loss/D")["metrics"]
    assert [m["step"] for m in history] == [10, 20]
    images = rest(server, f"artifacts/list?run_id={run_id}&path=images").get("files", [])
    assert any(f["path"].startswith("images/samples+step+20") and f["path"].endswith(".png") for f in images)
    # The artifacts live in the server's store, not on the job's node.
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")


def test_submit_refuses_a_local_tracking_store(cluster, digit_shards, tmp_path):
    env, _ = cluster
    refused = cli(["submit", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", "--", "train", "lsgan",
                   "--data", str(digit_shards)], env)
    assert refused.returncode == 2 and "not to a local store" in refused.stderr


def test_down_stops_what_up_started_and_nothing_else(cluster, ray_local):
    import ray

    env, state = cluster
    down = cli(["cluster", "down"], env)
    assert down.returncode == 0, down.stderr
    assert not alive(state["ray_pid"]) and not alive(state["mlflow_pid"])
    assert not port_open(state["dashboard_url"]) and not port_open(state["mlflow_uri"])
    assert not port_open(state["ray_address"])
    assert cli(["cluster", "status"], env).returncode == 1
    assert ray.cluster_resources()["CPU"] >= 1  # the test session's own Ray instance still runs
