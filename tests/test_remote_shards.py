"""Shard folders on a web server or in an S3 bucket read exactly like a local folder: the
same domains and counts, and an exact epoch streams every sample once. A brace pattern of
shards (no manifest) reads too, for resampled epochs. A server that is down, a folder with
no manifest, missing shards or a missing command-line tool is a clear data error."""

import functools
import http.server
import io
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from pipelines.config import load
from pipelines.core.coverage import shard_of
from pipelines.data.loader import RankBatches, StreamSpec
from pipelines.data.manifest import DataError, read_dataset
from pipelines.train.preflight import check_data


@pytest.fixture(scope="module")
def served(digit_shards):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(digit_shards.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{digit_shards.name}"
    server.shutdown()


def _exact_epoch_keys(shards_path) -> list[str]:
    ds = read_dataset(shards_path)
    spec = StreamSpec(rank=0, world=1, mode="exact", seed=3, shuffle_buffer=100, loader_workers=2)
    batches = RankBatches(ds.domain("image"), spec, ds.resolution, ds.channels, 1).epoch(0)
    return [f"{shard_of(key)}#{key.rsplit('#', 1)[1]}" for batch in batches for key in batch["keys"]]


def test_an_http_shard_folder_reads_like_the_local_one(served, digit_shards):
    remote, local = read_dataset(served + "/"), read_dataset(digit_shards)
    assert remote.domain("image").counts == local.domain("image").counts
    assert remote.domain("image").urls[0] == f"{served}/image-000000.tar"
    assert (remote.resolution, remote.channels) == (local.resolution, local.channels)
    assert sorted(_exact_epoch_keys(served)) == sorted(_exact_epoch_keys(digit_shards))  # 1,797 samples, once each
    assert remote.cache_dir() != local.cache_dir() and local.cache_dir() == digit_shards


def test_a_missing_manifest_or_server_is_a_data_error(served):
    with pytest.raises(DataError, match="cannot read .*/nothing/manifest.json"):
        read_dataset(served.rsplit("/", 1)[0] + "/nothing")
    with pytest.raises(DataError, match="cannot read http://127.0.0.1:9/"):
        read_dataset("http://127.0.0.1:9/shards")


# S3: the session's S3 server (moto's, on 127.0.0.1) and the real AWS CLI, which streams each shard.
def _aws(*args: str) -> None:
    done = subprocess.run(["aws", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def s3_bucket(s3_server, digit_shards):
    """A bucket holding the digit shards; the environment points the AWS CLI at it, as a user's would."""
    _aws("s3", "mb", "s3://ganforge-test")
    _aws("s3", "cp", "--recursive", "--quiet", str(digit_shards), "s3://ganforge-test/digits")
    return "s3://ganforge-test/digits"


def test_an_s3_shard_folder_streams_through_the_aws_cli_like_the_local_one(s3_bucket, digit_shards):
    remote, local = read_dataset(s3_bucket), read_dataset(digit_shards)
    assert remote.domain("image").counts == local.domain("image").counts
    assert remote.domain("image").urls[0] == f"pipe:aws s3 cp {s3_bucket}/image-000000.tar -"
    assert sorted(_exact_epoch_keys(s3_bucket)) == sorted(_exact_epoch_keys(digit_shards))  # 1,797 samples, once each
    assert shard_of(f"{remote.domain('image').urls[3]}#00017") == "image-000003.tar"  # what the coverage report names
    assert remote.cache_dir() != local.cache_dir()


def test_an_unreadable_s3_folder_or_a_missing_tool_is_a_data_error(s3_bucket, monkeypatch):
    with pytest.raises(DataError, match=r"cannot read s3://ganforge-test/nothing/manifest.json \(`aws s3 cp .*exited"):
        read_dataset("s3://ganforge-test/nothing")
    monkeypatch.setenv("GANFORGE_FETCH_S3", "no-such-s3-tool cat {url}")
    with pytest.raises(DataError, match="`no-such-s3-tool` is not installed; s3:// shards are read with"):
        read_dataset(s3_bucket)


# Brace patterns: WebDataset's shard lists, with no manifest.
def test_a_brace_pattern_of_shards_reads_without_a_manifest(digit_shards, s3_bucket):
    local = read_dataset(f"{digit_shards}/image-{{000000..000008}}.tar")
    assert local.estimated_counts and (local.resolution, local.channels) == (16, 1)
    assert local.domain("image").counts == (200,) * 9  # the first shard's size; the last holds 197
    assert local.cache_dir().is_relative_to(Path.home() / ".cache" / "ganforge")  # never a folder named by the pattern
    batches = RankBatches(local.domain("image"), StreamSpec(mode="resampled", shuffle_buffer=100), 16, 1, 32, 3)
    assert [tuple(b["images"].shape) for b in batches.epoch(0)] == [(32, 1, 16, 16)] * 3

    piped = read_dataset(f"pipe:cat {digit_shards}/image-{{000000..000008}}.tar")  # WebDataset's own notation
    assert piped.domain("image").urls[8] == f"pipe:cat {digit_shards}/image-000008.tar"
    assert shard_of(f"{piped.domain('image').urls[8]}#000000007") == "image-000008.tar"
    assert len(list(RankBatches(piped.domain("image"), StreamSpec(mode="resampled"), 16, 1, 32, 2).epoch(0))) == 2

    remote = read_dataset(f"{s3_bucket}/image-{{000000..000002}}.tar")
    assert remote.domain("image").urls[2] == f"pipe:aws s3 cp {s3_bucket}/image-000002.tar -"
    assert (remote.resolution, remote.channels, remote.domain("image").counts) == (16, 1, (200,) * 3)


def test_a_pattern_is_refused_clearly_where_it_cannot_serve(digit_shards, tmp_path):
    with pytest.raises(DataError, match=r"2 of 11 shard files do not exist, e.g. .*image-000009.tar"):
        read_dataset(f"{digit_shards}/image-{{000000..000010}}.tar")
    with tarfile.open(tmp_path / "photos-0.tar", "w") as tar:  # JPEG samples: not what the loader reads
        member = tarfile.TarInfo("000.jpg")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"\xff\xd8\xff"))
    with pytest.raises(DataError, match="photos-0.tar holds no .png sample"):
        read_dataset(f"{tmp_path}/photos-{{0..0}}.tar")
    cfg = load("lsgan", overrides=[f"data.path={digit_shards}/image-{{000000..000008}}.tar", "data.mode=exact"])
    with pytest.raises(DataError, match="data.mode=exact needs each shard's sample count"):
        check_data(cfg)
