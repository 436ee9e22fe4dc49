"""Batches as the models take them, in torch alone (no WebDataset), so the training step and
the GPU benchmarks run on a machine with nothing but torch."""

from __future__ import annotations

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255], rounded, as they are saved and compared."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (a new tensor: ``float()`` of uint8 copies)."""
    return images.float().div_(127.5).sub_(1.0)


def to_model_batch(batch: dict, device: torch.device, hflip: bool, generator: torch.Generator | None = None) -> dict:
    """uint8 (N, C, H, W) images per domain -> float in [-1, 1] on ``device``, optionally
    with random h-flips (drawn independently per domain: the domains are unpaired).

    Done after the host->device copy so the copy moves 4x fewer bytes, and the flips before
    the scaling, on a quarter of the bytes (the same result: a flip moves pixels exactly)."""
    out = {}
    for key, images in batch["images"].items():
        image = images.to(device, non_blocking=True)
        if hflip:
            flip = torch.rand(image.shape[0], generator=generator) < 0.5
            image = torch.where(flip.to(device)[:, None, None, None], image.flip(-1), image)
        out[key] = from_uint8(image)
    return out
