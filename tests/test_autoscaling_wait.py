"""On a cluster with an autoscaler, a run that does not fit yet waits for the autoscaler, says
what it waits for and what the cluster has, and goes on once the nodes have joined; a wait
that goes on too long ends with --wait-timeout. The cluster is a real Ray head with Ray's
real (v1) autoscaler, whose node provider is Ray's own for testing autoscaling on one machine
(`fake_multinode`: each node it adds is a real raylet here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from spawn_helpers import free_port

from cluster.services import stop_group

pytestmark = pytest.mark.slow

NODE_CPUS = 2  # the one node the autoscaler may add; the head has no CPU


def autoscaling_config(gcs: str) -> dict:
    """An autoscaler config as `ray up` would place on a head, for the fake_multinode provider."""
    return {
        "cluster_name": "ganforge-test",
        "max_workers": 1,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 5,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "ray.worker.cpu": {"resources": {"CPU": NODE_CPUS}, "node_config": {}, "min_workers": 0, "max_workers": 1},
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@pytest.fixture
def autoscaling_head(tmp_path, ray_local):
    port = free_port()
    gcs = f"127.0.0.1:{port}"
    config = tmp_path / "autoscaling.json"
    config.write_text(json.dumps(autoscaling_config(gcs)))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    # The provider starts a node at the monitor's first look at a demand; authentication is
    # beside the point here, and the nodes it starts would need the token passed through.
    env.update(
        {
            "RAY_FAKE_CLUSTER": "1",
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            "RAY_AUTH_MODE": "disabled",
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        }
    )
    ray = Path(sys.executable).parent / "ray"
    log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen(
        [
            str(ray),
            "start",
            "--head",
            "--block",
            f"--autoscaling-config={config}",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=0",
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while "Ray runtime started" not in (tmp_path / "head.log").read_text():
        assert head.poll() is None and time.monotonic() < deadline, (tmp_path / "head.log").read_text()[-2000:]
        time.sleep(0.5)
    yield gcs, env
    stop_group(head.pid)  # the head, its autoscaler and the nodes the autoscaler started
    log.close()


def train(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "train", "lsgan", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_run_waits_for_the_autoscaler_and_a_wait_can_time_out(autoscaling_head, digit_shards, tmp_path):
    gcs, env = autoscaling_head
    base = ["--data", str(digit_shards), "--address", gcs, "--no-progress", "--steps", "2"]

    grown = train([*base, "--workers", "2"], env, tmp_path)
    waited = [line for line in grown.stdout.splitlines() if line.startswith("ganforge: waiting for the autoscaler")]
    assert waited and waited[0] == (
        f"ganforge: waiting for the autoscaler: this run asks for 2 workers of 1 CPU "
        f"(2 CPUs in all); the Ray cluster at {gcs} has 0 CPUs, 0 GPUs on 1 node now"
    )
    # The wait ended because the node came: the run went on to its next check, which refuses a
    # local MLflow store on a cluster of several nodes (this one has 2 now).
    assert grown.returncode == 2, grown.stdout + grown.stderr
    assert "this Ray cluster has 2 nodes, and the MLflow store sqlite:///" in grown.stderr, grown.stderr

    start = time.monotonic()
    timed_out = train([*base, "--workers", "3", "--batch-size", "48", "--wait-timeout", "5"], env, tmp_path)
    assert timed_out.returncode == 2 and "Traceback" not in timed_out.stderr
    assert (
        f"ganforge: error: this run asks for 3 workers of 1 CPU (3 CPUs in all), but the Ray cluster at {gcs} has "
        f"{NODE_CPUS} CPUs, 0 GPUs on 2 nodes; the largest request that fits is --workers {NODE_CPUS} "
        "(still so after 5 s: --wait-timeout)" in timed_out.stderr
    ), timed_out.stderr
    assert "waiting for the autoscaler" in timed_out.stdout and time.monotonic() - start < 60
