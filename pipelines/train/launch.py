"""``ganforge train`` in the driver: the preflight checks, the MLflow run, Ray (started or
joined, and checked for room), a ``TorchTrainer`` over ``train_worker`` and rank 0's progress
in the terminal. Ends the MLflow run as FINISHED or FAILED."""

from __future__ import annotations

from dataclasses import dataclass

import gan_core
from cluster.connect import alive_nodes, connect
from pipelines.config import GanforgeConfig
from pipelines.core import storage
from pipelines.tracking import store
from pipelines.tracking.models import Registered
from pipelines.tracking.runs import end_run
from pipelines.train.paths import resolved
from pipelines.train.preflight import check_capacity, check_run
from pipelines.train.progress import Progress
from pipelines.train.resume import checkpoint_location
from pipelines.train.run_record import close_failed, name_best_model, open_run, ray_run, register_best
from pipelines.train.run_spec import RunSpec
from pipelines.train.torch_trainer import torch_trainer


@dataclass
class TrainOutcome:
    run_id: str
    metrics: dict[str, float]
    checkpoint_path: str | None
    tracking: store.TrackingConfig
    model: str | None = None  # models:/<id> of the run's best generator
    registered: Registered | None = None


def train(
    cfg: GanforgeConfig,
    address: str | None = None,
    progress: bool = True,
    verbose: bool = False,
    resume_from: str | None = None,
) -> TrainOutcome:
    """Run a training job; ``resume_from`` (a checkpoint folder) continues the run that
    ``cfg.tracking.run_id`` names, or starts a new run from the checkpoint if none is named."""
    check_run(cfg)
    connect(address, verbose=verbose)
    check_capacity(cfg, address)
    store.check_shared(store.resolve(cfg.tracking).uri, alive_nodes())
    cfg = open_run(resolved(cfg), resume_from)
    run_id = cfg.tracking.run_id
    name = ray_run(cfg, resume_from)
    bar = None
    try:
        from ray.util.queue import Queue

        queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})  # must not take a worker's CPU
        groups = tuple(sorted(gan_core.get(cfg.gan).groups))  # D before G, as the bar always showed them
        bar = Progress(queue, cfg.train.steps, progress, groups)
        result = torch_trainer(RunSpec(cfg, resume_from, progress=queue), name).fit()
    except BaseException as exc:
        error = close_failed(cfg, exc)
        if error is exc:
            raise
        raise error from exc
    finally:
        if bar is not None:
            bar.close()
    best = name_best_model(cfg.tracking.uri, run_id)
    registered = register_best(cfg, run_id, cfg.tracking.register) if best and cfg.tracking.register else None
    end_run(cfg.tracking, run_id, "FINISHED")
    run_folder = storage.join(cfg.train.storage_path, name)
    checkpoint = checkpoint_location(run_folder, result.checkpoint.path) if result.checkpoint else None
    model = f"models:/{best.model_id}" if best else None
    return TrainOutcome(run_id, dict(result.return_value or {}), checkpoint, cfg.tracking, model, registered)
