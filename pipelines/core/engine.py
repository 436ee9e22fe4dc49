"""The training step every GAN shares, in plain PyTorch (no Ray, MLflow or WebDataset), so
it runs the same under Ray Train, in a single process, and in GPU benchmarks.

Per phase the engine enables gradients only for the nets of the phase's optimizer group,
runs the other DDP-wrapped nets under ``no_sync()`` (the pattern of NVlabs' StyleGAN code:
a net that is not trained in a phase must not set up a gradient all-reduce for it), calls
the GAN's ``compute`` under autocast (or the GAN's own precision policy), and steps that
group's optimizer. It also owns the EMA copies, the discriminator augmentation and the full
training state.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import gan_core
from gan_core.interface import GAN, GENERATOR, Phase
from gan_core.nets.modes import eval_mode
from pipelines.config.batch import worker_batch
from pipelines.config.schema import AugConfig, GanforgeConfig, OptimConfig, TrainConfig
from pipelines.core.augmentation import Augmentation
from pipelines.core.device import amp_mode, channels_last
from pipelines.core.distributed import world_size
from pipelines.core.guard import NonFiniteGuard, all_finite

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the torch.compile modes that replay CUDA graphs


@dataclass
class GroupOptim:
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    nets: tuple[str, ...]
    lazy: float  # the group's lazy-regularisation factor c, fixed for the run


def lazy_ratio(gan: GAN, group: str) -> float:
    """StyleGAN2's lazy regularisation: a group whose regulariser runs every k steps gets its
    lr and betas rescaled by c = k / (k + 1), so the optimiser sees the same effective step."""
    k = gan.lazy_intervals().get(group)
    return k / (k + 1) if k else 1.0


def role_lr(role: str, lr_g: float, lr_d: float) -> float:
    """A generator group trains at lr_g, a discriminator group at lr_d (the TTUR balance)."""
    return lr_g if role == GENERATOR else lr_d


def lr_factor(step: int, steps: int, decay_from: float) -> float:
    """Constant, then linear decay to 0 at the last step (CycleGAN's schedule)."""
    start = decay_from * steps
    if step < start or steps <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (steps - start))


