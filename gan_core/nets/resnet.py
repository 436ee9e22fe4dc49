"""CycleGAN's ResNet generator (Johnson et al. 2016 as used by Zhu et al. 2017): encoder
c7s1-ngf, d(2 ngf), d(4 ngf); a transformer of residual blocks at 1/4 resolution; decoder
u(2 ngf), u(ngf), c7s1-C, tanh. Reflection padding and instance norm without affine
parameters, so convolutions keep their biases (the reference sets use_bias for instance norm).
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def default_blocks(resolution: int) -> int:
    """The reference's choice: resnet_9blocks for 256 px training, resnet_6blocks at 128 px or below."""
    return 9 if resolution >= 256 else 6


class ResnetGenerator(nn.Module):
    def __init__(self, channels: int, resolution: int, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        if resolution % 4 or resolution < 8:
            raise ValueError(
                f"the ResNet generator downsamples twice: resolution must be a multiple of 4 and >= 8, got {resolution}"
            )
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                _norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
