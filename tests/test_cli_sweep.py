"""Every `ganforge` subcommand, called as a user would with a reference that does not exist
(run ids, registry URIs, checkpoint paths, search names, job ids, clusters, data) or with a
request beyond this 2-CPU machine, ends within a bound: a non-zero exit, one `ganforge:
error:` line that says where it looked, and no traceback. The sweep grows with the CLI: a
subcommand that is neither swept nor listed as taking no reference fails the last test."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from pipelines.cli.main import parser

pytestmark = pytest.mark.slow

RUN_ID = "0123456789abcdef0123456789abcdef"
BOUND_S = 120  # a start of Ray here takes 5-16 s; nothing may wait longer than this

# Leaf commands that take no reference a user could get wrong, and why.
NO_REFERENCE = {
    "data demo": "writes the demo images; its only path is the output",
    "ui": "opens the MLflow UI over a store, a new one included",
    "cluster up": "starts a cluster; refuses when one is up (tested in test_cluster_jobs_e2e)",
    "cluster status": "reports whether a cluster is up",
    "gans": "lists the registry",
}

# Three workers a trial, with a batch they split (the default 64 would be refused first).
THREE_PER_TRIAL = ["--workers-per-trial", "3", "--set", "data.batch_size=48"]


@pytest.fixture(scope="module")
def where(ray_local, tmp_path_factory, digit_shards, _empty_store_file):
    """The places the sweep names: the session's Ray (its GCS and its Jobs API), an empty
    MLflow store, shards, a malformed config and a folder with no store in it."""
    import shutil

    import ray

    folder = tmp_path_factory.mktemp("sweep")
    shutil.copy(_empty_store_file, folder / "empty.db")
    (folder / "bad.yaml").write_text("train:\n  steps: 3\n   workers: 2\n")
    node = ray._private.worker.global_worker.node
    return {
        "gcs": ray.get_runtime_context().gcs_address,
        "jobs": f"http://{node.address_info['webui_url']}",
        "store": f"sqlite:///{folder / 'empty.db'}",
        "shards": str(digit_shards),
        "cwd": folder / "work",
        "bad_yaml": str(folder / "bad.yaml"),
    }


def sweep(w: dict) -> list[tuple[str, list[str], str]]:
    """(leaf command, arguments, what the error must say)."""
    store, shards, gcs, jobs = w["store"], w["shards"], w["gcs"], w["jobs"]
    on_store = ["--tracking-uri", store]
    return [
        # references: runs, registry URIs, checkpoints, searches, jobs, clusters, data, configs
        ("sample", ["sample", RUN_ID, "--out", "o"], "no MLflow store at sqlite:///"),
        (
            "sample",
            ["sample", RUN_ID, "--out", "o", *on_store],
            f"no MLflow run {RUN_ID} in the tracking store {store}",
        ),
        (
            "sample",
            ["sample", "models:/lsgan-generator@best", "--out", "o", *on_store],
            f"no models:/lsgan-generator@best in the model registry of {store}",
        ),
        ("sample", ["sample", "models:/lsgan-generator/3", "--out", "o", *on_store], "in the model registry of"),
        ("sample", ["sample", f"runs:/{RUN_ID}/generator", "--out", "o", *on_store], f"in the tracking store {store}"),
        ("sample", ["sample", "checkpoints/none", "--out", "o"], "no generator or checkpoint at checkpoints/none"),
        ("translate", ["translate", RUN_ID, "--src", shards, "--out", "o", *on_store], f"no MLflow run {RUN_ID}"),
        (
            "translate",
            ["translate", "models:/cyclegan-generator@best", "--src", shards, "--out", "o", *on_store],
            "in the model registry of",
        ),
        (
            "evaluate",
            ["evaluate", RUN_ID, "--data", shards, *on_store],
            f"no MLflow run {RUN_ID} in the tracking store",
        ),
        ("evaluate", ["evaluate", "state.pt", "--data", shards], "no generator or checkpoint at state.pt"),
        ("train", ["train", "lsgan", "--data", shards, "--resume", RUN_ID, *on_store], f"no MLflow run {RUN_ID}"),
        ("train", ["train", "lsgan", "--data", shards, "--resume", "runs/none"], "no checkpoint at runs/none"),
        (
            "train",
            ["train", "lsgan", "--data", shards, "--from-search", RUN_ID, *on_store],
            f"no MLflow run {RUN_ID} in the tracking store {store}",
        ),
        ("train", ["train", "lsgan", "--data", "shards/none"], "data path shards/none does not exist"),
        (
            "train",
            ["train", "lsgan", "--data", shards, "--config", w["bad_yaml"]],
            f"{w['bad_yaml']}:3:11: malformed YAML",
        ),
        (
            "tune",
            ["tune", "lsgan", "--data", shards, "--resume", "no-such-search"],
            "no search named no-such-search in the storage path",
        ),
        (
            "jobs status",
            ["jobs", "--address", jobs, "status", "no-such-job"],
            f"no job no-such-job on the Ray cluster at {jobs}",
        ),
        (
            "jobs logs",
            ["jobs", "--address", jobs, "logs", "no-such-job"],
            f"no job no-such-job on the Ray cluster at {jobs}",
        ),
        (
            "jobs stop",
            ["jobs", "--address", jobs, "stop", "no-such-job"],
            f"no job no-such-job on the Ray cluster at {jobs}",
        ),
        (
            "jobs list",
            ["jobs", "--address", "http://127.0.0.1:9", "list"],
            "cannot reach the Ray Jobs API at http://127.0.0.1:9",
        ),
        (
            "data shard",
            ["data", "shard", "--src", "images/none", "--out", "shards"],
            "image folder images/none does not exist",
        ),
        ("cluster down", ["cluster", "down"], "no local cluster is recorded"),
        # requests beyond a 2-CPU local instance
        (
            "train",
            ["train", "lsgan", "--data", shards, "--workers", "64"],
            "64 workers of 1 CPU (64 CPUs in all), but the local Ray instance has 2 CPUs, 0 GPUs on 1 node "
            "and cannot grow; the largest request that fits is --workers 2",
        ),
        (
            "train",
            ["train", "lsgan", "--data", shards, "--workers", "3", "--batch-size", "48", "--address", gcs],
            f"the Ray cluster at {gcs} has 2 CPUs, 0 GPUs on 1 node and cannot grow; "
            "the largest request that fits is --workers 2",
        ),
        ("train", ["train", "lsgan", "--data", shards, "--gpus", "--address", gcs], "not one worker fits"),
        (
            "train",
            ["train", "lsgan", "--data", shards, "--set", "train.threads_per_worker=4", "--address", gcs],
            "2 workers of 4 CPUs (8 CPUs in all)",
        ),
        (
            "tune",
            ["tune", "lsgan", "--data", shards, *THREE_PER_TRIAL, "--address", gcs],
            "the largest request that fits is --workers-per-trial 2",
        ),
        (
            "submit",
            [
                "submit",
                "--address",
                jobs,
                "--tracking-uri",
                "http://127.0.0.1:5000",
                "--",
                "train",
                "lsgan",
                "--data",
                shards,
                "--workers",
                "64",
            ],
            f"the Ray cluster at {jobs} has 2 CPUs",
        ),
        (
            "submit",
            [
                "submit",
                "--address",
                jobs,
                "--tracking-uri",
                "http://127.0.0.1:5000",
                "--",
                "tune",
                "lsgan",
                "--data",
                shards,
                "--workers-per-trial",
                "3",
            ],
            "--workers-per-trial 2",
        ),
        (
            "submit",
            ["submit", "--address", "http://127.0.0.1:9", "--", "train", "lsgan"],
            "cannot reach the Ray Jobs API",
        ),
    ]


def leaf_commands(p: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip()}
    return {leaf for name, child in subs[0].choices.items() for leaf in leaf_commands(child, f"{prefix}{name} ")}


def test_every_subcommand_is_swept_or_takes_no_reference(where):
    swept = {command for command, _, _ in sweep(where)}
    assert leaf_commands(parser()) == swept | set(NO_REFERENCE), "add the new subcommand to the sweep"


def test_unknown_references_and_impossible_requests_end_in_one_line(where):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    where["cwd"].mkdir(exist_ok=True)  # a folder with no MLflow store, no runs, no searches
    failures = []
    for command, args, expected in sweep(where):
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli.main", *args],
            cwd=where["cwd"],
            env=env,
            capture_output=True,
            text=True,
            timeout=BOUND_S,
        )
        errors = [line for line in done.stderr.splitlines() if line.startswith("ganforge: error:")]
        ok = (
            done.returncode != 0
            and len(errors) == 1
            and expected in errors[0]
            and "Traceback" not in done.stdout + done.stderr
        )
        if not ok:
            failures.append(f"{command}: {args}\n  exit {done.returncode}\n  {done.stderr[-1500:]}")
    assert not failures, "\n".join(failures)
    assert not (where["cwd"] / "mlflow.db").exists()  # looking a run up creates no store
