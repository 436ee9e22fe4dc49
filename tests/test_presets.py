"""Each StyleGAN preset is the NVlabs configuration it names. The table is written here from
stylegan2-ada-pytorch's ``train.py`` (its ``cfg_specs``, and for ``--cfg=auto`` the values its
formulas give at 256 px on one GPU), not recomputed from ganforge's own config; and the loss
follows NVlabs' ``training/loss.py`` where ganforge used to differ (path-length mean, lazy
factor without path-length regularisation)."""

from __future__ import annotations

import math
from importlib import resources

import pytest
import torch
from tiny import tiny_engine

import gan_core
from pipelines.config import load
from pipelines.core.engine import lazy_ratio

# cfg -> (mb, mbstd, channel_base = fmaps * 32768, lrate, gamma, ema kimg, ramp, mapping layers)
NVLABS = {
    "stylegan2": (32, 4, 32768, 0.002, 10.0, 10.0, None, 8),
    "paper256": (64, 8, 16384, 0.0025, 1.0, 20.0, None, 8),
    "auto-256px-1gpu": (16, 4, 16384, 0.0025, 0.8192, 5.0, 0.05, 2),
}
PRESETS = {"stylegan2": None, "paper256": "stylegan-paper256.yaml", "auto-256px-1gpu": "stylegan-ada256.yaml"}


def _load(preset: str | None):
    files = [str(resources.files("pipelines.configs").joinpath(f"presets/{preset}"))] if preset else []
    return load("stylegan", files)


@pytest.mark.parametrize("cfg_name", sorted(NVLABS))
def test_each_preset_is_the_nvlabs_config_it_names(cfg_name):
    mb, mbstd, channel_base, lrate, gamma, ema, ramp, mapping = NVLABS[cfg_name]
    cfg = _load(PRESETS[cfg_name])
    m = cfg.model
    assert (cfg.data.batch_size, m.mbstd_group, m.channel_base, m.mapping_layers) == (mb, mbstd, channel_base, mapping)
    assert cfg.optim.lr_g == cfg.optim.lr_d == lrate
    assert gan_core.get("stylegan")(m, 256, 3).r1_gamma(cfg.data.batch_size) == pytest.approx(gamma)
    assert cfg.train.ema_half_life_kimg == ema and cfg.train.ema_rampup == (ramp or 0.0)
    # What every NVlabs StyleGAN2 config shares.
    assert (m.z_dim, m.w_dim, m.channel_max, m.mapping_lr_mul) == (512, 512, 512, 0.01)
    assert (cfg.optim.beta1, cfg.optim.beta2) == (0.0, 0.99)
    assert (m.r1_every, m.pl_every, m.pl_weight, m.pl_batch_shrink, m.pl_decay) == (16, 4, 2.0, 2, 0.01)
    assert m.style_mixing == 0.9


def test_both_optimizers_keep_the_lazy_factor_without_path_length_regularisation():
    """NVlabs' G_reg_interval is 4 whatever pl_weight is: G's lr and betas keep the 4/5 factor."""
    engine = tiny_engine("stylegan", extra=["model.pl_weight=0", "optim.lr_g=0.002"])
    assert "Gpl" not in [p.name for p in engine.gan.phases]
    assert lazy_ratio(engine.gan, "G") == pytest.approx(4 / 5) and lazy_ratio(engine.gan, "D") == pytest.approx(16 / 17)
    adam = engine.groups["G"].optimizer.param_groups[0]
    assert adam["lr"] == pytest.approx(0.002 * 4 / 5) and adam["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))


def _nvlabs_pl_loss(gan, g, n: int, pl_mean: torch.Tensor, detach: bool = False) -> torch.Tensor:
    """NVlabs' Gpl penalty, written from training/loss.py: the new mean is lerped from the
    batch's lengths without detaching them, and the penalty is measured against it. Draws z,
    G's noise and the projection noise in the order the phase does."""
    z = torch.randn(n, gan.cfg.z_dim)
    img, ws = g(z, mixing=0.0, return_ws=True)
    noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grads.square().sum(2).mean(1).sqrt()
    mean = pl_mean.lerp((lengths.detach() if detach else lengths).mean(), gan.cfg.pl_decay)
    return (lengths - mean).square().mean() * gan.cfg.pl_weight


def test_the_path_length_penalty_differentiates_through_its_mean_as_nvlabs():
    engine = tiny_engine("stylegan", extra=["model.style_mixing=0", "model.pl_decay=0.5"])
    gan, g = engine.gan, engine.raw["G"]
    weight = g.mapping.fcs[0].weight
    batch = {"image": torch.zeros(8, 1, 16, 16)}  # the phase takes len // pl_batch_shrink = 4 latents

    def grad_of(loss: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(loss, weight)[0]

    gan.pl_mean = torch.tensor(0.3)
    torch.manual_seed(7)
    ours = grad_of(gan.path_length({"G": g}, batch, 0).loss / gan.cfg.pl_every)
    torch.manual_seed(7)
    reference = grad_of(_nvlabs_pl_loss(gan, g, 4, torch.tensor(0.3)))
    torch.manual_seed(7)
    detached = grad_of(_nvlabs_pl_loss(gan, g, 4, torch.tensor(0.3), detach=True))
    assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-9)
    assert not torch.allclose(ours, detached, rtol=1e-3)
    assert not gan.pl_mean.requires_grad  # the stored running mean carries no graph
