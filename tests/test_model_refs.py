"""A trained generator is found by every name a user has for it: the run id, a ``runs:/`` URI
and the registry's ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` (as a search
registers it), in a real MLflow store; each gives the same images for the same seed."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image
from tiny import TINY, tiny_engine

from gan_core.interface import GENERATOR
from pipelines.config.schema import TrackingConfig
from pipelines.core.checkpoint import export_generator
from pipelines.errors import NotFound
from pipelines.inference.model import load_trained
from pipelines.inference.run import sample_images
from pipelines.tune.summary import Trial, register_best


@pytest.fixture
def registered(empty_store, tmp_path):
    """A run whose ``generator`` artifact is a tiny LSGAN's, registered as the search does."""
    engine = tiny_engine("lsgan")
    _, resolution, channels = TINY["lsgan"]
    client = MlflowClient(empty_store)
    run_id = client.create_run(
        client.create_experiment("refs", artifact_location=(tmp_path / "art").as_uri())
    ).info.run_id
    meta = {"gan": "lsgan", "model": asdict(engine.gan.cfg), "resolution": resolution, "channels": channels}
    nets = {n: net for n, net in engine.sampling_nets().items() if n in engine.gan.nets_with(GENERATOR)}
    client.log_artifacts(run_id, str(export_generator(tmp_path / "export", nets, meta)), "generator")
    client.set_terminated(run_id)
    version = register_best(client, "lsgan", Trial("t0", {}, 1.0, 10, "completed", run_id))
    return TrackingConfig(uri=empty_store), run_id, version


def _images(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_run_ids_and_uris_load_the_same_generator(registered, tmp_path):
    tracking, run_id, version = registered
    assert str(version) == "1"
    sources = [run_id, f"runs:/{run_id}/generator", "models:/lsgan-generator@best", "models:/lsgan-generator/1"]
    images = []
    for i, source in enumerate(sources):
        trained = load_trained(source, tracking)
        assert trained.gan.name == "lsgan" and set(trained.nets) == {"G"}
        sample_images(trained, 6, tmp_path / f"out{i}", batch_size=4, seed=3, progress=False)
        images.append(_images(tmp_path / f"out{i}"))
    assert len(images[0]) == 6 and images[0][0].std() > 0
    for other in images[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(images[0], other))
    assert "version 1" in load_trained("models:/lsgan-generator@best", tracking).source


def test_unknown_registry_names_say_where_they_were_looked_up(registered):
    tracking, _, _ = registered
    for uri in ("models:/lsgan-generator@champion", "models:/lsgan-generator/7", "models:/nothing@best"):
        with pytest.raises(NotFound, match=f"no {uri} in the model registry of {tracking.uri}"):
            load_trained(uri, tracking)
    with pytest.raises(NotFound, match="not a registry URI"):
        load_trained("models:/lsgan-generator/latest", tracking)
