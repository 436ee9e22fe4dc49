"""LSGAN: DCGAN shapes at every resolution, the reference widths, and the a-b-c losses."""

import pytest
import torch

from gan_core.losses import least_squares_d, least_squares_g
from gan_core.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from pipelines.config import load
from pipelines.core.engine import Engine


@pytest.mark.parametrize("resolution", [8, 16, 32, 64, 128])
def test_dcgan_nets_work_at_power_of_two_resolutions(resolution):
    g, d = DCGANGenerator(16, 3, resolution, ngf=8), DCGANDiscriminator(3, resolution, ndf=8)
    images = g(torch.randn(2, 16))
    assert images.shape == (2, 3, resolution, resolution)
    assert images.abs().max() <= 1  # tanh output, the data range
    assert d(images).shape == (2,)


def test_64px_dcgan_has_the_reference_widths():
    g = DCGANGenerator(100, 3, 64, ngf=64)
    widths = [m.out_channels for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert widths == [512, 256, 128, 64, 3]  # Radford et al.: 4x4x1024 scaled to ngf=64


@pytest.mark.parametrize("resolution", [12, 4, 0])
def test_other_resolutions_are_refused(resolution):
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(16, 3, resolution)


def test_least_squares_losses_follow_the_abc_coding():
    real, fake = torch.tensor([1.0, 1.0]), torch.tensor([-1.0, -1.0])
    assert least_squares_d(real, fake, a=-1, b=1) == 0  # perfect D under -1-1-0
    assert least_squares_d(real, fake, a=0, b=1) == pytest.approx(0.5)  # fakes 1 away from a=0
    assert least_squares_g(fake, c=0) == pytest.approx(0.5)
    assert least_squares_g(torch.tensor([1.0]), c=1) == 0


def _engine(overrides=()):
    cfg = load(
        "lsgan", overrides=["model.ngf=8", "model.ndf=8", "model.latent_dim=16", "data.batch_size=8", *overrides]
    )
    return Engine.for_config(cfg, 16, 1, torch.device("cpu")), cfg


def test_lr_g_and_lr_d_reach_their_own_optimizers():
    engine, _ = _engine(["optim.lr_g=3e-4", "optim.lr_d=5e-5"])
    assert engine.learning_rates() == {"lr/G": 3e-4, "lr/D": 5e-5}


def test_bf16_autocast_step_is_finite():
    torch.manual_seed(0)
    engine, _ = _engine(["train.amp=bf16"])
    logs = engine.train_step({"image": torch.rand(8, 1, 16, 16) * 2 - 1})
    assert set(logs) >= {"loss/D", "loss/G"} and all(torch.isfinite(v) for v in logs.values())
