"""Tiny configurations of every registered GAN, for fast CPU tests of the real code paths."""

from __future__ import annotations

import torch

import gan_core
from pipelines.config import load
from pipelines.core.engine import Engine

# GAN -> (overrides, resolution, channels). Small widths, the real architectures.
TINY = {
    "lsgan": (["model.ngf=8", "model.ndf=8", "model.latent_dim=16"], 16, 1),
    "stylegan": (["model.z_dim=32", "model.w_dim=32", "model.channel_base=256", "model.channel_max=32"], 16, 1),
    "cyclegan": (["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "model.d_layers=2"], 16, 3),
    "discogan": (["model.ngf=8", "model.ndf=8"], 16, 3),
}
BATCH = 4


def tiny_engine(name: str, extra=(), batch_size: int = BATCH) -> Engine:
    overrides, resolution, channels = TINY[name]
    cfg = load(name, overrides=[*overrides, f"data.batch_size={batch_size}", *extra])
    return Engine.for_config(cfg, resolution, channels, torch.device("cpu"))


def tiny_batch(name: str, seed: int, batch_size: int = BATCH) -> dict[str, torch.Tensor]:
    _, resolution, channels = TINY[name]
    g = torch.Generator().manual_seed(seed)
    domains = gan_core.get(name).domains
    return {d: torch.rand(batch_size, channels, resolution, resolution, generator=g) * 2 - 1 for d in domains}