class Engine:
    def __init__(
        self,
        gan: GAN,
        optim: OptimConfig,
        train: TrainConfig,
        device: torch.device,
        batch_size: int,
        aug: AugConfig | None = None,
    ):
        self.gan, self.device, self.train_cfg, self.optim_cfg = gan, device, train, optim
        self.world = world_size()
        self.step = 0
        self.memory_format = torch.channels_last if channels_last(train, device) else torch.contiguous_format
        self.raw: dict[str, nn.Module] = {
            k: v.to(device, memory_format=self.memory_format)  # type: ignore[call-overload]  # torch's stubs omit it
            for k, v in gan.build_nets().items()
        }
        self.nets: dict[str, nn.Module] = {k: self._wrap(v) for k, v in self.raw.items()}
        if train.compile:
            for net in self.nets.values():
                net.compile(mode=train.compile_mode)  # in place: state_dict keys stay those of the plain net
        # CUDA graph trees replay a step's graphs as one sequence: each step starts a new one.
        self.cuda_graphs = train.compile and train.compile_mode in CUDA_GRAPH_MODES and device.type == "cuda"
        self.amp = amp_mode(train, device)
        self.amp_dtype = AMP_DTYPES.get(self.amp)
        self.groups = {name: self._make_optim(name, optim) for name in gan.groups}
        self.batch_size = batch_size
        self.ema = self._make_ema()
        self.guard = NonFiniteGuard(train.max_nonfinite_steps)
        aug = aug or AugConfig()
        self.augment = Augmentation(aug, gan, self.raw, batch_size * self.world) if aug.kind != "none" else None

    @classmethod
    def for_config(cls, cfg: GanforgeConfig, resolution: int, channels: int, device: torch.device) -> Engine:
        """The registered GAN ``cfg.gan`` for images of this size, and its engine."""
        gan = gan_core.get(cfg.gan)(cfg.model, resolution, channels)
        return cls(gan, cfg.optim, cfg.train, device, worker_batch(cfg.data.batch_size, world_size()), cfg.aug)

    # --- construction -------------------------------------------------------------------
    def _wrap(self, net: nn.Module) -> nn.Module:
        if self.world == 1 or not any(p.requires_grad for p in net.parameters()):
            return net
        ids = [self.device.index] if self.device.type == "cuda" else None
        # broadcast_buffers=False: re-broadcasting BatchNorm statistics before every forward
        # is a collective per D call and would clobber buffers saved for backward when D runs
        # twice (reals, fakes) per phase. Each rank keeps its own running statistics.
        return DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)

    def _make_optim(self, group: str, optim: OptimConfig) -> GroupOptim:
        c = lazy_ratio(self.gan, group)
        names = self.gan.groups[group].nets
        params = [p for n in names for p in self.raw[n].parameters()]
        lr = role_lr(self.gan.groups[group].role, optim.lr_g, optim.lr_d)
        # "base_lr" is the configured rate; the schedule and the lazy ratio scale it each step.
        optimizer = torch.optim.Adam(
            [{"params": params, "base_lr": lr}],
            lr=lr * c,
            betas=(optim.beta1**c, optim.beta2**c),
            weight_decay=optim.weight_decay,
        )
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        return GroupOptim(optimizer, scaler, names, c)

    def _make_ema(self) -> dict[str, nn.Module]:
        if self.train_cfg.ema_half_life_kimg <= 0:
            return {}
        ema = {}
        for name in self.gan.ema_nets:
            ema[name] = copy.deepcopy(self.raw[name]).eval().requires_grad_(False)
        return ema

    # --- one step ------------------------------------------------------------------------
    def _set_trainable(self, group: str) -> contextlib.ExitStack:
        trained = set(self.groups[group].nets)
        stack = contextlib.ExitStack()
        for name, net in self.nets.items():
            self.raw[name].requires_grad_(name in trained)
            if name not in trained and isinstance(net, DistributedDataParallel):
                stack.enter_context(net.no_sync())
        return stack

    def _eager_if_needed(self, phase: Phase) -> contextlib.AbstractContextManager:
        # AOTAutograd graphs have no double backward: R1 and path-length phases run the
        # compiled nets' eager code (same parameters) while the main phases stay compiled.
        if self.train_cfg.compile and phase.double_backward:
            return torch.compiler.set_stance("force_eager")
        return contextlib.nullcontext()

    def _precision(self, phase: Phase) -> contextlib.AbstractContextManager:
        """The GAN's own precision policy where it has one (StyleGAN's), else autocast."""
        policy = self.gan.precision(self.nets, self.amp_dtype, phase)
        if policy is not None:
            return policy
        enabled = self.amp_dtype is not None
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=enabled)

    def _run_phase(self, phase: Phase, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        group = self.groups[phase.trains]
        with self._set_trainable(phase.trains), self._eager_if_needed(phase):
            with self._precision(phase):
                result = phase.compute(self.nets, batch, self.step)
            group.optimizer.zero_grad(set_to_none=True)
            group.scaler.scale(result.loss).backward()
        group.scaler.unscale_(group.optimizer)  # so the guard sees true gradients (a no-op without fp16)
        grads = [p.grad for g in group.optimizer.param_groups for p in g["params"] if p.grad is not None]
        if self.guard.ok(result.loss, grads, f"phase {phase.name} at step {self.step}"):
            group.scaler.step(group.optimizer)
        group.scaler.update()  # with fp16, a skipped step also lowers the loss scale
        return result.logs

    def _apply_lr_schedule(self) -> None:
        factor = lr_factor(self.step, self.train_cfg.steps, self.optim_cfg.lr_decay_from)
        for group in self.groups.values():
            for param_group in group.optimizer.param_groups:
                param_group["lr"] = param_group["base_lr"] * group.lazy * factor

    def set_learning_rates(self, lr_g: float, lr_d: float) -> None:
        """New configured rates (PBT's perturbation); the schedule applies on top."""
        for name, group in self.groups.items():
            for param_group in group.optimizer.param_groups:
                param_group["base_lr"] = role_lr(self.gan.groups[name].role, lr_g, lr_d)
        self._apply_lr_schedule()

    def train_step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run every phase due at this step; returns detached tensors to log (no host sync)."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        self._apply_lr_schedule()
        if self.memory_format is torch.channels_last:
            batch = {
                k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()
            }
        logs: dict[str, torch.Tensor] = {}
        for phase in self.gan.phases:
            if phase.active(self.step):
                logs.update(self._run_phase(phase, batch))
        self._update_ema()
        if self.augment is not None:
            logs.update(self.augment.after_step(self.step, logs))
        self.step += 1
        return logs

    def ema_beta(self) -> float:
        """Per-step decay for the configured half-life (in images across all ranks)."""
        batch = self.batch_size * self.world
        half_life = self.train_cfg.ema_half_life_kimg * 1000.0
        if self.train_cfg.ema_rampup > 0:
            half_life = min(half_life, (self.step + 1) * batch * self.train_cfg.ema_rampup)
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = self.ema_beta() if self.ema else 0.0
        for name, ema in self.ema.items():
            for p_ema, p in zip(ema.parameters(), self.raw[name].parameters()):
                p_ema.lerp_(p.detach(), 1.0 - beta)
            for b_ema, b in zip(ema.buffers(), self.raw[name].buffers()):
                b_ema.copy_(b)

    def weights_finite(self) -> bool:
        tensors = [p for net in (*self.raw.values(), *self.ema.values()) for p in net.parameters()]
        return bool(all_finite(tensors))

    def learning_rates(self) -> dict[str, float]:
        return {f"lr/{g}": o.optimizer.param_groups[0]["lr"] for g, o in self.groups.items()}

    # --- sampling ------------------------------------------------------------------------
    def sampling_nets(self) -> dict[str, nn.Module]:
        """Unwrapped nets for inference, with the EMA copies in place of their originals."""
        return {**self.raw, **self.ema}

    @torch.no_grad()
    def sample_grid(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with eval_mode(self.sampling_nets()) as nets:
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            return self.gan.sample_grid(nets, inputs).float().cpu()

    # --- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "nets": {k: v.state_dict() for k, v in self.raw.items()},
            "ema": {k: v.state_dict() for k, v in self.ema.items()},
            "optim": {g: o.optimizer.state_dict() for g, o in self.groups.items()},
            "scaler": {g: o.scaler.state_dict() for g, o in self.groups.items()},
            "gan": self.gan.state_dict(),
            "augment": self.augment.state_dict() if self.augment is not None else {},
        }
        # No RNG state here: the loop reseeds every rank from (seed, rank, step), which
        # resumes deterministically whatever the number of workers.
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step = int(state["step"])
        for name, sd in state["nets"].items():
            self.raw[name].load_state_dict(sd)
        for name, sd in state["ema"].items():
            if name in self.ema:
                self.ema[name].load_state_dict(sd)
        for group, sd in state["optim"].items():
            self.groups[group].optimizer.load_state_dict(sd)  # restores base_lr too
        for group, sd in state["scaler"].items():
            if sd:
                self.groups[group].scaler.load_state_dict(sd)
        self.gan.load_state_dict(state["gan"])
        if self.augment is not None:
            self.augment.load_state_dict(state.get("augment", {}))
