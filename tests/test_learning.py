"""LSGAN learns: on real handwritten digits, the sliced Wasserstein distance between samples
and data falls clearly below the untrained generator's. Runs the real engine, loop and
WebDataset loader in one process (the Ray wrapper is tested end to end elsewhere)."""

import torch

import gan_core
from gan_core.metrics import sliced_wasserstein_distance
from pipelines.config import load, to_dict
from pipelines.data.batches import Batches
from pipelines.data.loader import RankBatches, StreamSpec
from pipelines.data.manifest import read_dataset
from pipelines.train import loop
from pipelines.train.engine import Engine

STEPS = 400


def _swd_to_data(engine, real):
    z = engine.gan.fixed_inputs(len(real), torch.Generator().manual_seed(99), {})["z"]
    g = engine.raw["G"].eval()
    with torch.no_grad():
        fake = g(z)
    g.train()
    return sliced_wasserstein_distance(real, fake)["swd"]


def test_lsgan_learns_the_digit_distribution(digit_shards):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    ds = read_dataset(digit_shards)
    cfg = load("lsgan", overrides=[f"train.steps={STEPS}", "model.ngf=32", "model.ndf=32",
                                   "train.log_every=100", "train.sample_every=100000", "train.checkpoint_every=100000"])
    engine = Engine(gan_core.get("lsgan")(cfg.model, ds.resolution, ds.channels), cfg.optim, cfg.train,
                    torch.device("cpu"), cfg.data.batch_size)
    data = Batches(ds, {"image": "image"}, StreamSpec(mode="resampled", loader_workers=0), cfg.data.batch_size)
    real = torch.cat([b["image"] for b in RankBatches(ds.domain("image"), StreamSpec(mode="exact", loader_workers=0),
                                                      ds.resolution, ds.channels, 500).epoch(0)][:1])
    real = real.float() / 127.5 - 1

    before = _swd_to_data(engine, real)
    hooks = loop.CollectingHooks()
    last = loop.run(cfg, to_dict(cfg), engine, data, hooks)
    after = _swd_to_data(engine, real)

    assert engine.step == STEPS and [s for s, _ in hooks.logs][-1] == STEPS
    assert all(torch.isfinite(torch.tensor(v)) for _, m in hooks.logs for v in m.values())
    assert last["perf/images_per_sec"] > 0
    assert after < 0.4 * before, f"SWD {before:.1f} -> {after:.1f}: the generator did not learn"
