"""Shared fixtures: real demo images and real tar shards, made once per session, and one
local Ray instance for every test that needs Ray."""

from __future__ import annotations

import os

import pytest

from pipelines.data.demo import write_digits
from pipelines.data.shard import ShardOptions, write_shards

os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")


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
def ray_local():
    """One Ray instance for the whole session (starting Ray costs 5-16 s here)."""
    import ray

    from cluster.local import connect

    connect(num_cpus=2)
    yield
    ray.shutdown()
