"""The step loop, in plain PyTorch. What happens at log, sample and checkpoint time is
delegated to ``Hooks``: under Ray Train they log to MLflow and report checkpoints to Ray; in
benchmarks and unit tests they just collect."""

from __future__ import annotations

import socket
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import torch
import torch.distributed as dist

from gan_core.interface import DISCRIMINATOR, GENERATOR
from pipelines.config.load import to_dict
from pipelines.config.schema import GanforgeConfig, TrainConfig
from pipelines.core.coverage import ShardCoverage
from pipelines.core.distributed import world_size
from pipelines.core.engine import Engine
from pipelines.core.guard import Diverged
from pipelines.core.stability import StabilityMonitor
from pipelines.core.staging import Staged
from pipelines.core.tensors import to_model_batch

Evaluate = Callable[[dict[str, torch.nn.Module]], dict[str, float]]


class Batches(Protocol):
    """What the loop reads: a rank's batches per epoch (``pipelines.data.batches.Batches``
    is one; the core does not import it, so any batch source will do)."""

    def epoch(self, epoch: int) -> Iterator[dict]: ...

    def batches_in_epoch(self, epoch: int) -> int: ...

    def preview(self, n: int) -> dict[str, Any]: ...


@dataclass
class StepEvent:
    """What a step ended with, for the hooks; a field is None where nothing of it was due.
    Every rank gets the event: the metrics are the all-reduced means, the evaluation is
    broadcast, and ``checkpoint_due`` tells every rank that a report (a barrier) is due."""

    step: int
    done: bool  # the last step of the run
    metrics: dict[str, float] | None = None  # every train.log_every steps and at the end
    grid: torch.Tensor | None = None  # a sample grid, on the chief only
    evaluated: dict[str, float] | None = None  # every eval.every steps and at the end
    checkpoint_due: bool = False
    state: dict[str, Any] | None = None  # the full training state, on the chief, when a checkpoint is due


class Hooks(Protocol):
    chief: bool  # rank 0: the one that renders samples and writes checkpoints

    def on_step(self, event: StepEvent) -> None: ...  # every rank, after a step where anything was due

    def on_coverage(self, report: dict[str, Any]) -> None: ...  # rank 0, at the end: coverage.py


@dataclass
class CollectingHooks:
    """Keeps everything in memory; for single-process runs, tests and benchmarks."""

    chief: bool = True
    logs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    samples: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    checkpoints: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)

    def on_step(self, event: StepEvent) -> None:
        if event.metrics is not None:
            self.logs.append((event.step, event.metrics))
        if event.grid is not None:
            self.samples.append((event.step, event.grid))
        if event.evaluated is not None:
            self.evals.append((event.step, event.evaluated))
        if event.checkpoint_due:
            self.checkpoints.append((event.step, event.state))

    def on_coverage(self, report):
        self.coverage = report


