"""CycleGAN, DiscoGAN and StyleGAN end to end: each trains as a real 2-worker Ray Train DDP
job on real two-domain shards, logs its losses and sample grids to a real MLflow store, and
its run is then used by `ganforge sample` / `ganforge translate` (from the MLflow run id and
from the checkpoint path)."""

import io
import json
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from PIL import Image
from spawn_helpers import ray_actors

from pipelines.cli.main import main
from pipelines.config import load
from pipelines.core.checkpoint import load_checkpoint
from pipelines.tracking.models import run_models
from pipelines.train.launch import train

pytestmark = pytest.mark.slow

RUNS = {  # tiny widths, the real architectures; 32 px two-domain demo data
    "cyclegan": ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "data.batch_size=2"],
    "discogan": ["model.ngf=8", "model.ndf=8", "data.batch_size=8"],
    # a one-domain GAN on two-domain shards learns the domain it is told to
    "stylegan": [
        "model.z_dim=32",
        "model.w_dim=32",
        "model.channel_base=256",
        "model.channel_max=32",
        "data.batch_size=4",
        "data.domain=B",
    ],
}
GRID = {"cyclegan": (8, 6), "discogan": (8, 6), "stylegan": (8 + 1, 8)}  # rows x cols of 32 px cells


def _grid_shape(client, run_id, tmp_path):
    files = [a.path for a in client.list_artifacts(run_id, "images")]
    steps = sorted({int(f.split("+")[2]) for f in files if f.endswith(".png")})
    png = next(f for f in files if f.endswith(".png") and f"+{steps[-1]}+" in f)
    image = Image.open(io.BytesIO(open(client.download_artifacts(run_id, png, str(tmp_path)), "rb").read()))
    rows, cols = ((image.height - 2) // 34, (image.width - 2) // 34)  # 32 px cells + 2 px padding
    return steps, (rows, cols), image.mode


@pytest.mark.parametrize("name", sorted(RUNS))
def test_gan_trains_under_ray_and_its_run_is_usable(
    name, digit_domain_shards, ray_local, tmp_path, empty_store, capsys
):
    uri = empty_store
    cfg = load(
        name,
        overrides=[
            f"data.path={digit_domain_shards}",
            "train.workers=2",
            "train.steps=12",
            "train.log_every=6",
            "train.sample_every=6",
            "train.checkpoint_every=12",
            "train.sample_count=64",
            "eval.samples=64",
            *RUNS[name],
            f"tracking.uri={uri}",
            f"tracking.artifact_root={(tmp_path / 'art').as_uri()}",
            f"train.storage_path={tmp_path / 'ray'}",
            f"tracking.register=e2e-{name}",
            "tracking.system_metrics_interval=1",
        ],
    )
    outcome = train(cfg, progress=False)
    assert not ray_actors("DatasetManager")  # no Ray Datasets given: Ray Train's DatasetManager is left out

    client = MlflowClient(uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ganforge.world_size"] == "2"
    assert len(run.data.tags["git_commit"]) == 40  # the code that ran: this checkout's commit
    source = {k: v for k, v in run.data.tags.items() if k.startswith(("mlflow.source.", "mlflow.user"))}
    assert source["mlflow.source.git.commit"] == run.data.tags["git_commit"] and source["mlflow.user"]
    assert source["mlflow.source.name"] == "ganforge" and source["mlflow.source.type"] == "JOB"
    for key in ("loss/G", "loss/D"):
        history = client.get_metric_history(outcome.run_id, key)
        assert [m.step for m in history] == [6, 12] and all(torch.isfinite(torch.tensor(m.value)) for m in history)
    swd = client.get_metric_history(outcome.run_id, "eval/swd")
    assert [m.step for m in swd] == [12] and outcome.metrics["eval/swd"] == swd[-1].value  # at the end, returned
    steps, shape, mode = _grid_shape(client, outcome.run_id, tmp_path)
    assert steps == [6, 12] and shape == GRID[name] and mode == "RGB"

    _check_models_lineage_and_system_metrics(name, client, outcome, tmp_path)
    _use_the_run(name, outcome, uri, digit_domain_shards, tmp_path)
    capsys.readouterr()


def _check_models_lineage_and_system_metrics(name, client, outcome, tmp_path):
    """The generator of the final evaluation is the run's model, registered by --register; the
    shards it read are its dataset inputs; its node's system metrics are in it."""
    run = client.get_run(outcome.run_id)
    (model,) = run_models(client, outcome.run_id)  # one evaluation: at the end
    assert model.tags["ganforge.step"] == "12" and float(model.tags["ganforge.score"]) == outcome.metrics["eval/swd"]
    assert {m.key for m in model.metrics} >= {"eval/swd", "eval/kid_pixels"}
    assert outcome.model == run.data.tags["ganforge.model"] == f"models:/{model.model_id}"
    assert outcome.registered.name == f"e2e-{name}" and outcome.registered.best
    assert client.get_model_version_by_alias(f"e2e-{name}", "best").source == f"models:/{model.model_id}"
    local = Path(client.download_artifacts(outcome.run_id, "checkpoint", str(tmp_path / "ck")))
    assert load_checkpoint(local)["engine"]["step"] == 12
    generators = torch.load(
        next(Path(download_artifacts(model.artifact_location, dst_path=str(tmp_path / "m"))).rglob("generator.pt")),
        weights_only=True,
    )
    assert set(generators) == ({"G"} if name == "stylegan" else {"G_AB", "G_BA"})

    # Evaluated against the training split (these shards hold none out): training inputs alone.
    inputs = {(d.dataset.name, t.value) for d in run.inputs.dataset_inputs for t in d.tags}
    assert inputs == {(f"shards:{d}", "training") for d in (["B"] if name == "stylegan" else ["A", "B"])}
    profile = json.loads(run.inputs.dataset_inputs[0].dataset.profile)
    assert profile["resolution"] == 32 and profile["images"] > 0

    system = [k for k in run.data.metrics if k.startswith("system/")]
    assert any(k.endswith("/cpu_utilization_percentage") for k in system)
    assert any(k.endswith("/system_memory_usage_megabytes") for k in system)
    (node,) = {k.split("/")[1] for k in system}  # one node here: tests/test_cluster_jobs_e2e.py has two
    assert f"ganforge.node.{node}" in run.data.tags


def _use_the_run(name, outcome, uri, shards, tmp_path):
    tracking = ["--tracking-uri", uri, "--no-progress", "--device", "cpu"]
    if name == "stylegan":
        for source in (outcome.run_id, outcome.checkpoint_path):
            out = tmp_path / f"samples-{len(source)}"
            assert main(["sample", source, "--n", "10", "--batch-size", "4", "--out", str(out), *tracking]) == 0
            images = sorted(out.glob("*.png"))
            assert len(images) == 10 and Image.open(images[0]).size == (32, 32)
        assert main(["translate", outcome.run_id, "--src", str(tmp_path), "--out", str(tmp_path / "x"), *tracking]) == 2
        return
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    for i, shard_png in enumerate(sorted((shards.parent / "images" / "B").rglob("*.png"))[:5]):
        Image.open(shard_png).save(src / "nested" / f"{i}.jpg")  # other formats and folders are fine
    (src / "notes.png").write_text("not an image")  # skipped and reported, not fatal
    for source, direction in ((outcome.run_id, "BtoA"), (outcome.checkpoint_path, "AtoB")):
        out = tmp_path / f"translated-{direction}"
        argv = ["translate", source, "--src", str(src), "--out", str(out), "--direction", direction, *tracking]
        assert main(argv) == 0
        written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
        assert written == [f"nested/{i}.png" for i in range(5)]
        assert Image.open(out / "nested" / "0.png").size == (32, 32)
    assert main(["sample", outcome.run_id, "--out", str(tmp_path / "s"), *tracking]) == 2
