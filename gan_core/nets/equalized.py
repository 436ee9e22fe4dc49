"""Layers with the equalised learning rate of Karras et al. (2018): weights are stored as
N(0, 1) and scaled by He's constant at run time, so Adam's per-parameter step sizes treat
every layer alike. ``lr_mul`` slows a layer down (StyleGAN's mapping network uses 0.01)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.nets.resample import blur, fir_kernel

LRELU_GAIN = math.sqrt(2.0)  # keeps activations' second moment through leaky ReLU(0.2)


def bias_lrelu(
    x: torch.Tensor, bias: torch.Tensor | None, gain: float = LRELU_GAIN, clamp: float | None = None
) -> torch.Tensor:
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)
    x = F.leaky_relu(x, 0.2) * gain
    return x.clamp(-clamp, clamp) if clamp is not None else x


class EqualLinear(nn.Module):
    def __init__(
        self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_features), lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight * self.scale, self.bias * self.lr_mul
        if self.activation:
            return bias_lrelu(F.linear(x, weight.to(x.dtype)), bias)
        return F.linear(x, weight.to(x.dtype), bias.to(x.dtype))


class EqualConv2d(nn.Module):
    fir: torch.Tensor  # a buffer

    """k x k conv; ``down`` blurs then strides by 2 (StyleGAN2's discriminator layers)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        bias: bool = True,
        activation: bool = True,
        down: bool = False,
        gain: float = 1.0,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.activation, self.down, self.gain, self.kernel = activation, down, gain, kernel
        self.clamp: float | None = None  # NVlabs' conv_clamp, set under the precision policy
        self.register_buffer("fir", fir_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = (self.weight * self.scale).to(x.dtype)
        if self.down:
            # NVlabs' padding for a [1,3,3,1] filter before a stride-2 k x k conv (k = 1 or 3).
            x = blur(x, self.fir, pad=(self.kernel + 1) // 2)
            x = F.conv2d(x, weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=self.kernel // 2)
        clamp = self.clamp * self.gain if self.clamp is not None else None  # NVlabs scale it by the gain
        if self.activation:
            return bias_lrelu(x, self.bias, LRELU_GAIN * self.gain, clamp)
        if self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1).to(x.dtype)
        x = x * self.gain if self.gain != 1 else x
        return x.clamp(-clamp, clamp) if clamp is not None else x
