"""Adding a GAN is one class: a fifth GAN with three optimizer groups (an encoder beside G
and D, as BiGAN / ALI have), written here and never registered, trains through the same
loop on real shards. Each group steps at its role's learning rate, its losses are logged
per group, and the nets it would export are its generator groups'."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_core.interface import DISCRIMINATOR, GAN, GENERATOR, Batch, Nets, Phase, PhaseResult, discriminator, generator
from pipelines.config import load
from pipelines.core import loop
from pipelines.core.engine import Engine
from pipelines.data.batches import Batches
from pipelines.data.loader import StreamSpec
from pipelines.data.manifest import read_dataset


@dataclasses.dataclass
class BiGANConfig:
    latent_dim: int = 8
    width: int = 32


class BiGAN(GAN):
    """D tells (image, its code) pairs from E from (G's image, its latent) pairs; G and E
    each try to fool it, with optimizers of their own."""

    name = "bigan-test"
    Config = BiGANConfig
    groups = {"G": generator("G"), "E": generator("E"), "D": discriminator("D")}

    def declare_phases(self) -> tuple[Phase, ...]:
        return (
            Phase("D", "D", self.discriminator_loss),
            Phase("G", "G", self.generator_loss),
            Phase("E", "E", self.encoder_loss),
        )

    def build_nets(self) -> dict[str, nn.Module]:
        pixels, z, w = self.channels * self.resolution**2, self.cfg.latent_dim, self.cfg.width
        return {
            "G": nn.Sequential(nn.Linear(z, w), nn.ReLU(), nn.Linear(w, pixels), nn.Tanh()),
            "E": nn.Sequential(nn.Flatten(), nn.Linear(pixels, w), nn.ReLU(), nn.Linear(w, z)),
            "D": nn.Sequential(nn.Linear(pixels + z, w), nn.LeakyReLU(0.2), nn.Linear(w, 1)),
        }

    def _pairs(self, nets: Nets, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(len(real), self.cfg.latent_dim)
        encoded = torch.cat([real.flatten(1), nets["E"](real)], 1)
        generated = torch.cat([nets["G"](z), z], 1)
        return nets["D"](encoded), nets["D"](generated)

    def discriminator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        real, fake = self._pairs(nets, batch["image"])
        loss = F.softplus(-real).mean() + F.softplus(fake).mean()
        return PhaseResult(loss, {"loss/D": loss.detach()})

    def generator_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        loss = F.softplus(-self._pairs(nets, batch["image"])[1]).mean()
        return PhaseResult(loss, {"loss/G": loss.detach()})

    def encoder_loss(self, nets: Nets, batch: Batch, step: int) -> PhaseResult:
        loss = F.softplus(self._pairs(nets, batch["image"])[0]).mean()
        return PhaseResult(loss, {"loss/E": loss.detach()})

    def fixed_inputs(self, n: int, generator: torch.Generator, reals: Batch) -> dict[str, torch.Tensor]:
        return {"z": torch.randn(n, self.cfg.latent_dim, generator=generator)}

    @torch.no_grad()
    def sample_grid(self, nets: Nets, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        images = nets["G"](inputs["z"]).view(-1, self.channels, self.resolution, self.resolution)
        return images.unsqueeze(0)


def test_a_gan_with_three_groups_trains_through_the_loop(digit_shards):
    torch.manual_seed(0)
    overrides = [
        "optim.lr_g=1e-3",
        "optim.lr_d=2e-4",
        "train.steps=12",
        "train.log_every=4",
        "eval.every=0",
        "train.sample_every=12",
        "train.checkpoint_every=12",
        "data.batch_size=16",
    ]
    cfg = dataclasses.replace(load("lsgan", overrides=overrides), gan=BiGAN.name, model=BiGANConfig())
    BiGAN.validate()
    gan = BiGAN(cfg.model, 16, 1)
    engine = Engine(gan, cfg.optim, cfg.train, torch.device("cpu"), cfg.data.batch_size)
    initial = {name: [p.clone() for p in net.parameters()] for name, net in engine.raw.items()}
    data = Batches(read_dataset(digit_shards), {"image": "image"}, StreamSpec(loader_workers=0), 16)
    hooks = loop.CollectingHooks()

    last = loop.run(cfg, engine, data, hooks)

    assert [step for step, _ in hooks.logs] == [4, 8, 12] and engine.step == 12
    assert all(math.isfinite(last[f"loss/{group}"]) for group in ("G", "E", "D"))
    assert engine.learning_rates() == {"lr/G": 1e-3, "lr/E": 1e-3, "lr/D": 2e-4}  # by role
    for name, net in engine.raw.items():  # every group stepped
        assert any(not torch.equal(a, b) for a, b in zip(initial[name], net.parameters())), name
    final = hooks.checkpoints[-1][1]
    assert set(final["engine"]["optim"]) == {"G", "E", "D"} and final["config"]["gan"] == "bigan-test"
    assert gan.nets_with(GENERATOR) == ("G", "E") and gan.loss_keys(DISCRIMINATOR) == ("loss/D",)
    assert gan.loss_keys(GENERATOR) == ("loss/G", "loss/E")


def test_groups_without_both_roles_are_refused_at_declaration():
    class GeneratorsOnly(BiGAN):
        groups = {"G": generator("G"), "E": generator("E"), "D": generator("D")}

    with pytest.raises(TypeError, match="needs generator and discriminator groups"):
        GeneratorsOnly.validate()

    class SharedNet(BiGAN):
        groups = {"G": generator("G", "E"), "E": generator("E"), "D": discriminator("D")}

    with pytest.raises(TypeError, match="a net belongs to two optimizer groups"):
        SharedNet.validate()
