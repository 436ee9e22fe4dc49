"""FIR resampling with StyleGAN2's [1, 3, 3, 1] filter, in plain PyTorch ops (depthwise
convolutions), so the nets run anywhere torch does, without custom CUDA kernels. Zero
padding, as NVlabs' ``upfirdn2d``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fir_kernel(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    """Separable 2-D low-pass kernel, normalised to sum 1."""
    t = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(t, t)
    return k / k.sum()


def _depthwise(kernel: torch.Tensor, x: torch.Tensor, gain: float) -> torch.Tensor:
    # The kernel is symmetric, so convolution and correlation agree (no flip needed).
    return (kernel * gain).to(x.dtype)[None, None].expand(x.shape[1], 1, *kernel.shape)


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    return F.conv2d(F.pad(x, (pad, pad, pad, pad)), _depthwise(kernel, x, gain), groups=x.shape[1])


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """2x: zero insertion then the filter with gain 4, as one transposed depthwise conv."""
    return F.conv_transpose2d(x, _depthwise(kernel, x, 4.0), stride=2, padding=1, groups=x.shape[1])


def downsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter, then keep every second pixel."""
    return F.conv2d(F.pad(x, (1, 1, 1, 1)), _depthwise(kernel, x, 1.0), stride=2, groups=x.shape[1])
