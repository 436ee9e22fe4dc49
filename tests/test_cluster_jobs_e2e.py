"""End to end, as a user runs it: `ganforge cluster up` starts a real Ray head and a real
`mlflow server` on 127.0.0.1, and a second Ray node joins it (two nodes of one CPU each on
this machine); `ganforge submit` sends a 2-worker DDP training job through the Ray Jobs
API; the run, everything logged to it and the shards each node read are then read back
through the MLflow server's REST API and client, and browsed in its web UI in headless
Chromium; `ganforge cluster down` stops exactly what `up` started."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from browser import chromium, click, loaded_image_width, require_browser, visible, with_text
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from PIL import Image
from spawn_helpers import free_port

from cluster.services import alive, stop_group
from pipelines.core.checkpoint import load_checkpoint
from pipelines.tracking.models import run_models

pytestmark = pytest.mark.slow

# 2 workers on 2 nodes, one exact epoch (9 shards, 1,797 digits: at most 63 batches of 16 per rank:
# a global batch of 32) and then some.
TINY_LSGAN = [
    "--set",
    "model.ngf=8",
    "--set",
    "model.ndf=8",
    "--set",
    "model.latent_dim=16",
    "--set",
    "train.log_every=35",
    "--set",
    "train.sample_every=35",
    "--set",
    "train.checkpoint_every=70",
    "--set",
    "eval.every=35",
    "--set",
    "eval.samples=256",
    "--set",
    "optim.lr_d=1e-4",
    "--set",
    "data.mode=exact",
    "--set",
    "tracking.system_metrics_interval=2",
    "--workers",
    "2",
    "--steps",
    "70",
    "--batch-size",
    "32",
]


def cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def rest(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base}/{path}" if path.startswith("get-artifact") else f"{base}/api/2.0/mlflow/{path}",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def join_second_node(address: str, env: dict[str, str], log) -> subprocess.Popen:
    """`ray start --address` for a second one-CPU node on this machine, as a worker machine
    would, with the cluster's token. Its dashboard agent needs a port of its own here."""
    env = {**env, "RAY_AUTH_MODE": "token", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    node = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "ray"),
            "start",
            f"--address={address}",
            "--num-cpus=1",
            "--block",
            "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_port()}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while "Ray runtime started" not in open(log.name).read():
        assert node.poll() is None and time.monotonic() < deadline, open(log.name).read()[-2000:]
        time.sleep(0.5)
    return node


