"""What each Ray Train worker runs: build the engine and the rank's data stream from the
config, resume from Ray's checkpoint if there is one, and drive ``loop.run`` with hooks that
log to MLflow (rank 0), feed the driver's progress bar (rank 0) and report checkpoints to
Ray (every rank, since ``ray.train.report`` is a barrier)."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray.train
import ray.train.torch
import torch

import gan_core
from pipelines.config.schema import GanforgeConfig
from pipelines.core import loop, storage
from pipelines.core.checkpoint import load_checkpoint, save_checkpoint
from pipelines.core.device import configure_device
from pipelines.core.distributed import world_size
from pipelines.core.engine import Engine
from pipelines.data.manifest import Dataset, read_dataset
from pipelines.eval.evaluator import make_evaluator
from pipelines.eval.objective import objective_metric
from pipelines.eval.reference import reference_id
from pipelines.tracking.grids import grid_image
from pipelines.train.build import build_batches, build_engine
from pipelines.train.generator_log import GeneratorLog
from pipelines.train.progress import notices_to_driver
from pipelines.train.resume import ray_run_name
from pipelines.train.run_spec import RunSpec

if TYPE_CHECKING:
    from pipelines.tracking.runs import RunLogger
    from pipelines.tracking.system import NodeMetrics

SCORE_KEY = "checkpoint/score"  # what Ray Train keeps the best checkpoints by (lower is better)


class RayHooks:
    """Rank 0 logs to MLflow and feeds the driver's progress bar; every rank reports to Ray
    Train (a barrier) at each evaluation and checkpoint, one report per step."""

    def __init__(self, rank: int, engine: Engine, logger: RunLogger | None, progress: Any, models: GeneratorLog | None):
        self.chief = rank == 0
        self.world = float(engine.world)  # logged with every step's metrics: elastic runs change it
        self.engine, self.logger, self.progress, self.models = engine, logger, progress, models
        self.last: dict[str, float] = {}
        self.evaluated: dict[str, float] = {}
        self.evaluated_at = -1

    @property
    def log(self) -> RunLogger:
        """Rank 0's logger; only rank 0 logs (the loop calls the chief's hooks alone)."""
        assert self.logger is not None, "only rank 0 logs"
        return self.logger

    def on_step(self, event: loop.StepEvent) -> None:
        if event.metrics is not None:
            self.last = event.metrics
            if self.chief:
                self._log_metrics(event.step, event.metrics)
        if event.grid is not None:
            scale = max(1, 256 // (event.grid.shape[1] * event.grid.shape[-1]))  # small images: enlarge for the UI
            self.log.image(event.step, grid_image(event.grid, scale=scale))
        if event.evaluated is not None:
            self.evaluated, self.evaluated_at = event.evaluated, event.step
        if self.models is not None and (event.evaluated is not None or event.done):
            self.models.log(event.step, event.evaluated)  # with the evaluation's metrics
        if event.checkpoint_due:
            self._report_checkpoint(event)
        elif event.evaluated is not None:  # Tune reads rank 0's reports
            ray.train.report({"step": event.step, **event.evaluated})

    def _log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.log.metrics(step, {**metrics, "train/world_size": self.world})
        if self.progress is not None:
            # The driver warns in the terminal when MLflow is away. A full or gone queue must
            # never stop training.
            with contextlib.suppress(Exception):
                self.progress.put_nowait((step, {**metrics, "tracking/outage": float(self.log.outage)}))

    def _report_checkpoint(self, event: loop.StepEvent) -> None:
        # Kept with each Ray checkpoint: every group's loss, the throughput, the evaluation.
        reported = [f"loss/{group}" for group in self.engine.gan.groups] + ["perf/images_per_sec"]
        metrics = {"step": event.step, **{k: self.last[k] for k in reported if k in self.last}, **self.evaluated}
        metrics[SCORE_KEY] = self._score(event.step)
        with tempfile.TemporaryDirectory(prefix="ganforge-ckpt-") as folder:
            checkpoint = None
            if event.state is not None:
                save_checkpoint(folder, event.state)
                checkpoint = ray.train.Checkpoint.from_directory(folder)
                if event.done:
                    self._log_final(folder)
            ray.train.report(metrics, checkpoint=checkpoint)

    def _score(self, step: int) -> float:
        """What Ray Train ranks this checkpoint by (lower is better): the evaluation of this
        step; a checkpoint between evaluations is unscored, so it is never kept as a best one."""
        if self.models is None or self.evaluated_at != step:
            return math.inf
        return float(self.evaluated.get(self.models.metric, math.inf))

    def on_coverage(self, report: dict) -> None:
        with tempfile.TemporaryDirectory(prefix="ganforge-data-") as folder:
            (Path(folder) / "shards_by_rank.json").write_text(json.dumps(report, indent=1) + "\n")
            self.log.artifacts(folder, "data")
        self.log.tags({"ganforge.nodes": str(len({r["node"] for r in report["ranks"]}))})

    def _log_final(self, checkpoint_folder: str) -> None:
        self.log.artifacts(checkpoint_folder, "checkpoint")


def _restore(
    engine: Engine, resume_from: str | None, cfg: GanforgeConfig, world: int, device: torch.device
) -> loop.Position:
    """Ray's checkpoint when this worker group restarts after a failure; else the checkpoint
    that `ganforge train --resume` named; else a fresh start."""
    # Either one is read through Ray's Checkpoint, which opens local folders and storage URIs
    # (s3://...) alike: a worker on another node reads the same bytes the driver named.
    checkpoint = ray.train.get_checkpoint() or (ray.train.Checkpoint(resume_from) if resume_from else None)
    if checkpoint is None:
        return loop.Position()
    with checkpoint.as_directory() as folder:
        state = load_checkpoint(folder, device)
    engine.load_state_dict(state["engine"])
    # The configured rates, not the checkpoint's: the same unless PBT has perturbed them
    # (its exploit restores another trial's checkpoint under this trial's new config).
    engine.set_learning_rates(cfg.optim.lr_g, cfg.optim.lr_d)
    return loop.resumed_position(state, world, exact=cfg.data.mode == "exact")


def _logger(spec: RunSpec) -> RunLogger:
    from pipelines.tracking.relay import RelayClient
    from pipelines.tracking.runs import RunLogger  # MLflow takes about a second to import: loggers alone need it

    relay = None
    if spec.relay is not None:  # files go by the run's storage, not by Ray's object store
        staging = storage.join(spec.config.train.storage_path, f"{ray_run_name(spec.run_id)}-relay")
        relay = RelayClient(spec.relay, staging)
    return RunLogger(spec.config.tracking.uri, spec.run_id, relay)


def _chief_logger(spec: RunSpec, world: int, device: torch.device) -> RunLogger:
    logger = _logger(spec)
    # What the job really ran on, as opposed to what was asked for.
    logger.tags(
        {
            "ganforge.world_size": str(world),
            "ganforge.device": str(device),
            "ganforge.backend": torch.distributed.get_backend() if world > 1 else "none",
            "ganforge.tracking_path": "direct" if spec.relay is None else "relay",
        }
    )
    return logger


def _first_on_node(rank: int, node: str) -> bool:
    """Whether this rank is the lowest on its Ray node. Asked of every rank (a collective):
    Ray Train's local rank counts workers per IP address, and nodes may share one."""
    nodes: list[str | None] = [None] * world_size()
    if len(nodes) > 1:
        torch.distributed.all_gather_object(nodes, node)
    else:
        nodes = [node]
    return nodes.index(node) == rank


