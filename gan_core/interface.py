"""The one interface every GAN implements so that one training loop can drive them all.

A GAN declares *what* to train; the loop in ``pipelines.train`` decides *how*:

* ``groups`` maps each optimizer group's name to a ``Group``: the nets it owns and its role.
  The loop builds one optimizer per group. A generator group trains at ``optim.lr_g``, is
  what ``ganforge sample`` / ``translate`` and the exported model use, and its loss is
  logged as ``loss/<group>``; a discriminator group trains at ``optim.lr_d``. So the
  two-time-scale balance is a config value for every GAN, however many groups it has.
* ``declare_phases()`` returns the update phases in order, once, from the GAN's config:
  each trains one group, every ``every`` steps, and names the method that computes its
  loss. A ``lazy`` phase is a regulariser run less often (StyleGAN2's lazy R1): the loop
  rescales that group's learning rate and betas by k/(k+1) so the effective optimisation
  matches.
* A phase's method takes ``(nets, batch, step)`` and returns the loss and logs. It never
  calls backward or touches optimizers: the loop owns requires_grad, DDP sync, AMP, EMA
  and steps.

Nets come in through ``nets`` (possibly DDP-wrapped) instead of living on the GAN, so the
same GAN object works in a single process, under DDP, and for sampling from EMA copies.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

Batch = Mapping[str, torch.Tensor]
Nets = Mapping[str, nn.Module]


GENERATOR, DISCRIMINATOR = "generator", "discriminator"
# What a GAN's D phase logs for ADA's overfitting heuristic r_t: the mean over the real images
# of the sign of D's output against its decision boundary (+1: called real).
REAL_SIGN = "D/real_sign"


@dataclass(frozen=True)
class Group:
    """An optimizer group: the nets it steps, and its role (``GENERATOR`` or ``DISCRIMINATOR``)."""

    nets: tuple[str, ...]
    role: str


def generator(*nets: str) -> Group:
    return Group(nets, GENERATOR)


def discriminator(*nets: str) -> Group:
    return Group(nets, DISCRIMINATOR)


@dataclass(frozen=True)
class Phase:
    """One update: the nets of optimizer group ``trains`` step on the loss ``compute`` returns
    (a method of the GAN: ``compute(nets, batch, step) -> PhaseResult``)."""

    name: str
    trains: str
    compute: Callable[[Nets, Batch, int], PhaseResult]
    every: int = 1
    lazy: bool = False
    # Skip the steps that are multiples of this (0: never). DiscoGAN's official code trains
    # D on every 3rd step and G on the other two: every=3 for D, skip_every=3 for G.
    skip_every: int = 0
    # The loss differentiates through gradients (R1, path length: create_graph=True).
    # Compiled graphs cannot be differentiated twice, so the loop runs such a phase eagerly.
    double_backward: bool = False

    def active(self, step: int) -> bool:
        if self.skip_every and step % self.skip_every == 0:
            return False
        return step % self.every == 0


@dataclass
class PhaseResult:
    """What ``GAN.compute`` returns: the scalar to minimise and detached values to log."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


