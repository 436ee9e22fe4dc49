"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, appendix D).

Needs no pretrained network, so it is always available. Each pyramid level compares the
distribution of 7x7 local patches of the two image sets; fine levels measure texture and
detail, the coarsest one overall colour and layout. Smaller is better; like the paper, the
reported values are multiplied by 1e3.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 7


def _binomial(channels: int, device: torch.device) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device)
    k2 = torch.outer(k, k) / 256.0
    return k2.expand(channels, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def laplacian_pyramid(images: torch.Tensor, min_resolution: int = 16) -> list[torch.Tensor]:
    """Band-pass levels from finest to coarsest; the last entry is the low-pass residual."""
    kernel = _binomial(images.shape[1], images.device)
    levels, current = [], images.float()
    while current.shape[-1] > min_resolution:
        down = _blur(current, kernel)[..., ::2, ::2]
        up = torch.zeros_like(current)
        up[..., ::2, ::2] = down
        levels.append(current - _blur(up, kernel) * 4.0)
        current = down
    levels.append(current)
    return levels


def _random_patches(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    n, c, h, w = level.shape
    ys = torch.randint(0, h - PATCH + 1, (n, per_image), generator=generator)
    xs = torch.randint(0, w - PATCH + 1, (n, per_image), generator=generator)
    offsets = torch.arange(PATCH)
    rows = (ys[..., None, None] + offsets[:, None]).to(level.device)  # n, p, 7, 1
    cols = (xs[..., None, None] + offsets[None, :]).to(level.device)  # n, p, 1, 7
    idx = torch.arange(n, device=level.device)[:, None, None, None]
    patches = level.permute(0, 2, 3, 1)[idx, rows, cols]  # n, p, 7, 7, c
    return patches.reshape(n * per_image, PATCH, PATCH, c)


def _normalize(desc: torch.Tensor) -> torch.Tensor:
    # Per channel over all patches and positions, as in the reference: compares shapes of
    # the patch distributions rather than the overall brightness of each level.
    mean = desc.mean(dim=(0, 1, 2), keepdim=True)
    std = desc.std(dim=(0, 1, 2), keepdim=True).clamp_min(1e-8)
    return ((desc - mean) / std).flatten(1)


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    # On CPU, numpy's vectorised sort is about 10x faster than torch.sort (which also builds
    # indices nobody needs here); the sorts are nearly all of SWD's cost.
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def _sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, directions: int, repeats: int, generator: torch.Generator
) -> float:
    total = 0.0
    for _ in range(repeats):
        dirs = torch.randn(directions, a.shape[1], generator=generator).to(a.device)
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        # (directions, patches): each projection is a contiguous row, so the sort runs on
        # contiguous memory (sorting columns of the transposed layout is ~10x slower).
        total += (_sorted_rows(dirs @ a.T) - _sorted_rows(dirs @ b.T)).abs().mean().item()
    return total / repeats


@torch.no_grad()
def sliced_wasserstein_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    patches_per_image: int = 128,
    max_patches: int = 16384,
    directions: int = 128,
    repeats: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """SWD x 1e3 per pyramid level (``swd/<res>``) and their mean (``swd``).

    ``real`` and ``fake`` are (N, C, H, W) images in [-1, 1] of one size; the larger set is
    subsampled so both contribute the same number of patches. Large sets take fewer patches
    per image so a level never holds more than ``max_patches`` descriptors: the cost of the
    sorts grows with that number, and 16k descriptors already pin the distance down well.
    ``repeats`` draws of ``directions`` random projections each: 4 x 128, the reference's.
    """
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"image shapes differ: {tuple(real.shape[1:])} vs {tuple(fake.shape[1:])}")
    if real.shape[-1] < 16:
        raise ValueError("SWD needs images of at least 16x16")
    n = min(real.shape[0], fake.shape[0])
    patches_per_image = max(1, min(patches_per_image, max_patches // n))
    generator = torch.Generator().manual_seed(seed)
    result: dict[str, float] = {}
    levels = zip(laplacian_pyramid(real[:n]), laplacian_pyramid(fake[:n]))
    for level_real, level_fake in levels:
        a = _normalize(_random_patches(level_real, patches_per_image, generator))
        b = _normalize(_random_patches(level_fake, patches_per_image, generator))
        result[f"swd/{level_real.shape[-1]}"] = 1e3 * _sliced_wasserstein(a, b, directions, repeats, generator)
    result["swd"] = sum(result.values()) / len(result)
    return result
