"""The tracking relay: rank 0's MLflow calls carried through an actor on the driver's node,
for a server that listens on loopback. Real Ray, a real MLflow store."""

import numpy as np
import pytest
import ray
from mlflow import MlflowClient
from PIL import Image

from pipelines.config.schema import TrackingConfig
from pipelines.tracking.relay import RelayClient, TrackingRelay, needs_relay, start_relay
from pipelines.tracking.runs import RunLogger, start_run


@pytest.mark.parametrize(
    "uri, relayed",
    [
        ("http://127.0.0.1:5000", True),
        ("http://localhost:5000", True),
        ("https://[::1]:5000/mlflow", True),
        ("http://10.0.3.7:5000", False),  # a private address every node may reach: direct
        ("https://mlflow.example.org", False),
        ("sqlite:////tmp/mlflow.db", False),
        ("databricks", False),
        ("/tmp/mlruns", False),
    ],
)
def test_only_a_server_on_loopback_is_relayed(uri, relayed):
    assert needs_relay(uri) is relayed


def test_the_relay_runs_on_the_drivers_node(ray_local):
    assert start_relay("sqlite:////tmp/unused.db") is None
    relay = start_relay("http://127.0.0.1:9")  # no server is needed until a call is relayed
    assert ray.get(relay.node.remote()) == ray.get_runtime_context().get_node_id()
    ray.kill(relay)


def test_metrics_images_tags_and_staged_artifact_folders_arrive_through_the_relay(ray_local, tmp_path, empty_store):
    uri = empty_store
    tracking = TrackingConfig(uri=uri, artifact_root=(tmp_path / "art").as_uri())
    run_id = start_run(tracking, "lsgan", {"optim.lr_g": 2e-4}, {})
    relay = ray.remote(TrackingRelay).options(num_cpus=0).remote(uri)
    staging = tmp_path / "storage" / "staging"
    logger = RunLogger(uri, run_id, RelayClient(relay, str(staging)))

    for step in (10, 20):
        logger.metrics(step, {"loss/D": step / 10, "loss/G": -step / 10})
    pixels = np.arange(12 * 8 * 3, dtype=np.uint8).reshape(12, 8, 3)
    logger.image(20, Image.fromarray(pixels))
    logger.tags({"ganforge.nodes": "2"})
    folder = tmp_path / "checkpoint"
    (folder / "nets").mkdir(parents=True)
    (folder / "state.pt").write_bytes(b"\x00\x01weights")
    (folder / "nets" / "G.json").write_text('{"ngf": 16}')
    logger.artifacts(folder, "checkpoint")
    assert logger.flush(timeout=60)

    client = MlflowClient(uri)
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss/D")] == [(10, 1.0), (20, 2.0)]
    assert client.get_run(run_id).data.tags["ganforge.nodes"] == "2"
    files = {a.path for a in client.list_artifacts(run_id, "checkpoint")}
    assert files == {"checkpoint/state.pt", "checkpoint/nets"}
    client.download_artifacts(run_id, "checkpoint", str(tmp_path / "back"))
    assert (tmp_path / "back" / "checkpoint" / "state.pt").read_bytes() == b"\x00\x01weights"
    assert (tmp_path / "back" / "checkpoint" / "nets" / "G.json").read_text() == '{"ngf": 16}'
    images = [a.path for a in client.list_artifacts(run_id, "images")]
    png = [p for p in images if p.endswith(".png")]
    assert len(png) == 1, images
    local_png = client.download_artifacts(run_id, png[0], str(tmp_path / "img"))
    assert np.array_equal(np.asarray(Image.open(local_png)), pixels)  # lossless
    assert not list(staging.iterdir())  # the files went by storage, and no copy stays there
    ray.kill(relay)