class Meter:
    """Means of the logged tensors over a log interval, read with one host sync."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        for key, value in logs.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] += 1

    def pop(self) -> dict[str, float]:
        """Means over the interval and over all ranks: every rank logs the same values, so
        decisions taken on them (the stability monitor) agree across ranks."""
        if not self.sums:
            return {}
        keys = sorted(self.sums)  # the same order on every rank
        values = torch.stack([self.sums[k] / self.counts[k] for k in keys])
        if world_size() > 1:
            dist.all_reduce(values)  # every rank runs the same phases, so holds the same keys
            values /= world_size()
        self.sums, self.counts = {}, defaultdict(int)
        return dict(zip(keys, values.cpu().tolist()))


def seed_rank(seed: int, rank: int, step: int) -> None:
    """Different noise on every rank, and the same at a given step after a resume: the loop
    reseeds before every step, so no RNG state needs saving (whatever the worker count)."""
    torch.manual_seed(hash((seed, rank, step)) & 0x7FFF_FFFF_FFFF_FFFF)


@dataclass
class Position:
    """Where the data stream is: the epoch, and the batches of it already trained on."""

    epoch: int = 0
    batch: int = 0


def checkpoint_state(engine: Engine, position: Position, cfg: GanforgeConfig) -> dict[str, Any]:
    if not engine.weights_finite():  # never a checkpoint that would resume into NaNs
        raise Diverged(f"diverged: non-finite weights at step {engine.step}; no checkpoint written")
    image = {"resolution": engine.gan.resolution, "channels": engine.gan.channels}  # to rebuild the nets
    return {
        "engine": engine.state_dict(),
        "epoch": position.epoch,
        "batch": position.batch,
        "world": world_size(),  # the batch count above means something only to this many workers
        "config": to_dict(cfg),
        "image": image,
    }  # a plain tree: loads with weights_only=True


def resumed_position(state: dict[str, Any], world: int, exact: bool) -> Position:
    """Where a checkpoint's data stream goes on with ``world`` workers. An exact epoch deals
    its shards by worker count, so a position inside one means nothing to another count (a
    resume with other ``--workers``, an elastic resize): that run starts the next epoch, so
    no sample is read twice in one, and says how much of the interrupted epoch it leaves.
    Resampled streams draw afresh after any resume, so their position needs no care."""
    epoch, batch = int(state["epoch"]), int(state.get("batch", 0))
    written_by = int(state.get("world", world))  # checkpoints from before it was recorded
    if not (exact and batch and written_by != world):
        return Position(epoch, batch)
    warnings.warn(
        f"data.mode=exact: the checkpoint was written by {written_by} workers {batch} batches into "
        f"epoch {epoch}, which deals its shards differently to {world}; the run goes on at epoch "
        f"{epoch + 1}, and the rest of epoch {epoch} is not read",
        stacklevel=2,
    )
    return Position(epoch + 1, 0)


def checkpoint_due(train: TrainConfig, step: int) -> bool:
    return step % train.checkpoint_every == 0 or step >= train.steps


def fixed_inputs(engine: Engine, data: Batches, n: int, seed: int) -> dict[str, torch.Tensor]:
    """Sample-grid inputs that stay the same all run long (and across a resume). Reals are
    read only for a GAN whose grid shows them: on remote data each read streams a shard."""
    count = min(n, engine.gan.grid_reals)
    reals = to_model_batch({"images": data.preview(count)}, torch.device("cpu"), hflip=False) if count else {}
    return engine.gan.fixed_inputs(n, torch.Generator().manual_seed(seed), reals)


class _Counters:
    """What the loop logs besides the GAN's own values. Throughput counts the time spent
    fetching data and training alone: sampling, evaluation and the hooks are left out."""

    def __init__(self, step: int):
        self.meter, self.skipped, self.padded = Meter(), 0, 0
        self.busy, self.since_step = 0.0, step

    def metrics(self, engine: Engine, epoch: int, batch_size: int) -> dict[str, float]:
        steps = max(engine.step - self.since_step, 1)
        out = {
            **self.meter.pop(),
            **engine.learning_rates(),
            "epoch": epoch,
            "perf/images_per_sec": steps * batch_size * engine.world / max(self.busy, 1e-9),
            "perf/step_ms": 1e3 * self.busy / steps,
            "data/skipped": self.skipped,
            "data/padded": self.padded,
            "train/nonfinite_steps": engine.guard.skipped,
        }
        self.busy, self.since_step = 0.0, engine.step
        return out


def _batches(data: Batches, start: Position, exact: bool) -> Iterator[tuple[dict, Position]]:
    """Batches from ``start`` on, forever, each with the position after it. Resuming an exact
    epoch skips the batches already trained on, so every sample is still seen once; resampled
    streams draw with replacement and simply start afresh (a resumed run sees other, equally
    random data)."""
    epoch, done = start.epoch, start.batch
    while True:
        for raw in islice(data.epoch(epoch), done if exact else 0, None):
            done += 1
            yield raw, Position(epoch, done)
        epoch, done = epoch + 1, 0


def _end_of_step(
    cfg: GanforgeConfig,
    engine: Engine,
    chief: bool,
    counters: _Counters,
    position: Position,
    evaluator: Evaluate | None,
    fixed: dict[str, torch.Tensor],
) -> StepEvent:
    """What is due after this step: metrics, a sample grid (chief), an evaluation (a
    collective: every rank runs it). The checkpoint is the caller's, after the stability
    verdict."""
    train, step = cfg.train, engine.step
    event = StepEvent(step, done=step >= train.steps)
    if step % train.log_every == 0 or event.done:
        event.metrics = counters.metrics(engine, position.epoch, cfg.data.batch_size)
    if chief and (step % train.sample_every == 0 or event.done):
        event.grid = engine.sample_grid(fixed)
    if evaluator is not None and cfg.eval.every and (step % cfg.eval.every == 0 or event.done):
        event.evaluated = evaluator(engine.sampling_nets())
    return event


def _verdict(monitor: StabilityMonitor | None, event: StepEvent, last: dict[str, float]) -> Diverged | None:
    """The stability monitor's verdict at an evaluation; a run that used its budget ends normally."""
    if monitor is None or event.evaluated is None or event.done:
        return None
    try:
        monitor.check(event.step, last, event.evaluated)
    except Diverged as exc:
        return exc
    return None


