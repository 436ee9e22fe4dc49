"""NVlabs' mixed precision for StyleGAN2 (stylegan2-ada-pytorch ``networks.py``): only the
blocks of the ``num_fp16_res`` highest resolutions compute in reduced precision (fp16 there,
fp16 or bf16 here), and every conv's activations are clamped to ``conv_clamp`` (256) so fp16
cannot overflow. Everything else stays float32: the mapping network, the styles and the
demodulation coefficients, the toRGB sum, D's epilogue; and a phase that differentiates
twice (R1, path length) runs in float32 throughout.

Layers that take part carry ``compute_dtype`` (blocks that may run reduced: ``use_fp16``) or
``clamp`` attributes; ``compute_precision`` sets them for one phase and puts float32 back
after it, so sampling, evaluation and the EMA copies always run in float32."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator

import torch
from torch import nn


def fp16_resolution(resolution: int, num_fp16_res: int) -> int:
    """The lowest resolution whose blocks run in reduced precision (NVlabs' formula)."""
    return max(2 ** (int(math.log2(resolution)) + 1 - num_fp16_res), 8)


def _modules(nets: Iterable[nn.Module]) -> Iterator[nn.Module]:
    for net in nets:
        yield from getattr(net, "module", net).modules()  # DDP wraps the net in .module


def set_precision(nets: Iterable[nn.Module], dtype: torch.dtype | None, clamp: float | None) -> None:
    """Reduced-precision blocks compute in ``dtype`` (None: float32); clamped layers clamp at
    ``clamp`` times their gain (None: no clamp)."""
    # setattr: nn.Module's type hints know only tensors and modules as attributes.
    for module in _modules(nets):
        if hasattr(module, "use_fp16"):
            reduced = dtype is not None and module.use_fp16
            setattr(module, "compute_dtype", dtype if reduced else torch.float32)  # noqa: B010
        if hasattr(module, "clamp"):
            setattr(module, "clamp", clamp)  # noqa: B010


@contextlib.contextmanager
def compute_precision(nets: Iterable[nn.Module], dtype: torch.dtype | None, clamp: float | None) -> Iterator[None]:
    nets = list(nets)
    set_precision(nets, dtype, clamp)
    try:
        yield
    finally:
        set_precision(nets, None, None)
