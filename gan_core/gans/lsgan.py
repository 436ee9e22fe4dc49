"""LSGAN (Mao et al. 2017): DCGAN nets trained with least-squares losses.

The a-b-c coding sets the targets: D pushes fakes to ``a`` and reals to ``b``, G pushes fakes
to ``c``. The default 0-1-1 coding is the one used in practice; -1-1-0 (a=-1, b=1, c=0)
satisfies b - c = 1, b - a = 2, the condition under which the objective minimises the
Pearson chi^2 divergence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from gan_core.interface import (
    GAN,
    REAL_SIGN,
    Batch,
    Nets,
    Phase,
    PhaseResult,
    discriminator,
    generator,
    square_grid,
)
from gan_core.losses import least_squares_d, least_squares_g
from gan_core.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_core.nets.init import dcgan_init
from gan_core.registry import register


@dataclass
class LSGANConfig:
    latent_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    a: float = 0.0  # target of D for fakes
    b: float = 1.0  # target of D for reals
    c: float = 1.0  # target of G for fakes

    def __post_init__(self) -> None:
        if self.b == self.a:
            raise ValueError("model.a and model.b must differ: D cannot tell reals from fakes")
        for key in ("latent_dim", "ngf", "ndf"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")


@register
class LSGAN(GAN):
    name = "lsgan"
    Config = LSGANConfig
    groups = {"G": generator("G"), "D": discriminator("D")}
    ema_nets = ("G",)

    def declare_phases(self) -> tuple[Phase, ...]:
        return Phase("D", "D", self.discriminator_loss), Phase("G", "G", self.generator_loss)

    def build_nets(self):
        cfg: LSGANConfig = self.cfg
        nets = {
            "G": DCGANGenerator(cfg.latent_dim, self.channels, self.resolution, cfg.ngf),
            "D": DCGANDiscriminator(self.channels, self.resolution, cfg.ndf),
        }
        for net in nets.values():
            dcgan_init(net)
        return nets

    def _latents(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.cfg.latent_dim, device=like.device)

    def discriminator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        real = batch["image"]
        with torch.no_grad():
            fake = nets["G"](self._latents(real.shape[0], real))
        real_out, fake_out = nets["D"](real), nets["D"](fake)
        loss = least_squares_d(real_out, fake_out, self.cfg.a, self.cfg.b)
        logs = {"loss/D": loss.detach(), "D/real": real_out.detach().mean(), "D/fake": fake_out.detach().mean()}
        logs[REAL_SIGN] = torch.sign(real_out.detach() - (self.cfg.a + self.cfg.b) / 2).mean()  # boundary: midway
        return PhaseResult(loss, logs)

    def generator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        real = batch["image"]
        loss = least_squares_g(nets["D"](nets["G"](self._latents(real.shape[0], real))), self.cfg.c)
        return PhaseResult(loss, {"loss/G": loss.detach()})

    def fixed_inputs(self, n: int, generator: torch.Generator, reals: Batch) -> dict[str, torch.Tensor]:
        del reals
        return {"z": torch.randn(n, self.cfg.latent_dim, generator=generator)}

    @torch.no_grad()
    def generate(self, nets: Nets, n: int, generator: torch.Generator) -> torch.Tensor:
        g = nets["G"]
        z = torch.randn(n, self.cfg.latent_dim, generator=generator)
        return g(z.to(next(g.parameters()).device))

    @torch.no_grad()
    def sample_grid(self, nets: Nets, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return square_grid(nets["G"](inputs["z"]))
