"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

Two ResNet generators (G_AB: A -> B, G_BA: B -> A) and two 70x70 PatchGAN discriminators
(D_A judges domain A, D_B judges domain B). G's phase minimises the least-squares GAN loss
of both directions plus the cycle-consistency L1 (lambda 10 each way) and the identity L1
(0.5 x lambda); D's phase, run after G's as in the reference, sees fakes drawn through an
image pool of 50 and halves its loss. Defaults follow junyanz/pytorch-CycleGAN-and-pix2pix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gan_core.image_pool import ImagePool
from gan_core.interface import REAL_SIGN, Batch, Nets, Phase, PhaseResult
from gan_core.nets.init import dcgan_init
from gan_core.nets.patchgan import PatchDiscriminator
from gan_core.nets.resnet import ResnetGenerator, default_blocks
from gan_core.registry import register
from gan_core.translation import TranslationGAN


@dataclass
class CycleGANConfig:
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 0  # residual blocks; 0 = the reference's choice (9 at >= 256 px, else 6)
    d_layers: int = 3  # PatchGAN stride-2 layers; 3 gives 70x70 patches
    lambda_a: float = 10.0  # cycle loss A -> B -> A
    lambda_b: float = 10.0  # cycle loss B -> A -> B
    lambda_identity: float = 0.5  # identity loss weight, as a fraction of lambda
    pool_size: int = 50

    def __post_init__(self) -> None:
        for key in ("ngf", "ndf", "d_layers"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("n_blocks", "lambda_a", "lambda_b", "lambda_identity", "pool_size"):
            if getattr(self, key) < 0:
                raise ValueError(f"model.{key} must be >= 0, got {getattr(self, key)}")


def lsgan_loss(scores: torch.Tensor, target: float) -> torch.Tensor:
    """The reference's GANLoss('lsgan'): MSE of the patch scores to a constant target."""
    return (scores.float() - target).pow(2).mean()


@register
class CycleGAN(TranslationGAN):
    name = "cyclegan"
    Config = CycleGANConfig

    def __init__(self, cfg: CycleGANConfig, resolution: int, channels: int):
        super().__init__(cfg, resolution, channels)
        self.pools = {"A": ImagePool(cfg.pool_size), "B": ImagePool(cfg.pool_size)}
        self._fakes: dict[str, torch.Tensor] = {}  # from G's phase, for D's phase of the same step

    def build_nets(self):
        cfg: CycleGANConfig = self.cfg
        blocks = cfg.n_blocks or default_blocks(self.resolution)
        nets = {
            "G_AB": ResnetGenerator(self.channels, self.resolution, cfg.ngf, blocks),
            "G_BA": ResnetGenerator(self.channels, self.resolution, cfg.ngf, blocks),
            "D_A": PatchDiscriminator(self.channels, self.resolution, cfg.ndf, cfg.d_layers),
            "D_B": PatchDiscriminator(self.channels, self.resolution, cfg.ndf, cfg.d_layers),
        }
        for net in nets.values():
            dcgan_init(net)  # the reference's init_type="normal": N(0, 0.02)
        return nets

    def declare_phases(self) -> tuple[Phase, ...]:
        # G first: D's phase of the same step judges the fakes G's phase made (via the pools).
        return Phase("G", "G", self.generator_loss), Phase("D", "D", self.discriminator_loss)

    def generator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        return self._generator_loss(nets, batch["A"], batch["B"])

    def discriminator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        return self._discriminator_loss(nets, batch["A"], batch["B"])

    def _generator_loss(self, nets: Nets, real_a: torch.Tensor, real_b: torch.Tensor) -> PhaseResult:
        cfg: CycleGANConfig = self.cfg
        fake_b, fake_a = nets["G_AB"](real_a), nets["G_BA"](real_b)
        self._fakes = {"A": fake_a.detach(), "B": fake_b.detach()}
        adv = lsgan_loss(nets["D_B"](fake_b), 1.0) + lsgan_loss(nets["D_A"](fake_a), 1.0)
        cycle_a = F.l1_loss(nets["G_BA"](fake_b).float(), real_a.float())
        cycle_b = F.l1_loss(nets["G_AB"](fake_a).float(), real_b.float())
        loss = adv + cfg.lambda_a * cycle_a + cfg.lambda_b * cycle_b
        logs = {
            "loss/G": loss.detach(),
            "G/adv": adv.detach(),
            "G/cycle_A": cycle_a.detach(),
            "G/cycle_B": cycle_b.detach(),
        }
        if cfg.lambda_identity > 0:  # G_AB should leave a B image alone, and G_BA an A image
            idt_b = F.l1_loss(nets["G_AB"](real_b).float(), real_b.float())
            idt_a = F.l1_loss(nets["G_BA"](real_a).float(), real_a.float())
            idt = cfg.lambda_identity * (cfg.lambda_b * idt_b + cfg.lambda_a * idt_a)
            loss = loss + idt
            logs.update({"loss/G": loss.detach(), "G/identity": idt.detach()})
        return PhaseResult(loss, logs)

    def _discriminator_loss(self, nets: Nets, real_a: torch.Tensor, real_b: torch.Tensor) -> PhaseResult:
        fakes = self._fakes or self._fresh_fakes(nets, real_a, real_b)
        self._fakes = {}
        losses, signs = {}, []
        for domain, real in (("A", real_a), ("B", real_b)):
            d = nets[f"D_{domain}"]
            fake = self.pools[domain].query(fakes[domain])
            real_out = d(real)
            losses[domain] = 0.5 * (lsgan_loss(real_out, 1.0) + lsgan_loss(d(fake), 0.0))
            signs.append(torch.sign(real_out.detach().float() - 0.5).mean())  # targets 1 and 0: boundary 0.5
        loss = losses["A"] + losses["B"]
        logs = {"loss/D": loss.detach(), "D/A": losses["A"].detach(), "D/B": losses["B"].detach()}
        return PhaseResult(loss, {**logs, REAL_SIGN: torch.stack(signs).mean()})

    @torch.no_grad()
    def _fresh_fakes(self, nets: Nets, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Only when D's phase runs without G's before it in the same step."""
        return {"A": nets["G_BA"](real_b), "B": nets["G_AB"](real_a)}

    def state_dict(self) -> dict[str, Any]:
        return {f"pool_{d}": pool.state_dict() for d, pool in self.pools.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for domain, pool in self.pools.items():
            if f"pool_{domain}" in state:
                pool.load_state_dict(state[f"pool_{domain}"])
