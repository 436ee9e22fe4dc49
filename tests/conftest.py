"""Shared fixtures: real demo images and real tar shards, made once per session, new empty
MLflow stores, and one local Ray instance for every test that needs Ray."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from spawn_helpers import free_port, wait_for_http

from pipelines.data.demo import photo_crops, write_digit_domains, write_digits
from pipelines.data.shard import ShardOptions, write_shards

os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
# Ray Train's controller polls its workers every 2 s, and a report waits for the poll; tests
# report every few steps. Set before the session's Ray starts, so its processes inherit it.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits") / "images"
    write_digits(folder, size=16)
    return folder


@pytest.fixture(scope="session")
def digit_shards(digits_dir, tmp_path_factory):
    """1,797 real 16x16 grayscale digits in 9 shards of up to 200."""
    out = tmp_path_factory.mktemp("shards") / "digits"
    write_shards({"image": digits_dir}, out, ShardOptions(size=16, channels="L", shard_size=200, progress=False))
    return out


@pytest.fixture(scope="session")
def held_out_digits(digits_dir, tmp_path_factory):
    """The digits at 16 px with 300 of them held out as the evaluation reference."""
    out = tmp_path_factory.mktemp("held") / "digits-16"
    write_shards(
        {"image": digits_dir}, out, ShardOptions(size=16, channels="L", shard_size=400, holdout=300, progress=False)
    )
    return out


@pytest.fixture(scope="session")
def digit_shards_with_bad_samples(digit_shards, tmp_path_factory):
    """The digit shards with one undecodable sample appended to each: a run skips and counts them."""
    out = tmp_path_factory.mktemp("bad-samples") / "digits"
    shutil.copytree(digit_shards, out)
    for shard in sorted(out.glob("*.tar")):
        add_member(shard, "zzbad.png", b"\x89PNG garbage")
    return out


def add_member(tar_path, name: str, data: bytes) -> None:
    """Append one file to a tar shard, as a writer that went wrong might have."""
    with tarfile.open(tar_path, "a") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def invert(images: np.ndarray) -> np.ndarray:
    return 255 - images


@pytest.fixture(scope="session")
def inverted_photo_shards(tmp_path_factory):
    """Unpaired two-domain shards with a known mapping: A holds 16x16 crops of real photos,
    B colour-inverted crops of other places (so no B image is an A image's inverse)."""
    root = tmp_path_factory.mktemp("inverted")
    for domain, seed in (("A", 1), ("B", 2)):
        crops = photo_crops(400, 16, seed)
        crops = invert(crops) if domain == "B" else crops
        (root / domain).mkdir()
        for i, crop in enumerate(crops):
            Image.fromarray(crop).save(root / domain / f"{i:04d}.png")
    out = root / "shards"
    write_shards(
        {"A": root / "A", "B": root / "B"}, out, ShardOptions(size=16, channels="RGB", shard_size=100, progress=False)
    )
    return out


@pytest.fixture(scope="session")
def digit_domain_shards(tmp_path_factory):
    """The two-domain demo data (digits | MNIST-M-style digits) at 32 px: 899 A, 898 B images."""
    root = tmp_path_factory.mktemp("digit-domains")
    write_digit_domains(root / "images", size=32)
    out = root / "shards"
    write_shards(
        {"A": root / "images" / "A", "B": root / "images" / "B"},
        out,
        ShardOptions(size=32, channels="RGB", shard_size=200, progress=False),
    )
    return out


@pytest.fixture(scope="session")
def _empty_store_file(tmp_path_factory):
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the schema
    return path


@pytest.fixture
def empty_store(tmp_path, _empty_store_file) -> str:
    """The URI of a new, empty MLflow store at tmp_path/mlflow.db. Creating a store runs all
    of MLflow's schema migrations, seconds each time; this copies one made once a session."""
    shutil.copy(_empty_store_file, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


# A real S3 API (moto's server on 127.0.0.1) that every process of the session reaches as a
# user's would: through the AWS environment, which Ray's processes inherit when Ray starts.
S3_ENV = {"AWS_ACCESS_KEY_ID": "ganforge", "AWS_SECRET_ACCESS_KEY": "ganforge", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server():
    """The S3 server's endpoint, with the session's environment pointing at it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    saved = dict(os.environ)
    # The venv's `aws`, as in an activated venv (make runs pytest without activating it).
    os.environ.update(
        S3_ENV, AWS_ENDPOINT_URL=endpoint, PATH=f"{Path(sys.executable).parent}{os.pathsep}{saved['PATH']}"
    )
    try:
        wait_for_http(f"{endpoint}/", server, "the S3 server")
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


@pytest.fixture
def s3_bucket_uri(s3_server, request) -> str:
    """``s3://<new bucket>`` named after the test: storage no other test shares."""
    import boto3

    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50].strip("-")
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """One Ray instance for the whole session (starting Ray costs 5-16 s here); started after
    the S3 server, so that its workers reach it too."""
    import ray

    from cluster.connect import connect

    connect(num_cpus=2)
    yield
    ray.shutdown()
