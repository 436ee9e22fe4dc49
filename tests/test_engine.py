"""The shared training step: EMA, lazy-regularisation rescaling and the learning-rate
schedule. (Checkpoint round trips and DDP are tested for every GAN in test_gans.py.)"""

import pytest
import torch

from gan_core.interface import Phase
from pipelines.config import load
from pipelines.core.engine import Engine, lazy_ratio, lr_factor

OVERRIDES = ["model.ngf=8", "model.ndf=8", "model.latent_dim=16"]


def _engine(extra=()):
    cfg = load("lsgan", overrides=[*OVERRIDES, "data.batch_size=8", *extra])
    return Engine.for_config(cfg, 16, 1, torch.device("cpu")), cfg


def _batch(seed):
    return {"image": torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1}


def test_ema_trails_the_generator():
    torch.manual_seed(0)
    engine, _ = _engine(["train.ema_half_life_kimg=0.001"])  # beta = 0.5 ** (8 / 1) ~ 0.004: fast
    start = [p.clone() for p in engine.ema["G"].parameters()]
    for i in range(3):
        engine.train_step(_batch(i))
    moved = [not torch.equal(p, s) for p, s in zip(engine.ema["G"].parameters(), start)]
    assert any(moved)
    assert engine.sampling_nets()["G"] is engine.ema["G"]
    assert all(not p.requires_grad for p in engine.ema["G"].parameters())


def test_lazy_regulariser_rescales_its_group():
    gan = _engine()[0].gan
    phases = (
        Phase("D", "D", gan.discriminator_loss),
        Phase("D_reg", "D", gan.discriminator_loss, every=16, lazy=True),
        Phase("G", "G", gan.generator_loss),
    )
    gan.phases = phases
    assert lazy_ratio(gan, "D") == pytest.approx(16 / 17)
    assert lazy_ratio(gan, "G") == 1.0


def test_ema_ramp_up_shortens_the_early_half_life():
    engine, _ = _engine(["train.ema_half_life_kimg=10", "train.ema_rampup=0.05"])
    early = engine.ema_beta()  # half-life 0.05 x 8 images at step 0
    engine.step = 100_000  # ramp over: the configured 10 kimg
    assert early == pytest.approx(0.5 ** (8 / 0.4))
    assert engine.ema_beta() == pytest.approx(0.5 ** (8 / 10_000))


def test_lr_is_constant_then_decays_linearly_to_zero():
    assert [lr_factor(s, 100, 0.5) for s in (0, 49, 50, 75, 100)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    assert lr_factor(99, 100, 1.0) == 1.0  # decay_from 1: constant
    engine, _ = _engine(["optim.lr_decay_from=0.5", "train.steps=10", "optim.lr_g=1e-3", "optim.lr_d=1e-3"])
    rates = []
    for i in range(10):
        engine.train_step(_batch(i))
        rates.append(engine.learning_rates()["lr/G"])
    assert rates[:5] == [1e-3] * 5 and rates[5:] == sorted(rates[5:], reverse=True) and rates[-1] < 3e-4


def test_set_learning_rates_moves_both_groups_and_survives_the_schedule():
    engine, _ = _engine()
    engine.set_learning_rates(lr_g=1e-3, lr_d=5e-5)
    engine.train_step(_batch(0))
    assert engine.learning_rates() == {"lr/G": 1e-3, "lr/D": 5e-5}


def test_the_gpu_fast_path_is_off_by_default_on_cpu():
    engine, _ = _engine()
    assert engine.amp == "off" and engine.memory_format is torch.contiguous_format
    convs = [p for p in engine.raw["D"].parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs)


def test_channels_last_trains_the_same_nets_in_nhwc():
    results = {}
    for layout in ("off", "on"):
        torch.manual_seed(0)
        engine, _ = _engine([f"train.channels_last={layout}"])
        logs = [engine.train_step(_batch(i)) for i in range(3)]
        results[layout] = (logs, engine.raw["G"].state_dict())
    convs = [p for p in _engine(["train.channels_last=on"])[0].raw["D"].parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not all(p.is_contiguous() for p in convs)  # really NHWC, not weights that are both
    (logs_nchw, g_nchw), (logs_nhwc, g_nhwc) = results["off"], results["on"]
    for a, b in zip(logs_nchw, logs_nhwc):
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)
    assert all(torch.allclose(g_nchw[k].float(), g_nhwc[k].float(), rtol=1e-3, atol=1e-5) for k in g_nchw)
