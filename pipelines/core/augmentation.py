"""The engine's side of discriminator augmentation (``aug.*``): the pipe goes in front of
every discriminator net as a forward pre-hook, so every image D sees, in every phase and
whatever the GAN, is augmented; ADA's p is adapted from the GAN's ``D/real_sign`` logs,
all-reduced over the ranks so every rank keeps the same p; p is logged (``aug/p``, and
``aug/rt`` at each adjustment) and saved in checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gan_core.augment import ADA, AdaptiveP, DiffAugment
from gan_core.interface import DISCRIMINATOR, GAN, REAL_SIGN
from pipelines.config.schema import AugConfig
from pipelines.core.distributed import world_size


class Augmentation:
    def __init__(self, cfg: AugConfig, gan: GAN, nets: Mapping[str, nn.Module], images_per_step: int):
        self.cfg, self.gan_name, self.images_per_step = cfg, gan.name, images_per_step
        discriminators = [nets[name] for name in gan.nets_with(DISCRIMINATOR)]
        device = next(discriminators[0].parameters()).device
        self.ada = ADA(cfg.p).to(device) if cfg.kind == "ada" else None
        pipe = self.ada if self.ada is not None else DiffAugment()
        # Eager even in a compiled D (train.compile): ADA branches on p's value, a graph
        # break at which TorchDynamo specialised on p and recompiled as it moved; a resumed
        # run compiled other specialisations than the uninterrupted one and its weights
        # drifted from it (tests/test_compile.py). Eager, it is the same code on every step.
        augment = torch.compiler.disable(lambda module, args: (pipe(args[0]), *args[1:]))
        for net in discriminators:
            net.register_forward_pre_hook(augment)
        self.controller = AdaptiveP(cfg.target, cfg.interval, cfg.kimg)
        self.signs = torch.zeros(2, device=device)  # sum of D/real_sign, phases counted

    @property
    def p(self) -> float:
        return float(self.ada.p) if self.ada is not None else 1.0

    def after_step(self, step: int, logs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """ADA's bookkeeping after ``step``: adjusts p every ``aug.interval`` steps (NVlabs'
        schedule); returns what to log."""
        if self.ada is None:
            return {}
        if REAL_SIGN in logs:
            self.signs += torch.stack([logs[REAL_SIGN].float(), torch.ones((), device=self.signs.device)])
        out = {"aug/p": self.ada.p.detach().clone()}
        if step % self.cfg.interval == 0:
            out.update(self._adjust())
        return out

    def _adjust(self) -> dict[str, torch.Tensor]:
        totals = self.signs.clone()
        self.signs.zero_()
        if world_size() > 1:
            dist.all_reduce(totals)
        if totals[1] == 0:
            raise RuntimeError(
                f"aug.kind=ada adapts p from D's sign on real images, and {self.gan_name}'s D phase does not "
                f"log it ({REAL_SIGN}); use aug.kind=diffaug, or log it in the GAN's discriminator loss"
            )
        rt = float(totals[0] / totals[1])
        images = self.images_per_step * self.cfg.interval
        self.ada.p.fill_(self.controller.step(float(self.ada.p), rt, images))  # type: ignore[union-attr]
        return {"aug/rt": torch.tensor(rt, device=self.signs.device)}

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p} if self.ada is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.ada is not None and "p" in state:
            self.ada.p.fill_(float(state["p"]))
