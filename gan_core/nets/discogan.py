"""DiscoGAN's nets (Kim et al. 2017; SKTBrain/DiscoGAN ``model.py``), at any power-of-two size.

Generator: a conv encoder (4x4 stride-2 convs, batch norm, LeakyReLU 0.2) down to a 4x4
bottleneck, optionally squeezed further to a 1x1 code (the reference's ``extra_layers``, 100
wide), and a mirrored transposed-conv decoder (batch norm, ReLU). At 64 px this is the
reference's 64-128-256-512 encoder exactly. The reference ends in a sigmoid for images in
[0, 1]; ganforge keeps images in [-1, 1], so it ends in 2 * sigmoid - 1: the reference's
output exactly, mapped to [-1, 1] (a tanh would be a sigmoid of twice the input).

Discriminator: the same encoder and a 4x4 valid conv to one logit; it also returns the
activations of its normalised layers, which the generator's feature-matching loss compares.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_core.nets.dcgan import check_resolution, stage_widths


def _down(w_in: int, w_out: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False)]
    return layers + ([nn.BatchNorm2d(w_out)] if norm else []) + [nn.LeakyReLU(0.2, inplace=True)]


def _up(w_in: int, w_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU(True)]


class SigmoidOutput(nn.Module):
    """The reference's sigmoid output, in [-1, 1]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * 2 - 1


class DiscoGenerator(nn.Module):
    def __init__(self, channels: int, resolution: int, ngf: int = 64, code: int = 0):
        super().__init__()
        widths = list(reversed(stage_widths(ngf, check_resolution(resolution))))  # ngf, ..., widest (at 4x4)
        layers = _down(channels, widths[0], norm=False)
        for w_in, w_out in zip(widths, widths[1:]):
            layers += _down(w_in, w_out, norm=True)
        if code:  # 4x4 -> 1x1 code -> 4x4
            layers += [
                nn.Conv2d(widths[-1], code, 4, 1, 0, bias=False),
                nn.BatchNorm2d(code),
                nn.LeakyReLU(0.2, True),
                nn.ConvTranspose2d(code, widths[-1], 4, 1, 0, bias=False),
                nn.BatchNorm2d(widths[-1]),
                nn.ReLU(True),
            ]
        back = list(reversed(widths))
        for w_in, w_out in zip(back, back[1:]):
            layers += _up(w_in, w_out)
        layers += [nn.ConvTranspose2d(back[-1], channels, 4, 2, 1, bias=False), SigmoidOutput()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DiscoDiscriminator(nn.Module):
    """Returns (one logit per image, [activations of every normalised layer])."""

    def __init__(self, channels: int, resolution: int, ndf: int = 64):
        super().__init__()
        widths = list(reversed(stage_widths(ndf, check_resolution(resolution))))
        self.stem = nn.Sequential(*_down(channels, widths[0], norm=False))
        self.blocks = nn.ModuleList(nn.Sequential(*_down(a, b, norm=True)) for a, b in zip(widths, widths[1:]))
        self.head = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(x)
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.head(x).flatten(), features
