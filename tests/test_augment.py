"""Discriminator augmentation (gan_core/augment.py and the engine's side of it): the identity
at p = 0, differentiable, geometric transforms that stay within the image's values, applied to
every image D sees in every phase; ADA's p rises when D overfits a tiny dataset and falls when
it does not, is logged and checkpointed."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import TINY, tiny_batch, tiny_engine

from gan_core.augment import ADA, AdaptiveP, DiffAugment, cutout, translate
from gan_core.interface import DISCRIMINATOR
from pipelines.config import ConfigError, load


def _images(n=8, channels=3, size=16, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_ada_is_the_identity_at_p_zero():
    pipe, x = ADA(0.0), _images()
    assert torch.equal(pipe(x), x)
    eye3, eye4 = torch.eye(3).expand(8, 3, 3), torch.eye(4).expand(8, 4, 4)
    assert torch.allclose(pipe.geometric(8, 16, x.device), eye3) and torch.allclose(pipe.color(8, x.device), eye4)


@pytest.mark.parametrize("channels", [1, 3])
def test_ada_at_p_one_changes_every_image_and_its_gradients_flow(channels):
    torch.manual_seed(0)
    x = _images(channels=channels).requires_grad_(True)
    y = ADA(1.0)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert all(not torch.allclose(a, b) for a, b in zip(y, x))
    (y.square().sum()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_geometric_transforms_resample_within_the_images_values():
    """Bilinear sampling with reflected borders never leaves [min, max] of the image."""
    torch.manual_seed(1)
    pipe, x = ADA(1.0), _images()
    g = pipe.geometric(8, 16, x.device)
    grid = torch.nn.functional.affine_grid(g[:, :2, :], list(x.shape), align_corners=False)
    y = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6
    # An x-flip alone is exact: a transform that flips maps the image onto its mirror.
    flip = torch.eye(3).expand(1, 3, 3).clone()
    flip[:, 0, 0] = -1
    grid = torch.nn.functional.affine_grid(flip[:, :2, :], [1, 3, 16, 16], align_corners=False)
    mirrored = torch.nn.functional.grid_sample(x[:1], grid, mode="bilinear", align_corners=False)
    assert torch.allclose(mirrored, x[:1].flip(-1), atol=1e-6)


def test_colour_transforms_keep_grey_grey_and_preserve_luma_under_hue():
    torch.manual_seed(2)
    pipe = ADA(1.0)
    c = pipe.color(64, torch.device("cpu"))
    grey = torch.tensor([0.3, 0.3, 0.3, 1.0])
    out = c @ grey
    # Brightness, contrast and a luma flip move grey along the grey axis; hue and saturation fix it.
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)


def test_diffaugment_translates_and_cuts_out():
    torch.manual_seed(3)
    x = torch.ones(16, 1, 16, 16)
    moved = translate(x, 0.125)
    assert ((moved == 0).flatten(1).sum(1) <= 16 * 2 * 2 + 4).all()  # at most 2 rows and 2 columns padded
    holes = cutout(x, 0.5)
    zeros = (holes == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 64).all()  # an 8 x 8 square, clipped at the borders
    y = DiffAugment()(_images().requires_grad_(True))
    assert torch.isfinite(y).all()


def test_the_controller_moves_p_at_nvlabs_speed():
    ada = AdaptiveP(target=0.6, interval=4, kimg=500)
    p = 0.0
    for _ in range(250_000 // 50):  # 250 kimg in steps of 50 images, the heuristic above target
        p = ada.step(p, 0.9, 50)
    assert p == pytest.approx(0.5)  # half way after half of NVlabs' 500 kimg
    for _ in range(300_000 // 50):
        p = ada.step(p, 0.9, 50)
    assert p == 1.0  # and no further
    assert ada.step(0.5, 0.1, 5000) == pytest.approx(0.49) and ada.step(0.0, 0.1, 5000) == 0.0


@pytest.mark.parametrize("gan", sorted(TINY))
def test_every_image_d_sees_is_augmented_in_every_phase(gan, monkeypatch):
    engine = tiny_engine(gan, extra=["aug.kind=ada"])
    seen = []
    monkeypatch.setattr(ADA, "forward", lambda self, images: seen.append(images.shape[0]) or images)
    calls = []
    for name in engine.gan.nets_with(DISCRIMINATOR):
        engine.raw[name].register_forward_hook(lambda m, a, out: calls.append(1))
    steps = 3 if gan == "discogan" else 1  # DiscoGAN's D steps on every 3rd step
    for _ in range(steps):
        engine.train_step(tiny_batch(gan, 0))
    assert len(seen) == len(calls) > 0  # as many pipe calls as D calls: none without it


def _run(engine, batches, steps: int) -> list[float]:
    ps = []
    for i in range(steps):
        logs = engine.train_step(batches[i % len(batches)])
        ps.append(float(logs["aug/p"]))
    return ps


def test_p_rises_when_d_overfits_a_tiny_dataset_and_falls_when_it_does_not():
    # Four images and a fast D: D soon calls every real image real, r_t -> 1 > 0.6.
    fast = ["aug.kind=ada", "aug.kimg=0.5", "optim.lr_d=2e-3"]
    engine = tiny_engine("lsgan", extra=fast)
    torch.manual_seed(0)
    tiny = [{"image": _images(4, 1, 16, seed=1)}]
    ps = _run(engine, tiny, 120)
    assert ps[0] == 0.0 and ps[-1] > 0.3 and engine.augment is not None
    # A D that barely learns on varied images starts at p = 0.5: r_t stays near 0 < 0.6, p falls.
    slow = tiny_engine("lsgan", extra=["aug.kind=ada", "aug.kimg=0.5", "aug.p=0.5", "optim.lr_d=1e-7"])
    varied = [{"image": _images(4, 1, 16, seed=s)} for s in range(50)]
    ps = _run(slow, varied, 60)
    assert ps[0] == 0.5 and ps[-1] < 0.3


def test_p_and_rt_are_logged_and_p_is_checkpointed():
    engine = tiny_engine("stylegan", extra=["aug.kind=ada", "aug.kimg=0.1", "aug.p=0.2"])
    logs = [engine.train_step(tiny_batch("stylegan", i)) for i in range(5)]
    assert all("aug/p" in step for step in logs) and [("aug/rt" in step) for step in logs] == [
        True,
        False,
        False,
        False,
        True,
    ]
    state = engine.state_dict()
    assert state["augment"]["p"] == pytest.approx(engine.augment.p) and engine.augment.p != 0.2
    fresh = tiny_engine("stylegan", extra=["aug.kind=ada"])
    fresh.load_state_dict(state)
    assert fresh.augment.p == pytest.approx(engine.augment.p)


def test_bad_augment_config_is_refused():
    with pytest.raises(ConfigError, match="aug.kind must be one of"):
        load("lsgan", overrides=["aug.kind=mixup"])
    with pytest.raises(ConfigError, match=r"aug.target must be in \[0, 1\]"):
        load("lsgan", overrides=["aug.target=2"])
    assert math.isclose(load("lsgan").aug.target, 0.6) and load("lsgan").aug.kind == "none"
