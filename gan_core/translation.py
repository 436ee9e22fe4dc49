"""What unpaired two-domain GANs (CycleGAN, DiscoGAN) share: domains A and B, the nets
G_AB, G_BA, D_A, D_B (D_X judges images of domain X), translation, and the sample grid."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from gan_core.interface import GAN, Batch, Nets, discriminator, generator

GRID_ROWS = 8  # examples in a sample grid, one per row
DIRECTIONS = ("AtoB", "BtoA")


class TranslationGAN(GAN):
    domains = ("A", "B")
    grid_reals = GRID_ROWS
    groups = {"G": generator("G_AB", "G_BA"), "D": discriminator("D_A", "D_B")}

    def fixed_inputs(self, n: int, generator: torch.Generator, reals: Batch) -> dict[str, torch.Tensor]:
        del generator
        rows = min(n, GRID_ROWS, len(reals["A"]), len(reals["B"]))
        return {"A": reals["A"][:rows], "B": reals["B"][:rows]}

    @torch.no_grad()
    def sample_grid(self, nets: Nets, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One row per example: real A | fake B | reconstructed A | real B | fake A | reconstructed B."""
        real_a, real_b = inputs["A"], inputs["B"]
        fake_b, fake_a = nets["G_AB"](real_a), nets["G_BA"](real_b)
        columns = [real_a, fake_b, nets["G_BA"](fake_b), real_b, fake_a, nets["G_AB"](fake_a)]
        return torch.stack([c.float() for c in columns], dim=1)

    @torch.no_grad()
    def translate(self, nets: Nets, images: torch.Tensor, direction: str) -> torch.Tensor:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        return nets["G_AB" if direction == "AtoB" else "G_BA"](images)
