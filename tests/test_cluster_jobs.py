"""Where a job goes and where it logs: clear refusals before anything is sent."""

from __future__ import annotations

import pytest

from cluster import jobs, state
from cluster.runtime_env import job_runtime_env
from pipelines.cli.submit_cmd import absolute_data_paths, requested
from pipelines.config import ConfigError
from pipelines.tracking.store import check_shared


@pytest.fixture
def no_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_address_comes_from_the_flag_then_the_environment_then_the_local_cluster(no_cluster, monkeypatch):
    with pytest.raises(jobs.JobsError, match="ganforge cluster up"):
        jobs.dashboard_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:8265")
    assert jobs.dashboard_address(None) == "http://10.0.0.5:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://10.0.0.6:8265")  # Ray's own name wins
    assert jobs.dashboard_address(None) == "http://10.0.0.6:8265"
    assert jobs.dashboard_address("https://head:8265") == "https://head:8265"


def test_a_cluster_record_whose_processes_are_gone_is_dropped(no_cluster):
    state.save(
        state.ClusterState(
            root="/nowhere",
            ray_address="127.0.0.1:1",
            dashboard_url="http://127.0.0.1:1",
            mlflow_uri="http://127.0.0.1:2",
            ray_pid=2**22 + 1,
            mlflow_pid=2**22 + 2,
        )
    )
    with pytest.raises(jobs.JobsError, match="no Ray cluster"):
        jobs.dashboard_address(None)
    assert state.load() is None


@pytest.mark.parametrize("uri", ["sqlite:///x.db", "/abs/mlruns", "mlruns"])
def test_jobs_must_log_to_a_tracking_server(no_cluster, uri):
    with pytest.raises(jobs.JobsError, match="not to a local store"):
        jobs.tracking_uri(uri, None)
    assert jobs.tracking_uri("http://head:5000", None) == "http://head:5000"


def test_without_a_uri_a_remote_cluster_keeps_its_own_and_the_local_cluster_gives_its_server(no_cluster):
    assert jobs.tracking_uri(None, None) is None
    assert "MLFLOW_TRACKING_URI" not in job_runtime_env(None)["env_vars"]
    local = state.ClusterState(
        root="/c",
        ray_address="127.0.0.1:1",
        dashboard_url="http://127.0.0.1:1",
        mlflow_uri="http://127.0.0.1:5001",
        ray_pid=1,
        mlflow_pid=1,
    )
    assert jobs.tracking_uri(None, local) == "http://127.0.0.1:5001"


def test_local_data_paths_become_absolute_and_urls_pass_through(tmp_path, monkeypatch):
    (tmp_path / "shards").mkdir()
    monkeypatch.chdir(tmp_path)
    args = ["train", "lsgan", "--data", "shards", "--steps", "5"]
    assert absolute_data_paths(args)[3] == str(tmp_path / "shards")
    assert absolute_data_paths(["--data=shards"]) == [f"--data={tmp_path / 'shards'}"]
    assert absolute_data_paths(["--data", "pipe:curl -s http://x/a.tar"]) == [
        "--data",
        "pipe:curl -s http://x/a.tar",
    ]
    assert absolute_data_paths(["--data", "missing"]) == ["--data", "missing"]  # cluster-side path


def test_a_submitted_command_is_read_as_the_job_will_read_it(tmp_path):
    request = requested(["train", "lsgan", "--data", "cluster/shards", "--workers", "3", "--gpus"])
    assert request.workers == 3 and request.per_worker == {"CPU": 1, "GPU": 1} and not request.extra
    trial = requested(["tune", "lsgan", "--data", "x", "--workers-per-trial", "2", "--steps", "4000"])
    assert trial.flag == "--workers-per-trial" and trial.extra == {"ganforge_trial": 1}
    with pytest.raises(ConfigError, match="too late to stop it early"):  # checked here, not in the job's log
        requested(["tune", "lsgan", "--data", "x", "--steps", "100", "--set", "eval.every=500"])
    with pytest.raises(ConfigError, match="optim.lr_d must be > 0"):
        requested(["train", "lsgan", "--set", "optim.lr_d=0"])
    assert requested(["train", "lsgan", "--config", str(tmp_path / "on-the-cluster.yaml")]) is None
    assert requested(["evaluate", "RUN", "--data", "x"]) is None


def test_runtime_env_ships_our_packages_and_the_tracking_server():
    env = job_runtime_env("http://head:5000")
    assert sorted(path.rsplit("/", 1)[-1] for path in env["py_modules"]) == ["cluster", "gan_core", "pipelines"]
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://head:5000"
    assert "__pycache__/" in env["excludes"]


def test_submit_without_a_command_says_how(no_cluster):
    with pytest.raises(jobs.JobsError, match="after --"):
        jobs.submit([])


def test_a_multi_node_run_refuses_a_local_tracking_store():
    check_shared("sqlite:///here/mlflow.db", nodes=1)  # one machine: a local store is the default
    check_shared("http://head:5000", nodes=3)
    with pytest.raises(ConfigError, match="3 nodes.*MLflow server every node reaches"):
        check_shared("sqlite:///here/mlflow.db", nodes=3)
