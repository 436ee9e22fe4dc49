"""CycleGAN, DiscoGAN and StyleGAN end to end: each trains as a real 2-worker Ray Train DDP
job on real two-domain shards, logs its losses and sample grids to a real MLflow store, and
its run is then used by `ganforge sample` / `ganforge translate` (from the MLflow run id and
from the checkpoint path)."""

import io

import pytest
import torch
from mlflow import MlflowClient
from PIL import Image
from spawn_helpers import ray_actors

from pipelines.cli.main import main
from pipelines.config import load
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

    generators = torch.load(
        client.download_artifacts(outcome.run_id, "generator/generator.pt", str(tmp_path / "g")), weights_only=True
    )
    assert set(generators) == ({"G"} if name == "stylegan" else {"G_AB", "G_BA"})
    _use_the_run(name, outcome, uri, digit_domain_shards, tmp_path)
    capsys.readouterr()


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
