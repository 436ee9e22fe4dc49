"""The PatchGAN discriminator of pix2pix / CycleGAN: ``n_layers`` stride-2 4x4 convs, then
two stride-1 4x4 convs, giving a map of scores, one per overlapping patch. With 3 layers each
score sees a 70x70 patch. Instance norm (none on the first layer), LeakyReLU 0.2."""

from __future__ import annotations

import torch
from torch import nn


def receptive_field(n_layers: int) -> int:
    """Side of the input patch one output score sees (70 for the default 3 layers)."""
    field = 1
    for stride in reversed([2] * n_layers + [1, 1]):  # walk back from one output score
        field = (field - 1) * stride + 4
    return field


def min_resolution(n_layers: int) -> int:
    # n stride-2 convs halve the size, then two stride-1 4x4 convs (padding 1) each take 1 off.
    return 3 * 2**n_layers


class PatchDiscriminator(nn.Module):
    def __init__(self, channels: int, resolution: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        if resolution < min_resolution(n_layers):
            raise ValueError(
                f"a {n_layers}-layer PatchGAN needs images of at least {min_resolution(n_layers)} px, "
                f"got {resolution}; use fewer layers (model.d_layers)"
            )
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            width = out
        layers += [nn.Conv2d(width, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
