"""Discriminator augmentation, in plain PyTorch: every image D sees, real or fake, in every
phase, goes through a differentiable augmentation first, so D cannot simply memorise a small
dataset and G is not taught the augmentations (they never leak: D sees them on both sides).

* ``ADA``: the 'bgc' pipeline of Karras et al. 2020 ("Training Generative Adversarial Networks
  with Limited Data"): x-flip, 90-degree rotations and integer translation (blitting);
  isotropic scaling, rotation, anisotropic scaling and fractional translation (geometric);
  brightness, contrast, luma flip, hue and saturation (colour). Each is applied to each image
  with probability ``p``, which training adapts (``AdaptiveP``) so that D's overfitting
  heuristic r_t = E[sign(D(real))] stays near a target.
* ``DiffAugment``: Zhao et al. 2020's colour, translation and cutout, always on.

Geometric transforms are sampled with ``grid_sample`` (bilinear, reflected at the borders)
at the image's own resolution; NVlabs first upsample 2x with a wavelet low-pass filter to
limit aliasing. Images are (N, C, H, W) in [-1, 1], square, with 1 or 3 channels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)  # the grey axis, homogeneous


def _eye(n: int, batch: int, device: torch.device) -> torch.Tensor:
    return torch.eye(n, device=device).expand(batch, n, n).clone()


def _affine(batch: int, device: torch.device, **entries: torch.Tensor) -> torch.Tensor:
    """A batch of 3x3 homogeneous 2-D transforms from named entries: a, b, c, d, tx, ty in
    [[a, b, tx], [c, d, ty], [0, 0, 1]] (defaults: the identity)."""
    m = _eye(3, batch, device)
    for key, (i, j) in {"a": (0, 0), "b": (0, 1), "tx": (0, 2), "c": (1, 0), "d": (1, 1), "ty": (1, 2)}.items():
        if key in entries:
            m[:, i, j] = entries[key]
    return m


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(theta), torch.sin(theta)
    return _affine(len(theta), theta.device, a=cos, b=-sin, c=sin, d=cos)


def _where(chosen: torch.Tensor, value: torch.Tensor, identity: float) -> torch.Tensor:
    return torch.where(chosen, value, torch.full_like(value, identity))


class ADA(nn.Module):
    """The 'bgc' pipeline at probability ``p`` (a buffer, saved with the engine's state).
    Strengths are NVlabs' defaults: translation up to 1/8 of the image (integer) and N(0, 1/8)
    (fractional), scaling and anisotropy lognormal with log2 std 0.2, rotation up to a full
    turn, brightness N(0, 0.2), contrast lognormal with log2 std 0.5, hue a full turn,
    saturation lognormal with log2 std 1."""

    p: torch.Tensor

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))

    def _chosen(self, n: int, device: torch.device, prob: torch.Tensor | float | None = None) -> torch.Tensor:
        return torch.rand(n, device=device) < (self.p if prob is None else prob)

    def _rotation(self, n: int, device: torch.device) -> torch.Tensor:
        """An arbitrary rotation with the probability that makes one of two happen with p."""
        p_each = 1 - torch.sqrt((1 - self.p).clamp(0, 1))
        theta = _where(self._chosen(n, device, p_each), (torch.rand(n, device=device) * 2 - 1) * math.pi, 0.0)
        return _rotation(-theta)

    def geometric(self, n: int, size: int, device: torch.device) -> torch.Tensor:
        """Per-image inverse transforms (output -> input coordinates, normalised to [-1, 1])."""
        g = _eye(3, n, device)
        flip = torch.floor(torch.rand(n, device=device) * 2) * self._chosen(n, device)
        g = g @ _affine(n, device, a=1 - 2 * flip)
        quarter = torch.floor(torch.rand(n, device=device) * 4) * self._chosen(n, device)
        g = g @ _rotation(quarter * math.pi / 2)
        shift = torch.round((torch.rand(n, 2, device=device) * 2 - 1) * 0.125 * size) * 2 / size  # whole pixels
        shift = shift * self._chosen(n, device)[:, None]
        g = g @ _affine(n, device, tx=-shift[:, 0], ty=-shift[:, 1])
        scale = _where(self._chosen(n, device), torch.exp2(torch.randn(n, device=device) * 0.2), 1.0)
        g = g @ _affine(n, device, a=1 / scale, d=1 / scale)
        g = g @ self._rotation(n, device)  # before the anisotropic scaling ...
        aniso = _where(self._chosen(n, device), torch.exp2(torch.randn(n, device=device) * 0.2), 1.0)
        g = g @ _affine(n, device, a=1 / aniso, d=aniso)
        g = g @ self._rotation(n, device)  # ... and after it
        frac = torch.randn(n, 2, device=device) * 0.125 * 2 * self._chosen(n, device)[:, None]
        return g @ _affine(n, device, tx=-frac[:, 0], ty=-frac[:, 1])

    def color(self, n: int, device: torch.device) -> torch.Tensor:
        """Per-image 4x4 homogeneous colour transforms (applied to RGB values)."""
        c = _eye(4, n, device)
        v = LUMA.to(device)
        brightness = torch.randn(n, device=device) * 0.2 * self._chosen(n, device)
        shift = _eye(4, n, device)
        shift[:, :3, 3] = brightness[:, None]
        c = shift @ c
        contrast = _where(self._chosen(n, device), torch.exp2(torch.randn(n, device=device) * 0.5), 1.0)
        c = torch.diag_embed(torch.stack([contrast, contrast, contrast, torch.ones_like(contrast)], 1)) @ c
        eye, vv = torch.eye(4, device=device), torch.outer(v, v)
        flip = (torch.floor(torch.rand(n, device=device) * 2) * self._chosen(n, device))[:, None, None]
        c = (eye - 2 * vv * flip) @ c  # a Householder reflection of the grey axis
        theta = _where(self._chosen(n, device), (torch.rand(n, device=device) * 2 - 1) * math.pi, 0.0)
        c = _hue_rotation(v, theta) @ c
        saturation = _where(self._chosen(n, device), torch.exp2(torch.randn(n, device=device)), 1.0)
        return (vv + (eye - vv) * saturation[:, None, None]) @ c

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = images.shape
        if float(self.p) <= 0:  # every transform is the identity
            return images
        device = images.device
        g = self.geometric(n, width, device)
        grid = F.affine_grid(g[:, :2, :].to(images.dtype), list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        c = self.color(n, device).to(images.dtype)
        flat = images.reshape(n, channels, height * width)
        if channels == 3:
            flat = c[:, :3, :3] @ flat + c[:, :3, 3:]
        elif channels == 1:  # NVlabs' grey rule: the mean of the RGB rows
            grey = c[:, :3, :].mean(dim=1, keepdim=True)
            flat = flat * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]
        else:
            raise ValueError(f"ADA augments 1- or 3-channel images, got {channels} channels")
        return flat.reshape(n, channels, height, width)


def _hue_rotation(v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rotations by ``theta`` about the unit axis ``v`` (Rodrigues), as 4x4 homogeneous."""
    x, y, z = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    m = _eye(4, len(theta), theta.device)
    rows = [
        [x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s],
        [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s],
        [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c],
    ]
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            m[:, i, j] = value
    return m


class DiffAugment(nn.Module):
    """Zhao et al. 2020: random brightness, saturation and contrast; translation by up to 1/8
    of the image with zero padding; a cutout of half the image's side. On every image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        rand = lambda *shape: torch.rand(n, *shape, device=x.device, dtype=x.dtype)  # noqa: E731
        x = x + (rand(1, 1, 1) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand(1, 1, 1) * 2) + mean
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = (x - mean) * (rand(1, 1, 1) + 0.5) + mean
        return cutout(translate(x, 0.125), 0.5)


def translate(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its side, filling with zeros."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + ty + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device)[None, None, :] + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # the zero border the clamped indices fall on
    index = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero a square of ``ratio`` times the side at a random place in each image."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy + size_y // 2).clamp(-1, h) >= 0) & (ys - cy + size_y // 2 < size_y)
    inside = inside & ((xs - cx + size_x // 2) >= 0) & (xs - cx + size_x // 2 < size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class AdaptiveP:
    """ADA's controller: every ``interval`` steps, p moves by sign(r_t - target) times the
    images seen since, over ``kimg`` thousand (NVlabs: 500 kimg from p = 0 to 1), where
    r_t = E[sign(D(real))] over those steps. p stays in [0, 1]."""

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 500.0):
        self.target, self.interval, self.kimg = target, interval, kimg

    def step(self, p: float, rt: float, images: int) -> float:
        adjust = math.copysign(1.0, rt - self.target) * images / (self.kimg * 1000) if rt != self.target else 0.0
        return min(max(p + adjust, 0.0), 1.0)
