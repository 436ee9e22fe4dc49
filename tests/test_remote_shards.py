"""Shards served over HTTP (any web server or object store in front of a shard folder) read
exactly like a local folder: the same domains and counts, and an exact epoch streams every
sample once. A server that is down or serves no manifest is a clear data error."""

import functools
import http.server
import threading

import pytest

from pipelines.data.loader import RankBatches, StreamSpec
from pipelines.data.manifest import DataError, read_dataset


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
    return [key.split("/")[-1] for batch in batches for key in batch["key"]]


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
