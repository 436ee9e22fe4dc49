"""StyleGAN in its StyleGAN2 form (Karras et al. 2020), trained as NVlabs' stylegan2-ada does.

Phases, in NVlabs' order: ``Gmain`` (non-saturating logistic loss, with style mixing),
``Gpl`` (path-length regularisation, every 4 steps, lazy), ``Dmain`` (logistic loss on reals
and fakes) and ``Dr1`` (R1 gradient penalty on reals, every 16 steps, lazy). Lazy phases
multiply their loss by their interval, and the engine rescales lr and betas by k/(k+1).
The engine keeps an EMA copy of G, which samples and exports use.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

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
from gan_core.nets.precision import compute_precision
from gan_core.nets.stylegan2 import StyleDiscriminator, StyleGenerator
from gan_core.registry import register

TRUNCATION_ROW = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)


@dataclass
class StyleGANConfig:
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channel_base: int = 32768  # width at resolution r: min(channel_base / r, channel_max)
    channel_max: int = 512
    mbstd_group: int = 4
    r1_gamma: float = 10.0  # config F's; < 0: NVlabs' "auto" rule 0.0002 * resolution^2 / global batch
    r1_every: int = 16
    pl_weight: float = 2.0  # 0 turns path-length regularisation off
    pl_every: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9
    w_avg_beta: float = 0.995
    # NVlabs' mixed precision: under train.amp, only the blocks of the num_fp16_res highest
    # resolutions compute in reduced precision, with activations clamped at conv_clamp (0: off).
    num_fp16_res: int = 4
    conv_clamp: float = 256.0

    def __post_init__(self) -> None:
        for key in (
            "z_dim",
            "w_dim",
            "mapping_layers",
            "channel_base",
            "channel_max",
            "mbstd_group",
            "r1_every",
            "pl_every",
            "pl_batch_shrink",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        if self.num_fp16_res < 0 or self.conv_clamp < 0:
            raise ValueError("model.num_fp16_res and model.conv_clamp must be >= 0")
        if self.mapping_lr_mul <= 0 or self.pl_weight < 0:
            raise ValueError("model.mapping_lr_mul must be > 0 and model.pl_weight >= 0")
        for key in ("style_mixing", "pl_decay", "w_avg_beta"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"model.{key} must be in [0, 1], got {getattr(self, key)}")


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@register
class StyleGAN(GAN):
    name = "stylegan"
    Config = StyleGANConfig
    groups = {"G": generator("G"), "D": discriminator("D")}
    ema_nets = ("G",)
    tf32 = False  # NVlabs' --allow-tf32 defaults to false

    def __init__(self, cfg: StyleGANConfig, resolution: int, channels: int):
        super().__init__(cfg, resolution, channels)
        self.pl_mean = torch.zeros(())

    def declare_phases(self) -> tuple[Phase, ...]:
        """NVlabs' phases; the lazy regularisers only where their weights are on."""
        cfg: StyleGANConfig = self.cfg
        phases = [Phase("Gmain", "G", self.generator_loss)]
        if cfg.pl_weight > 0:
            phases.append(Phase("Gpl", "G", self.path_length, every=cfg.pl_every, lazy=True, double_backward=True))
        phases.append(Phase("Dmain", "D", self.discriminator_loss))
        if cfg.r1_gamma != 0:
            phases.append(Phase("Dr1", "D", self.r1, every=cfg.r1_every, lazy=True, double_backward=True))
        return tuple(phases)

    def lazy_intervals(self) -> dict[str, int]:
        """NVlabs' G_reg_interval and D_reg_interval: both optimizers keep their k / (k + 1)
        factor even where a regulariser's weight is 0 and its phase is not run."""
        return {"G": self.cfg.pl_every, "D": self.cfg.r1_every}

    def build_nets(self):
        c: StyleGANConfig = self.cfg
        return {
            "G": StyleGenerator(
                c.z_dim,
                c.w_dim,
                self.resolution,
                self.channels,
                c.channel_base,
                c.channel_max,
                c.mapping_layers,
                c.mapping_lr_mul,
                c.w_avg_beta,
                c.num_fp16_res,
            ),
            "D": StyleDiscriminator(
                self.resolution, self.channels, c.channel_base, c.channel_max, c.mbstd_group, c.num_fp16_res
            ),
        }

    def precision(self, nets: Nets, dtype: torch.dtype | None, phase: Phase) -> contextlib.AbstractContextManager:
        """NVlabs' policy (``gan_core/nets/precision.py``) where the run asks for reduced
        precision; R1 and path length, which differentiate twice, run in float32 (with the
        same clamps, so D and G compute the same function in every phase)."""
        if dtype is None:
            return contextlib.nullcontext()
        clamp = self.cfg.conv_clamp or None
        return compute_precision(nets.values(), None if phase.double_backward else dtype, clamp)

    def _z(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.cfg.z_dim, device=like.device)

    def r1_gamma(self, batch_size: int) -> float:
        if self.cfg.r1_gamma >= 0:
            return self.cfg.r1_gamma
        return 0.0002 * self.resolution**2 / (batch_size * _world())

    def generator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        real = batch["image"]
        fake = nets["G"](self._z(len(real), real), mixing=self.cfg.style_mixing)
        loss = F.softplus(-nets["D"](fake).float()).mean()
        return PhaseResult(loss, {"loss/G": loss.detach()})

    def discriminator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        real = batch["image"]
        with torch.no_grad():
            fake = nets["G"](self._z(len(real), real), mixing=self.cfg.style_mixing)
        real_logits, fake_logits = nets["D"](real).float(), nets["D"](fake).float()
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        logs = {"loss/D": loss.detach(), "D/real": real_logits.detach().mean(), "D/fake": fake_logits.detach().mean()}
        logs[REAL_SIGN] = torch.sign(real_logits.detach()).mean()
        return PhaseResult(loss, logs)

    def r1(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        real = batch["image"].detach().requires_grad_(True)
        logits = nets["D"](real).float()
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = grad.float().square().sum(dim=[1, 2, 3])
        # "logits * 0" keeps every D parameter in the graph, so DDP's reducer sees them all.
        loss = (logits * 0 + penalty * (self.r1_gamma(len(real)) / 2)).mean() * self.cfg.r1_every
        return PhaseResult(loss, {"loss/r1": penalty.detach().mean()})

    def path_length(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        real = batch["image"]
        n = max(1, len(real) // self.cfg.pl_batch_shrink)
        img, ws = nets["G"](self._z(n, real), mixing=self.cfg.style_mixing, return_ws=True)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.float().square().sum(2).mean(1).sqrt()
        # As NVlabs' loss: the penalty differentiates through the updated mean (it is not
        # detached there); only the stored running mean is.
        pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean(), self.cfg.pl_decay)
        self.pl_mean = pl_mean.detach()
        penalty = (lengths - pl_mean).square() * self.cfg.pl_weight
        loss = (img[:, 0, 0, 0].float() * 0 + penalty).mean() * self.cfg.pl_every
        return PhaseResult(loss, {"loss/pl": penalty.detach().mean(), "G/pl_mean": self.pl_mean.detach()})

    def fixed_inputs(self, n: int, generator: torch.Generator, reals: Batch) -> dict[str, torch.Tensor]:
        del reals
        return {"z": torch.randn(n, self.cfg.z_dim, generator=generator)}

    @torch.no_grad()
    def generate(self, nets: Nets, n: int, generator: torch.Generator, truncation: float = 1.0) -> torch.Tensor:
        g = nets["G"]
        z = torch.randn(n, self.cfg.z_dim, generator=generator).to(next(g.parameters()).device)
        return g(z, truncation_psi=truncation)

    @torch.no_grad()
    def sample_grid(self, nets: Nets, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """EMA samples of the fixed latents in a square, then a truncation row: the first
        latent at psi = 1, 0.9, ..., 0 (psi 0 is the average image)."""
        g, z = nets["G"], inputs["z"]
        grid = square_grid(g(z).float())
        cols = grid.shape[1]
        psis = [TRUNCATION_ROW[round(i * (len(TRUNCATION_ROW) - 1) / max(cols - 1, 1))] for i in range(cols)]
        row = torch.cat([g(z[:1], truncation_psi=psi).float() for psi in psis])
        return torch.cat([grid, row.unsqueeze(0)])

    def state_dict(self) -> dict[str, Any]:
        return {"pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].clone()