def run(
    cfg: GanforgeConfig,
    engine: Engine,
    data: Batches,
    hooks: Hooks,
    rank: int = 0,
    position: Position | None = None,
    evaluator: Evaluate | None = None,
    node: str = "",
) -> dict[str, float]:
    """Train until ``cfg.train.steps``; returns the last logged metrics (and evaluation's).
    ``node`` names the machine this rank runs on (default: the host name)."""
    train, position = cfg.train, position or Position()
    coverage = ShardCoverage(position.epoch if position.batch == 0 else position.epoch + 1)
    fixed = fixed_inputs(engine, data, train.sample_count, train.seed) if hooks.chief else {}
    counters, last = _Counters(engine.step), dict[str, float]()
    gan = engine.gan
    monitor = (
        StabilityMonitor(cfg.stability, gan.loss_keys(DISCRIMINATOR), gan.loss_keys(GENERATOR))
        if cfg.stability.check
        else None
    )
    batches = Staged(_batches(data, position, exact=cfg.data.mode == "exact"), engine.device)
    while engine.step < train.steps:
        start = time.perf_counter()
        raw, after = batches.next()
        position.epoch, position.batch = after.epoch, after.batch
        coverage.add(raw, position.epoch)
        # After fetching: starting a DataLoader draws from the global RNG, and a resumed run
        # starts one at a step where the uninterrupted run did not.
        seed_rank(train.seed, rank, engine.step)
        counters.meter.add(engine.train_step(to_model_batch(raw, engine.device, cfg.data.hflip)))
        if engine.step < train.steps:  # the step is queued on a GPU: read and copy the next one meanwhile
            batches.prefetch()
        counters.busy += time.perf_counter() - start
        counters.skipped, counters.padded = counters.skipped + raw["skipped"], counters.padded + raw["padded"]
        event = _end_of_step(cfg, engine, hooks.chief, counters, position, evaluator, fixed)
        last = {**(event.metrics or last), **(event.evaluated or {})}
        verdict = _verdict(monitor, event, last)
        if verdict is None and checkpoint_due(train, event.step):  # never a checkpoint of a run given up on
            event.checkpoint_due = True
            event.state = checkpoint_state(engine, position, cfg) if hooks.chief else None
        if any(v is not None for v in (event.metrics, event.grid, event.evaluated)) or event.checkpoint_due:
            hooks.on_step(event)
        if verdict is not None:
            raise verdict
    complete = position.epoch > coverage.epoch or position.batch >= data.batches_in_epoch(coverage.epoch)
    report = coverage.gather(rank, node or socket.gethostname(), complete)
    if hooks.chief:
        hooks.on_coverage(report)
    return last
