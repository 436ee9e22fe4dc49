"""The learning tests' training runs: the real engine, loop and WebDataset loader, in one
process on one thread. They run in a pool of fresh processes, two at a time: at these sizes a
second thread speeds a step up by a quarter at most, while a second process doubles the work
done. What each run returns is all its test asserts on."""

from __future__ import annotations

import torch
from conftest import invert

from gan_core.metrics import sliced_wasserstein_distance
from gan_core.nets.modes import eval_mode
from pipelines.config import load
from pipelines.core import loop
from pipelines.core.engine import Engine
from pipelines.core.tensors import from_uint8
from pipelines.data.batches import Batches
from pipelines.data.demo import photo_crops
from pipelines.data.loader import RankBatches, StreamSpec
from pipelines.data.manifest import read_dataset

QUIET = ["train.log_every=100", "train.sample_every=100000", "train.checkpoint_every=100000"]
UNCONDITIONAL = {  # steps, overrides, the SWD after training must be below this share of the SWD before
    "lsgan": (400, ["model.ngf=32", "model.ndf=32"], 0.4),
    "stylegan": (
        400,
        # R1 gamma by NVlabs' auto rule and an EMA ramp-up, as the demo config has: config F's
        # gamma 10 is meant for 1024 px
        [
            "model.z_dim=32",
            "model.w_dim=32",
            "model.channel_base=512",
            "model.channel_max=32",
            "data.batch_size=8",
            "model.r1_gamma=-1",
            "train.ema_rampup=0.05",
        ],
        0.5,
    ),
}
TRANSLATION = {
    # The paper's Adam 2e-4 and schedule; lr 6e-4 learnt faster but fell into a wrong mapping
    # for some data orders. On one thread: CycleGAN L1 0.40-0.45 over data orders 0-2 (1.22
    # untranslated); DiscoGAN 0.28-0.31 over orders 0, 1 and 3, but order 2 falls into a
    # wrong mapping (0.79, as on two threads). The tests run order 0.
    "cyclegan": (
        600,
        [
            "model.ngf=16",
            "model.ndf=16",
            "model.n_blocks=2",
            "model.d_layers=2",
            "data.batch_size=8",
            # an identity loss fights a mapping that changes every pixel
            "model.lambda_identity=0",
        ],
    ),
    "discogan": (600, ["model.ngf=16", "model.ndf=16", "data.batch_size=16"]),
}
SECONDS = {"cyclegan": 64, "stylegan": 38, "lsgan": 21, "discogan": 19}  # one thread, 2 cores: longest first


def _train(name, steps, overrides, shards, domains, data_order):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ds = read_dataset(shards)
    cfg = load(name, overrides=[f"train.steps={steps}", *QUIET, *overrides])
    engine = Engine.for_config(cfg, ds.resolution, ds.channels, torch.device("cpu"))
    data = Batches(ds, domains, StreamSpec(mode="resampled", loader_workers=0, seed=data_order), cfg.data.batch_size)
    return engine, lambda: loop.run(cfg, engine, data, loop.CollectingHooks())


def unconditional(name: str, shards: str, data_order: int = 0) -> dict[str, float]:
    """SWD between 500 real digits and as many samples, before and after training."""
    steps, overrides, _ = UNCONDITIONAL[name]
    engine, train = _train(name, steps, overrides, shards, {"image": "image"}, data_order)
    real = from_uint8(
        next(
            iter(
                RankBatches(
                    read_dataset(shards).domain("image"), StreamSpec(mode="exact", loader_workers=0), 16, 1, 500
                ).epoch(0)
            )
        )["images"]
    )

    def swd() -> float:
        with eval_mode(engine.sampling_nets()) as nets:
            fake = engine.gan.generate(nets, len(real), torch.Generator().manual_seed(99))
        return float(sliced_wasserstein_distance(real, fake)["swd"])

    before = swd()
    last = train()
    return {
        "before": before,
        "after": swd(),
        "steps": engine.step,
        "finite": all(torch.isfinite(torch.tensor(v)) for v in last.values()),
    }


def translation(name: str, shards: str, data_order: int = 0) -> dict[str, float]:
    """Mean L1 from G_AB's translations of 64 crops never trained on to their true inverses,
    and the L1 of two baselines: the untranslated crops and a constant grey guess."""
    steps, overrides = TRANSLATION[name]
    engine, train = _train(name, steps, overrides, shards, {"A": "A", "B": "B"}, data_order)
    test = torch.from_numpy(photo_crops(64, 16, seed=3)).permute(0, 3, 1, 2)
    truth = torch.from_numpy(invert(test.numpy())).float() / 127.5 - 1
    test = test.float() / 127.5 - 1
    train()
    with eval_mode(engine.sampling_nets()) as nets:
        translated = engine.gan.translate(nets, test, "AtoB")
    return {
        "l1": (translated - truth).abs().mean().item(),
        "untranslated": (test - truth).abs().mean().item(),
        "grey": truth.abs().mean().item(),
    }


def run(name: str, shards: str, data_order: int = 0) -> dict[str, float]:
    return (unconditional if name in UNCONDITIONAL else translation)(name, shards, data_order)
