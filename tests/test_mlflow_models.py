"""A run's generators are MLflow models, in a real MLflow store: logged at each evaluation as
LoggedModels with their step, metrics and score (through the same ``GeneratorLog`` rank 0
uses), the best one named in the run and registered, found again by every name a user has for
it (run id, ``runs:/``, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``models:/NAME/latest``),
and loaded by MLflow itself as a pyfunc model that returns what ``ganforge sample`` and
``ganforge translate`` write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image
from spawn_helpers import free_port
from tiny import TINY, tiny_engine

from pipelines.config.schema import TrackingConfig
from pipelines.errors import NotFound
from pipelines.inference.model import load_trained
from pipelines.inference.run import sample_images, translate_folder
from pipelines.tracking.models import RUN_MODEL_STEP_TAG, RUN_MODEL_TAG, mark_best, register, run_models
from pipelines.tracking.runs import RunLogger
from pipelines.train.generator_log import GeneratorLog

REFERENCE = "pixels:256:image-holdout-0123456789abcdef"


def _meta(gan: str, engine) -> dict:
    _, resolution, channels = TINY[gan]
    return {"gan": gan, "model": asdict(engine.gan.cfg), "resolution": resolution, "channels": channels}


def _run(client: MlflowClient, tmp_path: Path, name: str = "models") -> str:
    try:
        experiment = client.create_experiment(name, artifact_location=(tmp_path / f"art-{name}").as_uri())
    except Exception:
        experiment = client.get_experiment_by_name(name).experiment_id
    return client.create_run(experiment).info.run_id


def trained_run(uri: str, tmp_path: Path, gan: str, scores: dict[int, float], reference: str = REFERENCE) -> str:
    """A run whose generator was logged at each step of ``scores`` with that eval/swd, the
    weights changing between steps as they do in training; its best model named."""
    client = MlflowClient(uri)
    run_id = _run(client, tmp_path)
    engine = tiny_engine(gan)
    logger = RunLogger(uri, run_id)
    models = GeneratorLog(engine, logger, _meta(gan, engine), "eval/swd", reference)
    for step, swd in scores.items():
        for net in engine.nets.values():  # other weights at every step
            for p in net.parameters():
                p.data.add_(0.01 * step)
        models.log(step, {"eval/swd": swd, "eval/kid_pixels": swd / 10})
    assert logger.flush()
    mark_best(client, run_id)
    client.set_terminated(run_id)
    return run_id


def test_every_evaluation_is_a_logged_model_and_the_best_is_named(empty_store, tmp_path):
    client = MlflowClient(empty_store)
    run_id = trained_run(empty_store, tmp_path, "lsgan", {10: 0.5, 20: 0.2, 30: 0.4})
    models = run_models(client, run_id)
    assert [m.tags["ganforge.step"] for m in models] == ["10", "20", "30"]
    assert all(m.source_run_id == run_id and m.name == "generator" for m in models)
    # Each model carries its evaluation's metrics; the run's curve is logged once per step.
    assert {m.tags["ganforge.step"]: {x.key: x.value for x in m.metrics}["eval/swd"] for m in models} == {
        "10": 0.5,
        "20": 0.2,
        "30": 0.4,
    }
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "eval/swd")] == [
        (10, 0.5),
        (20, 0.2),
        (30, 0.4),
    ]
    tags = client.get_run(run_id).data.tags
    assert tags[RUN_MODEL_TAG] == f"models:/{models[1].model_id}" and tags[RUN_MODEL_STEP_TAG] == "20"
    outputs = client.get_run(run_id).outputs.model_outputs
    assert sorted((o.model_id, o.step) for o in outputs) == sorted(
        (m.model_id, int(m.tags["ganforge.step"])) for m in models
    )
    # A models-from-code model: no pickled object anywhere in it.
    local = Path(mlflow.artifacts.download_artifacts(models[1].artifact_location, dst_path=str(tmp_path / "dl")))
    files = {p.name for p in local.rglob("*") if p.is_file()}
    assert {"MLmodel", "generator_model.py", "generator.pt", "requirements.txt", "input_example.json"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]
    requirements = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("ganforge==") for r in requirements) and any(r.startswith("torch==") for r in requirements)


def test_a_run_without_evaluations_names_its_last_model(empty_store, tmp_path):
    client = MlflowClient(empty_store)
    run_id = _run(client, tmp_path)
    engine = tiny_engine("lsgan")
    logger = RunLogger(empty_store, run_id)
    GeneratorLog(engine, logger, _meta("lsgan", engine), "eval/swd", "").log(50, None)
    best = mark_best(client, run_id)
    assert best is not None and best.tags["ganforge.step"] == "50" and "ganforge.score" not in best.tags


def _pngs(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def test_every_name_loads_the_best_generator_and_pyfunc_returns_what_sample_writes(empty_store, tmp_path, monkeypatch):
    client = MlflowClient(empty_store)
    run_id = trained_run(empty_store, tmp_path, "lsgan", {10: 0.5, 20: 0.2, 30: 0.4})
    registered = register(client, "lsgan-generator", run_id)
    assert (registered.version, registered.best) == ("1", True)
    best_id = client.get_run(run_id).data.tags[RUN_MODEL_TAG].removeprefix("models:/")
    tracking = TrackingConfig(uri=empty_store)
    sources = [run_id, "models:/lsgan-generator@best", "models:/lsgan-generator/1", "models:/lsgan-generator/latest"]
    written = []
    for i, source in enumerate(sources):
        trained = load_trained(source, tracking)
        assert trained.gan.name == "lsgan" and set(trained.nets) == {"G"}
        sample_images(trained, 6, tmp_path / f"out{i}", batch_size=64, seed=3, progress=False)
        written.append(_pngs(tmp_path / f"out{i}"))
    assert written[0].shape == (6, 16, 16) and written[0].std() > 0
    assert all(np.array_equal(written[0], other) for other in written[1:])

    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store)  # models:/ URIs resolve in the tracking store
    model = mlflow.pyfunc.load_model("models:/lsgan-generator@best")
    assert model.metadata.model_id == best_id
    predicted = model.predict(pd.DataFrame({"seed": [3], "n": [6]}))
    assert predicted.dtype == np.uint8 and predicted.shape == (6, 16, 16, 1)
    assert np.array_equal(predicted[..., 0], written[0])  # the same images as `ganforge sample --seed 3`
    # The last step's model differs: the best one is the step-20 one, not the newest.
    newest = run_models(client, run_id)[-1]
    last = mlflow.pyfunc.load_model(newest.artifact_location).predict(pd.DataFrame({"seed": [3], "n": [6]}))
    assert not np.array_equal(last, predicted)


def test_translation_models_take_images_and_a_direction(empty_store, digit_domain_shards, tmp_path):
    run_id = trained_run(empty_store, tmp_path, "cyclegan", {10: 0.3})
    trained = load_trained(run_id, TrackingConfig(uri=empty_store))
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    for i, image in enumerate(inputs):
        Image.fromarray(image).save(src / f"{i}.png")
    translate_folder(trained, src, tmp_path / "out", "BtoA", progress=False)
    written = _pngs(tmp_path / "out")
    model_uri = (
        MlflowClient(empty_store)
        .get_logged_model(MlflowClient(empty_store).get_run(run_id).data.tags[RUN_MODEL_TAG].removeprefix("models:/"))
        .artifact_location
    )
    model = mlflow.pyfunc.load_model(model_uri)
    assert model.metadata.get_params_schema().to_dict()[0]["name"] == "direction"
    assert np.array_equal(model.predict(inputs, params={"direction": "BtoA"}), written)
    assert not np.array_equal(model.predict(inputs), written)  # AtoB by default: the other generator
    with pytest.raises(Exception, match="direction must be one of AtoB, BtoA"):
        model.predict(inputs, params={"direction": "sideways"})


def test_best_moves_only_to_a_better_score_on_the_same_metric_and_reference(empty_store, tmp_path):
    client = MlflowClient(empty_store)
    first = register(client, "g", trained_run(empty_store, tmp_path, "lsgan", {10: 0.3}))
    worse = register(client, "g", trained_run(empty_store, tmp_path, "lsgan", {10: 0.4}))
    elsewhere = register(client, "g", trained_run(empty_store, tmp_path, "lsgan", {10: 0.1}, reference="other"))
    better = register(client, "g", trained_run(empty_store, tmp_path, "lsgan", {10: 0.2}))
    assert [r.best for r in (first, worse, elsewhere, better)] == [True, False, False, True]
    assert "version 1 keeps @best: eval/swd 0.3 <= 0.4" in worse.note
    assert "scored on eval/swd against" in elsewhere.note
    assert str(client.get_model_version_by_alias("g", "best").version) == better.version
    versions = client.search_model_versions("name = 'g'", order_by=["version_number DESC"])
    assert str(versions[0].version) == better.version and versions[0].tags["ganforge.score"] == "0.2"


def test_unknown_registry_names_say_where_they_were_looked_up(empty_store, tmp_path):
    register(MlflowClient(empty_store), "lsgan-generator", trained_run(empty_store, tmp_path, "lsgan", {10: 0.3}))
    tracking = TrackingConfig(uri=empty_store)
    for uri in (
        "models:/lsgan-generator@champion",
        "models:/lsgan-generator/7",
        "models:/nothing@best",
        "models:/nothing/latest",
    ):
        with pytest.raises(NotFound, match=f"no {uri} in the model registry of {tracking.uri}"):
            load_trained(uri, tracking)
    with pytest.raises(NotFound, match="not a registry URI"):
        load_trained("models:/lsgan-generator/newest", tracking)


def test_mlflow_models_serve_answers_invocations(empty_store, tmp_path, monkeypatch):
    """`mlflow models serve --env-manager local` on 127.0.0.1 answers a real HTTP request with
    the images the model returns in-process."""
    client = MlflowClient(empty_store)
    run_id = trained_run(empty_store, tmp_path, "lsgan", {10: 0.3})
    uri = client.get_run(run_id).data.tags[RUN_MODEL_TAG]
    port = free_port()
    # The server runs `uvicorn` by name: the venv's, as an activated venv would find it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": empty_store, "PATH": path}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read()[-3000:]
                assert time.monotonic() < deadline, "the model server did not answer /ping in 90 s"
                time.sleep(0.5)
        body = json.dumps({"dataframe_records": [{"seed": 5, "n": 3}]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = np.asarray(json.loads(response.read())["predictions"], dtype=np.uint8)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
        server.wait(timeout=30)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store)
    local = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"seed": [5], "n": [3]}))
    assert served.shape == (3, 16, 16, 1) and np.array_equal(served, local)
