"""DiscoGAN (Kim et al. 2017): unpaired translation with two bottleneck generators.

G_AB and G_BA are trained together against D_A and D_B. Per direction, G's loss mixes the
GAN loss (0.1 x BCE + 0.9 x feature matching on D's activations, as the official code does)
and the reconstruction loss MSE(G_BA(G_AB(a)), a) with weight ``rate``:
``(1 - rate) * gan + rate * recon``. ``rate`` follows the official curriculum: 0.01 for the
first 10k steps, then 0.5 (``recon_*`` keys). D minimises BCE on reals vs fakes, halved; it
steps every 3rd iteration and G on the other two (``d_every``), like SKTBrain/DiscoGAN.

Scale: the reference trains on images in [0, 1] with a sigmoid output; ganforge keeps every
GAN's images in [-1, 1] (tanh), where the same images are twice as far apart, so the squared
reconstruction error is divided by 4: it is then exactly the reference's MSE, and the
curriculum's weights balance it against the GAN term as they do there. (D's features and
logits need no rescaling: a [-1, 1] input is an affine map of a [0, 1] one, which D's first
layer absorbs.) The nets keep PyTorch's default initialisation, as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_core.interface import REAL_SIGN, Batch, Nets, Phase, PhaseResult
from gan_core.nets.discogan import DiscoDiscriminator, DiscoGenerator
from gan_core.registry import register
from gan_core.translation import TranslationGAN


@dataclass
class DiscoGANConfig:
    ngf: int = 64
    ndf: int = 64
    code: int = 0  # > 0: squeeze the 4x4 bottleneck to a 1x1 code this wide (the reference's extra_layers: 100)
    recon_start: float = 0.01  # reconstruction weight before recon_switch_step
    recon_final: float = 0.5  # ... and after it
    recon_switch_step: int = 10000
    fm_weight: float = 0.9  # share of feature matching in G's GAN loss; the rest is BCE
    d_every: int = 3  # D steps on every d_every-th step, G on the others; 1: both every step

    def __post_init__(self) -> None:
        for key in ("ngf", "ndf", "d_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("recon_start", "recon_final", "fm_weight"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"model.{key} must be in [0, 1], got {getattr(self, key)}")
        if self.code < 0 or self.recon_switch_step < 0:
            raise ValueError("model.code and model.recon_switch_step must be >= 0")

    def recon_weight(self, step: int) -> float:
        return self.recon_start if step < self.recon_switch_step else self.recon_final


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over D's layers of the mean squared gap between batch-mean activations (the
    official code's HingeEmbeddingLoss with target 1 reduces to exactly this)."""
    return torch.stack([(r.float().mean(0) - f.float().mean(0)).pow(2).mean() for r, f in zip(real, fake)]).sum()


def reconstruction(recon: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The reference's MSE on [0, 1] images, from images in [-1, 1]: (2x)^2 = 4x^2."""
    return F.mse_loss(recon.float(), real.float()) / 4


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(), target))


@register
class DiscoGAN(TranslationGAN):
    name = "discogan"
    Config = DiscoGANConfig

    def declare_phases(self) -> tuple[Phase, ...]:
        k = self.cfg.d_every  # the official code: D on every 3rd step, G on the other two
        return (
            Phase("D", "D", self.discriminator_loss, every=k),
            Phase("G", "G", self.generator_loss, skip_every=k if k > 1 else 0),
        )

    def build_nets(self):
        cfg: DiscoGANConfig = self.cfg
        nets = {
            "G_AB": DiscoGenerator(self.channels, self.resolution, cfg.ngf, cfg.code),
            "G_BA": DiscoGenerator(self.channels, self.resolution, cfg.ngf, cfg.code),
            "D_A": DiscoDiscriminator(self.channels, self.resolution, cfg.ndf),
            "D_B": DiscoDiscriminator(self.channels, self.resolution, cfg.ndf),
        }
        return nets  # PyTorch's default initialisation, as the reference's

    def discriminator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        return self._discriminator_loss(nets, batch["A"], batch["B"])

    def generator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        return self._generator_loss(nets, batch["A"], batch["B"], step)

    def _discriminator_loss(self, nets: Nets, real_a: torch.Tensor, real_b: torch.Tensor) -> PhaseResult:
        with torch.no_grad():
            fakes = {"A": nets["G_BA"](real_b), "B": nets["G_AB"](real_a)}
        losses, signs = {}, []
        for domain, real in (("A", real_a), ("B", real_b)):
            d = nets[f"D_{domain}"]
            real_logit = d(real)[0]
            losses[domain] = 0.5 * (bce(real_logit, 1.0) + bce(d(fakes[domain])[0], 0.0))
            signs.append(torch.sign(real_logit.detach().float()).mean())
        loss = losses["A"] + losses["B"]
        logs = {"loss/D": loss.detach(), "D/A": losses["A"].detach(), "D/B": losses["B"].detach()}
        return PhaseResult(loss, {**logs, REAL_SIGN: torch.stack(signs).mean()})

    def _generator_loss(self, nets: Nets, real_a: torch.Tensor, real_b: torch.Tensor, step: int) -> PhaseResult:
        cfg: DiscoGANConfig = self.cfg
        rate = cfg.recon_weight(step)
        loss = real_a.new_zeros((), dtype=torch.float32)
        logs = {}
        for src, dst, real_src, real_dst in (("A", "B", real_a, real_b), ("B", "A", real_b, real_a)):
            fake = nets[f"G_{src}{dst}"](real_src)
            recon = reconstruction(nets[f"G_{dst}{src}"](fake), real_src)
            d = nets[f"D_{dst}"]
            fake_logit, fake_feats = d(fake)
            with torch.no_grad():
                _, real_feats = d(real_dst)
            gan = (1 - cfg.fm_weight) * bce(fake_logit, 1.0) + cfg.fm_weight * feature_matching(real_feats, fake_feats)
            loss = loss + (1 - rate) * gan + rate * recon
            logs[f"G/gan_{dst}"], logs[f"G/recon_{src}"] = gan.detach(), recon.detach()
        logs["loss/G"] = loss.detach()
        return PhaseResult(loss, logs)
