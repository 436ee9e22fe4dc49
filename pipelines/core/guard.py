"""The non-finite guard: an optimizer step whose loss or gradients hold NaN or Inf is
skipped (the weights and Adam's moments stay as they were) and counted; ``limit`` skipped
steps in a row mean the run has diverged, and it ends instead of burning its budget.

Gradients are checked after DDP's all-reduce, so every rank sees the same NaN and makes the
same decision (a rank that stepped alone would silently fork the replicas)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipelines.errors import Diverged

__all__ = ["Diverged", "NonFiniteGuard", "all_finite"]


def all_finite(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One device-side flag for many tensors (one host sync when read, not one per tensor)."""
    if not tensors:
        return torch.tensor(True)
    norms = torch._foreach_norm([t.detach().float() for t in tensors])
    return torch.isfinite(torch.stack(norms)).all()


class NonFiniteGuard:
    def __init__(self, limit: int):
        self.limit = limit
        self.skipped = 0  # over the whole run
        self.streak = 0

    def ok(self, loss: torch.Tensor, grads: list[torch.Tensor], where: str) -> bool:
        finite = bool(all_finite([loss, *grads]))
        if finite:
            self.streak = 0
            return True
        self.skipped += 1
        self.streak += 1
        if self.limit and self.streak >= self.limit:
            raise Diverged(
                f"diverged: {self.streak} optimizer steps in a row had a non-finite loss or "
                f"gradient (last: {where}); lower the learning rates or check the data"
            )
        return False