def port_open(address: str) -> bool:
    host, port = address.replace("http://", "").rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ray_local):
    # ray_local: the session's own Ray instance runs beside the cluster, as a user's notebook
    # might; its default ports must not keep the cluster from working.
    home = tmp_path_factory.mktemp("ganforge-home")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["GANFORGE_HOME"] = str(home)
    env["RAY_AUTH_TOKEN_PATH"] = str(home / "auth_token")  # the cluster's own token, not the user's
    # Right after a node is lost, Ray Train may still count its CPUs and try the old group size
    # first, waiting this long (60 s by default) before it starts what fits.
    env["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = "15"
    up = cli(["cluster", "up", "--num-cpus", "1"], env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"Ray token     {home / 'auth_token'}" in up.stdout
    state = json.loads((home / "cluster.json").read_text())
    nodes: list[subprocess.Popen] = []  # the second node, and its restarts (the elastic test's)
    try:
        with open(home / "node2.log", "w") as log:
            nodes.append(join_second_node(state["ray_address"], env, log))
    except BaseException:
        cli(["cluster", "down"], env)  # nothing left running when the node cannot join
        raise
    state["nodes"] = nodes
    yield env, state
    for node in nodes:  # the joined nodes are the tests', not `cluster up`'s
        stop_group(node.pid)
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
    with pytest.raises(urllib.error.HTTPError) as refused:  # its Jobs API asks for the cluster's token
        urllib.request.urlopen(f"{state['dashboard_url']}/api/jobs/", timeout=30)
    assert refused.value.code == 401


@pytest.fixture(scope="module")
def job(cluster, digit_shards_with_bad_samples) -> subprocess.CompletedProcess:
    env, _ = cluster
    return cli(
        [
            "submit",
            "--job-id",
            "tiny-lsgan",
            "--wait",
            "--",
            "train",
            "lsgan",
            "--data",
            str(digit_shards_with_bad_samples),
            "--no-progress",
            *TINY_LSGAN,
        ],
        env,
    )


def finished_run(server: str) -> dict:
    experiment = rest(server, "experiments/get-by-name?experiment_name=ganforge-lsgan")["experiment"]
    runs = rest(server, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED"
    return {**runs[0], "experiment": experiment}


def test_a_two_node_job_trains_and_its_run_is_found_through_the_mlflow_server(
    cluster, job, digit_shards_with_bad_samples
):
    env, state = cluster
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "job tiny-lsgan: SUCCEEDED" in job.stdout

    listed = cli(["jobs", "list"], env)
    assert any(line.split()[:2] == ["tiny-lsgan", "SUCCEEDED"] for line in listed.stdout.splitlines())
    assert cli(["jobs", "status", "tiny-lsgan"], env).stdout.startswith("tiny-lsgan: SUCCEEDED")
    assert "finished: MLflow run" in cli(["jobs", "logs", "tiny-lsgan"], env).stdout

    server = state["mlflow_uri"]
    run = finished_run(server)
    run_id, experiment = run["info"]["run_id"], run["experiment"]
    history = rest(server, f"metrics/get-history?run_id={run_id}&metric_key=loss/D")["metrics"]
    assert [m["step"] for m in history] == [35, 70]
    images = rest(server, f"artifacts/list?run_id={run_id}&path=images").get("files", [])
    assert any(f["path"].startswith("images/samples+step+70") and f["path"].endswith(".png") for f in images)
    # The artifacts live in the server's store, not on the job's node.
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")

    # DDP across the two nodes, each node reading shards of its own, all of them together.
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["ganforge.world_size"] == "2" and tags["ganforge.nodes"] == "2"
    assert tags["ganforge.tracking_path"] == "relay"  # a loopback server: rank 0 logs through the driver's node
    coverage = rest(server, f"get-artifact?path=data/shards_by_rank.json&run_uuid={run_id}")
    assert coverage["complete"] and len({r["node"] for r in coverage["ranks"]}) == 2
    first, second = (set(r["shards"]["image"]) for r in coverage["ranks"])
    assert first and second and not first & second
    assert first | second == {p.name for p in digit_shards_with_bad_samples.glob("*.tar")}


def _artifacts(client, run_id, path=None):
    files = []
    for item in client.list_artifacts(run_id, path):
        files += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return files


def test_the_job_s_run_holds_everything_a_user_looks_for(cluster, job, digit_shards_with_bad_samples, tmp_path):
    """Params, tags, loss and evaluation curves, skipped samples, sample grids, the checkpoint
    and the generator, as logged by rank 0 through the relay; then `ganforge evaluate`."""
    env, state = cluster
    shards = digit_shards_with_bad_samples
    client = MlflowClient(state["mlflow_uri"])
    run = client.get_run(finished_run(state["mlflow_uri"])["info"]["run_id"])
    run_id = run.info.run_id
    assert run.info.run_name.startswith("lsgan-digits-")
    params = run.data.params
    assert params["optim.lr_d"] == "0.0001" and params["optim.lr_g"] == "0.0002"
    assert params["train.workers"] == "2" and params["model.ngf"] == "8" and params["gan"] == "lsgan"
    tags = run.data.tags
    assert tags["gan"] == "lsgan" and tags["workers"] == "2" and tags["data"] == str(shards)
    assert tags["ganforge.backend"] == "gloo" and tags["ganforge.eval_extractor"] == "pixels"

    for key in ("loss/D", "loss/G"):
        assert all(math.isfinite(m.value) for m in client.get_metric_history(run_id, key))
    assert client.get_metric_history(run_id, "lr/D")[-1].value == pytest.approx(1e-4)
    assert client.get_metric_history(run_id, "perf/images_per_sec")[-1].value > 0
    assert client.get_metric_history(run_id, "data/skipped")[-1].value >= 1  # rank 0's bad samples
    swd = client.get_metric_history(run_id, "eval/swd")
    assert [m.step for m in swd] == [35, 70] and all(m.value > 0 for m in swd)  # every 35 steps and at the end

    files = _artifacts(client, run_id)
    assert {f.split("+")[2] for f in files if f.startswith("images/samples+step+")} == {"35", "70"}
    assert {"checkpoint/state.pt", "checkpoint/config.json"} <= set(files)
    state_dict = load_checkpoint(client.download_artifacts(run_id, "checkpoint", str(tmp_path / "dl")))
    assert state_dict["engine"]["step"] == 70 and state_dict["config"]["optim"]["lr_d"] == 1e-4
    assert set(state_dict["engine"]["optim"]) == {"G", "D"}
    # The generator of each evaluation, logged through the relay; the better one is the run's.
    models = run_models(client, run_id)
    assert [m.tags["ganforge.step"] for m in models] == ["35", "70"]
    best = min(models, key=lambda m: float(m.tags["ganforge.score"]))
    assert tags["ganforge.model"] == f"models:/{best.model_id}"
    folder = download_artifacts(best.artifact_location, dst_path=str(tmp_path / "g"), tracking_uri=state["mlflow_uri"])
    generator = torch.load(next(Path(folder).rglob("generator.pt")), weights_only=True)
    assert set(generator) == {"G"}

    # Every node that ran a worker logged its system metrics into the run, under its node id.
    nodes = {k.split("/")[1] for k in run.data.metrics if k.startswith("system/")}
    assert len(nodes) == 2 and all(f"ganforge.node.{node}" in tags for node in nodes)
    for node in nodes:
        cpu = client.get_metric_history(run_id, f"system/{node}/cpu_utilization_percentage")
        assert cpu and all(0 <= m.value <= 100 for m in cpu)
    inputs = {(d.dataset.name, d.tags[0].value) for d in run.inputs.dataset_inputs}
    assert inputs == {(f"{shards.name}:image", "training")}

    evaluate = cli(
        [
            "evaluate",
            run_id,
            "--data",
            str(shards),
            "--n",
            "300",
            "--device",
            "cpu",
            "--tracking-uri",
            state["mlflow_uri"],
        ],
        env,
    )
    assert evaluate.returncode == 0, evaluate.stderr
    logged = client.get_run(run_id)
    assert logged.data.metrics["evaluate/swd"] > 0 and logged.data.metrics["evaluate/reference_images"] == 300
    # Its reference set is these shards' training split (they hold none out): an input of the run
    # already, which MLflow keeps once, with its first context.
    contexts = {(d.dataset.name, d.tags[0].value) for d in logged.inputs.dataset_inputs}
    assert contexts == {(f"{shards.name}:image", "training")}


def test_the_run_is_browsed_in_the_mlflow_ui_as_a_user_sees_it(cluster, job, tmp_path):
    """Home page, "Model training", the experiment, the run: its metric is listed and its
    sample grid, opened from the artifact tree, is drawn at the size it was logged."""
    require_browser()
    _, state = cluster
    run = finished_run(state["mlflow_uri"])
    run_id, name = run["info"]["run_id"], run["info"]["run_name"]
    grids = rest(state["mlflow_uri"], f"artifacts/list?run_id={run_id}&path=images")["files"]
    grid = next(f["path"] for f in grids if f["path"].endswith(".png"))
    query = urllib.parse.urlencode({"path": grid, "run_uuid": run_id})  # grid names hold '+'
    with urllib.request.urlopen(f"{state['mlflow_uri']}/get-artifact?{query}", timeout=30) as r:
        logged_width = Image.open(r).width

    with chromium(tmp_path / "profile") as browser:
        browser.get(state["mlflow_uri"])
        click(browser, with_text("Model training"))  # MLflow 3 opens on its GenAI view
        click(browser, "//a[normalize-space(.)='ganforge-lsgan']")
        click(browser, f"//a[normalize-space(.)='{name}']")
        assert run_id in browser.current_url
        assert visible(browser, with_text("loss/D")).is_displayed()  # the run's metrics table
        click(browser, "//*[@role='tab' and normalize-space(.)='Artifacts'] | " + with_text("Artifacts"))
        click(browser, with_text("images"))
        click(browser, with_text(grid.split("/")[-1]))
        assert loaded_image_width(browser, "blob:") == logged_width
        browser.save_screenshot(str(tmp_path / "mlflow-run-sample.png"))
    shot = Image.open(tmp_path / "mlflow-run-sample.png").convert("RGB")
    assert shot.width == 1400 and len(set(shot.getdata())) > 100  # the page as drawn, not a blank one


def test_a_running_job_is_stopped_and_its_logs_followed_to_the_end(cluster, digit_shards):
    env, _ = cluster
    submit = cli(
        [
            "submit",
            "--job-id",
            "long-lsgan",
            "--",
            "train",
            "lsgan",
            "--data",
            str(digit_shards),
            "--no-progress",
            "--set",
            "model.ngf=8",
            "--set",
            "model.ndf=8",
            "--set",
            "eval.every=0",
            "--workers",
            "1",
            "--steps",
            "100000",
        ],
        env,
    )
    assert submit.returncode == 0, submit.stderr
    deadline = time.monotonic() + 120
    while not (status := cli(["jobs", "status", "long-lsgan"], env).stdout).startswith("long-lsgan: RUNNING"):
        assert time.monotonic() < deadline and "PENDING" in status, status
        time.sleep(1)
    assert cli(["jobs", "stop", "long-lsgan"], env).stdout.strip() == "long-lsgan: stop requested"
    follow = cli(["jobs", "logs", "--follow", "long-lsgan"], env, timeout=120)  # returns when the job has ended
    assert follow.returncode == 0, follow.stderr
    assert cli(["jobs", "status", "long-lsgan"], env).stdout.startswith("long-lsgan: STOPPED")


# Long enough for a node to leave, Ray Train to restart on what is left and the node to come
# back while the run still trains. Nets wide enough that a step's compute, not DDP's gloo
# round trips, sets its pace: then 1 and 2 workers step at similar rates here.
ELASTIC_STEPS = 2500


def _elastic_run(env: dict[str, str], state: dict, shards: Path, storage: str) -> subprocess.Popen:
    """`ganforge train --workers 1-2` on the cluster: one worker per node while both are up."""
    args = ["train", "lsgan", "--data", str(shards), "--address", state["ray_address"], "--workers", "1-2"]
    args += ["--tracking-uri", state["mlflow_uri"], "--steps", str(ELASTIC_STEPS), "--batch-size", "32"]
    args += ["--no-progress", "--set", "tracking.experiment=elastic", "--set", f"train.storage_path={storage}"]
    for setting in ("model.ngf=32", "model.ndf=32", "eval.every=0", "train.sample_every=100000"):
        args += ["--set", setting]
    # Checkpoints often, so that a lost node costs little; a node's loss is a failure to Ray
    # Train (a preemption would not be), so the run may restart a few times.
    for setting in ("train.checkpoint_every=50", "train.max_failures=4", "train.resize_check_s=2"):
        args += ["--set", setting]
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli.main", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _world_sizes(client: MlflowClient) -> tuple[str | None, list[float]]:
    """The elastic run's id and its train/world_size values in the order they were logged."""
    experiment = client.get_experiment_by_name("elastic")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    if not runs:
        return None, []
    history = client.get_metric_history(runs[0].info.run_id, "train/world_size")
    return runs[0].info.run_id, [m.value for m in sorted(history, key=lambda m: (m.timestamp, m.step))]


def _wait_for(what: str, ready, run: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert run.poll() is None, f"the run ended before {what}: {run.stdout.read().decode()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.5)


def test_an_elastic_run_shrinks_when_a_node_is_lost_and_grows_back(cluster, digit_shards, s3_bucket_uri, tmp_path):
    env, state = cluster
    client = MlflowClient(state["mlflow_uri"])
    run = _elastic_run(env, state, digit_shards, f"{s3_bucket_uri}/ray")
    try:
        _wait_for("two workers' steps", lambda: _world_sizes(client)[1][-3:] == [2.0] * 3, run)
        # The second node is lost, its worker with it: killed outright, as a machine is. (A
        # SIGTERM lets `ray start --block` clean up, which left this session's own Ray
        # instance unable to see a later run's killed worker.)
        os.killpg(state["nodes"][-1].pid, signal.SIGKILL)
        _wait_for("steps on the remaining node", lambda: _world_sizes(client)[1][-1:] == [1.0], run)
        with open(tmp_path / "node2-again.log", "w") as log:  # the node comes back
            state["nodes"].append(join_second_node(state["ray_address"], env, log))
        _wait_for("two workers again", lambda: _world_sizes(client)[1][-1:] == [2.0], run)
        output = run.communicate(timeout=300)[0].decode()
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output[-3000:]
    run_id, sizes = _world_sizes(client)
    assert [size for i, size in enumerate(sizes) if i == 0 or size != sizes[i - 1]] == [2.0, 1.0, 2.0]
    finished = client.get_run(run_id)  # one MLflow run throughout, finished at the last step
    assert finished.info.status == "FINISHED" and f"finished: MLflow run {run_id}" in output
    assert max(m.step for m in client.get_metric_history(run_id, "loss/G")) == ELASTIC_STEPS
    assert finished.data.params["data.batch_size"] == "32"  # the global batch: 16 a worker, then 32, then 16


def test_a_multi_node_run_with_a_node_local_store_is_refused(cluster, digit_shards, tmp_path):
    env, state = cluster
    refused = cli(
        [
            "train",
            "lsgan",
            "--data",
            str(digit_shards),
            "--address",
            state["ray_address"],
            "--set",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        ],
        env,
    )
    assert refused.returncode == 2, refused.stderr
    assert "this Ray cluster has 2 nodes, and the MLflow store sqlite:///" in refused.stderr
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was created


def test_submit_refuses_a_local_tracking_store(cluster, digit_shards, tmp_path):
    env, _ = cluster
    refused = cli(
        [
            "submit",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
            "--",
            "train",
            "lsgan",
            "--data",
            str(digit_shards),
        ],
        env,
    )
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
    # A plain ray.init() on this machine must not try to join the stopped head.
    recorded = Path("/tmp/ray/ray_current_cluster")
    assert not recorded.exists() or not recorded.read_text().strip().endswith(":" + state["ray_address"].split(":")[-1])
    assert ray.cluster_resources()["CPU"] >= 1  # the test session's own Ray instance still runs