def square_grid(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (rows, cols, C, H, W), as square as N allows, the last cells black (-1)."""
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    images = torch.cat([images, images.new_full((rows * cols - len(images), *images.shape[1:]), -1.0)])
    return images.view(rows, cols, *images.shape[1:])


class GAN(abc.ABC):
    """Base class of every GAN in the registry.

    Subclasses set the class attributes and implement the abstract methods. ``cfg`` is the
    GAN's own ``Config`` dataclass instance; ``resolution`` and ``channels`` come from the data.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    groups: ClassVar[Mapping[str, Group]]
    # Image domains a batch must hold: ("image",) for unconditional GANs, ("A", "B") for
    # unpaired translation. The loader and the CLI check the data against this.
    domains: ClassVar[tuple[str, ...]] = ("image",)
    # Nets that get an exponential moving average copy when EMA is on; samples use it.
    ema_nets: ClassVar[tuple[str, ...]] = ()
    # Real images of each domain that ``fixed_inputs`` needs (translation grids show some);
    # the loop reads only that many, and none for a GAN that samples from noise.
    grid_reals: ClassVar[int] = 0
    # TF32 matmuls and convolutions on a GPU, where ``train.tf32`` is auto: the official
    # code's choice (PyTorch's defaults for most; NVlabs turn it off for StyleGAN2).
    tf32: ClassVar[bool] = True

    def __init__(self, cfg: Any, resolution: int, channels: int):
        self.cfg = cfg
        self.resolution = resolution
        self.channels = channels
        self.phases = self.declare_phases()
        check_phases(self.name, self.phases, self.groups)

    @abc.abstractmethod
    def declare_phases(self) -> tuple[Phase, ...]:
        """The update phases, in order (``self.cfg`` is set: phases may follow the config)."""

    @abc.abstractmethod
    def build_nets(self) -> dict[str, nn.Module]:
        """Fresh, initialised nets keyed by name (the names used in ``groups``)."""

    def precision(
        self, nets: Nets, dtype: torch.dtype | None, phase: Phase
    ) -> contextlib.AbstractContextManager | None:
        """A GAN that sets its own layers' precision returns the context ``phase`` runs in,
        given the run's reduced-precision ``dtype`` (None: float32), and the loop then does not
        autocast it; None (the default) lets the loop autocast the whole phase."""
        del nets, dtype, phase
        return None

    def lazy_intervals(self) -> dict[str, int]:
        """Each lazily regularised group's interval k: the loop scales its lr and betas by
        k / (k + 1). By default the interval of its lazy phase; a GAN may keep the factor for a
        regulariser it does not run (NVlabs' StyleGAN2 keeps it when the weight is 0)."""
        return {p.trains: p.every for p in reversed(self.phases) if p.lazy}

    @classmethod
    def groups_with(cls, role: str) -> tuple[str, ...]:
        return tuple(name for name, group in cls.groups.items() if group.role == role)

    @classmethod
    def loss_keys(cls, role: str) -> tuple[str, ...]:
        """Where the losses of ``role``'s groups are logged: ``loss/<group>``."""
        return tuple(f"loss/{name}" for name in cls.groups_with(role))

    @classmethod
    def nets_with(cls, role: str) -> tuple[str, ...]:
        """The nets of every group of ``role``: ``nets_with(GENERATOR)`` are what sampling needs."""
        return tuple(net for name in cls.groups_with(role) for net in cls.groups[name].nets)

    @abc.abstractmethod
    def fixed_inputs(self, n: int, generator: torch.Generator, reals: Batch) -> dict[str, torch.Tensor]:
        """A fixed input batch for sample grids: latents drawn from ``generator``, or for
        translation some of ``reals`` (the first ``grid_reals`` images of each domain, in
        [-1, 1]; empty when ``grid_reals`` is 0)."""

    @abc.abstractmethod
    def sample_grid(self, nets: Nets, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Images in [-1, 1] laid out as (rows, cols, C, H, W) for the tracker's grid."""

    # What users run on a trained GAN: ``ganforge sample`` (unconditional GANs) and
    # ``ganforge translate`` (two-domain GANs). ``nets`` are the sampling nets (EMA copies).
    def generate(self, nets: Nets, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images in [-1, 1] from latents drawn (on the CPU) from ``generator``."""
        raise NotImplementedError(f"{self.name} translates between domains; it does not sample from noise")

    def translate(self, nets: Nets, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Images of one domain in [-1, 1] translated to the other; ``direction`` is AtoB or BtoA."""
        raise NotImplementedError(f"{self.name} generates from noise; it does not translate images")

    # GANs with state beyond their nets (an image pool, a schedule) override these two so
    # that checkpoints hold everything needed to resume exactly.
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        del state

    @classmethod
    def validate(cls) -> None:
        """Catch declaration mistakes of a new GAN at registration time, not mid-run: its
        groups, and the phases of its default config."""
        roles = {group.role for group in cls.groups.values()}
        if not roles <= {GENERATOR, DISCRIMINATOR} or len(roles) < 2:
            raise TypeError(
                f"GAN {cls.name!r}: needs generator and discriminator groups (and no other role), "
                f"got roles {sorted(roles)}"
            )
        owned = [n for group in cls.groups.values() for n in group.nets]
        if len(owned) != len(set(owned)):
            raise TypeError(f"GAN {cls.name!r}: a net belongs to two optimizer groups")
        cls(cls.Config(), 64, 3)  # declares and checks the phases


def check_phases(name: str, phases: tuple[Phase, ...], groups: Mapping[str, Group]) -> None:
    """Phases must exist, train declared groups and run at a positive interval."""
    if not phases:
        raise TypeError(f"GAN {name!r} declares no phases")
    for phase in phases:
        if phase.trains not in groups:
            raise TypeError(f"GAN {name!r}: phase {phase.name!r} trains unknown group {phase.trains!r}")
        if phase.every < 1 or phase.skip_every < 0:
            raise TypeError(f"GAN {name!r}: phase {phase.name!r} has every < 1 or skip_every < 0")