def _node_metrics(spec: RunSpec, rank: int, chief: RunLogger | None, engine: Engine) -> NodeMetrics | None:
    """The node's system metrics, sampled by its first worker."""
    from pipelines.tracking.system import NodeMetrics, node_label

    tracking = spec.config.tracking
    node = ray.get_runtime_context().get_node_id()
    if not tracking.system_metrics or not _first_on_node(rank, node):
        return None
    logger = chief or _logger(spec)
    logger.tags({f"ganforge.node.{node_label(node)}": ray.util.get_node_ip_address()})
    return NodeMetrics(logger, node_label(node), lambda: engine.step, tracking.system_metrics_interval).start()


def _generator_log(cfg: GanforgeConfig, engine: Engine, dataset: Dataset, logger: RunLogger, evaluator) -> GeneratorLog:
    """Rank 0's model logging, with what its models are ranked and compared by; a run's
    evaluation settings are named in its tags too."""
    meta = {
        "gan": cfg.gan,
        "model": asdict(cfg.model),
        "resolution": dataset.resolution,
        "channels": dataset.channels,
        "run_id": cfg.tracking.run_id,
    }
    reference = ""
    if evaluator is not None:
        reference = reference_id(dataset, evaluator.domains, evaluator.samples, evaluator.suite.name)
        logger.tags(
            {
                "ganforge.eval_extractor": evaluator.suite.name,
                "ganforge.eval_reference": dataset.reference(next(iter(evaluator.domains.values())))[1],
                "ganforge.eval_reference_id": reference,
            }
        )
    return GeneratorLog(engine, logger, meta, objective_metric(cfg, dataset.resolution), reference)


def train_worker(loop_config: dict[str, Any]) -> dict[str, float]:
    spec: RunSpec = loop_config["run"]
    cfg = spec.config
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(cfg.train.threads_per_worker)
    device = ray.train.torch.get_device()  # one CUDA device per worker on GPU
    configure_device(cfg.train, device, gan_core.get(cfg.gan).tf32)

    dataset = read_dataset(cfg.data.path)
    engine = build_engine(cfg, dataset, device)
    with notices_to_driver(spec.progress if rank == 0 else None):  # e.g. an epoch a resume leaves
        position = _restore(engine, spec.resume_from, cfg, world, device)
    data = build_batches(cfg, dataset, engine, rank, world)
    evaluator = make_evaluator(cfg, engine.gan, dataset, data.domains, device) if cfg.eval.every else None
    logger = _chief_logger(spec, world, device) if rank == 0 else None
    models = _generator_log(cfg, engine, dataset, logger, evaluator) if logger is not None else None
    system = _node_metrics(spec, rank, logger, engine)
    hooks = RayHooks(rank, engine, logger, spec.progress, models)
    try:
        return loop.run(
            cfg,
            engine,
            data,
            hooks,
            rank=rank,
            position=position,
            evaluator=evaluator,
            node=ray.get_runtime_context().get_node_id(),
        )
    finally:
        if system is not None:
            system.stop()
            system.logger.flush()
        if logger is not None:
            logger.flush()
