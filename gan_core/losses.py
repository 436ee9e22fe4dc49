"""Adversarial losses, written against discriminator outputs (logits or raw scores)."""

from __future__ import annotations

import torch


def least_squares_d(real_out: torch.Tensor, fake_out: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """LSGAN discriminator loss: 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] (Mao et al. 2017)."""
    return 0.5 * (real_out.float() - b).pow(2).mean() + 0.5 * (fake_out.float() - a).pow(2).mean()


def least_squares_g(fake_out: torch.Tensor, c: float) -> torch.Tensor:
    """LSGAN generator loss: 1/2 E[(D(G(z)) - c)^2]."""
    return 0.5 * (fake_out.float() - c).pow(2).mean()
