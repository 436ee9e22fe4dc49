"""A run's Ray Train ``TorchTrainer`` (``torch_trainer``), without the Ray Data actor that
ganforge never uses.

Ray Train V2 starts a ``DatasetManager`` actor for every run, whether or not the trainer was
given Ray Datasets. ganforge streams WebDataset shards inside its workers and passes none, so
that actor is one more process start per run, and per Tune trial, that does nothing: about
2 CPU-seconds, since it imports Ray Data and pandas. A trainer given datasets keeps it.

Leaving it out reaches into Ray Train's internals (the default callbacks); if a Ray release
moves them, runs go on with the plain ``TorchTrainer``."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from pipelines.config import GanforgeConfig
from pipelines.train.run_spec import RunSpec


@functools.cache
def _trainer_class() -> type:
    from ray.train.torch import TorchTrainer

    try:
        from ray.train.v2._internal.callbacks import DatasetsCallback
    except ImportError:
        return TorchTrainer
    if not hasattr(TorchTrainer, "_create_default_callbacks"):
        return TorchTrainer

    class GanTrainer(TorchTrainer):
        def _create_default_callbacks(self) -> list[Any]:
            callbacks = super()._create_default_callbacks()  # type: ignore[misc]  # Ray Train's internals
            if self.datasets:
                return callbacks
            return [c for c in callbacks if not isinstance(c, DatasetsCallback)]

    return GanTrainer


def torch_trainer(spec: RunSpec, name: str, callbacks: list | None = None):
    """The run's ``TorchTrainer``; called in the process that created the MLflow run, whose
    node reaches the tracking server, so a loopback server gets its relay here."""
    from ray.train import FailureConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchConfig

    from pipelines.tracking.relay import start_relay
    from pipelines.train.ray_worker import train_worker

    cfg, train = spec.config, spec.config.train
    return _trainer_class()(
        train_worker,
        train_loop_config={"run": dataclasses.replace(spec, relay=start_relay(cfg.tracking.uri))},
        # Ray Train V2's ScalingConfig (the one `ray.train` exports at run time) takes a
        # (min, max) range and a resize interval; its type stubs are still V1's.
        scaling_config=ScalingConfig(  # type: ignore[call-arg]
            num_workers=(train.min_workers, train.max_workers) if train.elastic else train.min_workers,  # type: ignore[arg-type]
            use_gpu=train.use_gpu,
            resources_per_worker=worker_resources(cfg),
            elastic_resize_monitor_interval_s=train.resize_check_s,
        ),
        torch_config=TorchConfig(backend="nccl" if train.use_gpu else "gloo"),
        run_config=RayRunConfig(
            name=name,
            storage_path=train.storage_path,
            checkpoint_config=checkpoint_config(spec),
            failure_config=FailureConfig(max_failures=train.max_failures),
            callbacks=callbacks or [],
        ),
    )


def worker_resources(cfg: GanforgeConfig) -> dict[str, float]:
    """What each Ray Train worker reserves: its torch threads' CPUs, and a GPU on GPU runs."""
    return {"CPU": cfg.train.threads_per_worker, **({"GPU": 1} if cfg.train.use_gpu else {})}


def checkpoint_config(spec: RunSpec):
    """``train.keep_checkpoints`` checkpoints: those with the best eval score (lower is better)
    where the run is evaluated, else the newest. Ray Train keeps the newest one besides them
    either way, so a run always resumes from where it stopped."""
    from ray.train import CheckpointConfig

    from pipelines.train.ray_worker import SCORE_KEY

    keep = spec.config.train.keep_checkpoints
    if spec.rank_checkpoints and spec.config.eval.every:
        return CheckpointConfig(num_to_keep=keep, checkpoint_score_attribute=SCORE_KEY, checkpoint_score_order="min")
    return CheckpointConfig(num_to_keep=keep)
