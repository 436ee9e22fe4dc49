"""DCGAN generator and discriminator (Radford et al. 2016) at any power-of-two resolution.

Both nets work on a 4x4 base: the generator projects z to 4x4 with a transposed conv and
doubles the size until the target, halving channels; the discriminator mirrors it. The
widest layer is capped at 8 x the base width, which reproduces the 64-px DCGAN exactly
(ngf*8 at 4x4 ... ngf at 32x32) and keeps higher resolutions affordable.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_WIDTH_MULT = 8


def check_resolution(resolution: int, minimum: int = 8) -> int:
    """Number of 2x up/down-samplings between 4x4 and ``resolution``; rejects other sizes."""
    if resolution < minimum or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= {minimum}, got {resolution}")
    return int(math.log2(resolution)) - 2


def stage_widths(base: int, n_doublings: int) -> list[int]:
    """Channel widths from the 4x4 end outwards: base * 2^(n-1), ..., base * 2, base."""
    return [base * min(2**i, MAX_WIDTH_MULT) for i in reversed(range(n_doublings))]


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, resolution: int, ngf: int = 64):
        super().__init__()
        widths = stage_widths(ngf, check_resolution(resolution))
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.latent_dim = latent_dim
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Returns one raw score per image (no sigmoid: the loss decides how to read it)."""

    def __init__(self, channels: int, resolution: int, ndf: int = 64):
        super().__init__()
        widths = list(reversed(stage_widths(ndf, check_resolution(resolution))))
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [
                nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
