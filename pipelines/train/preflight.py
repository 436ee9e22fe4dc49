"""The checks a run passes before any Ray worker starts, for `ganforge train`, `tune` and
`submit`: what can be checked without a cluster (config, data, evaluation, search) comes
first and fails with one line; what the run asks of the cluster is checked once connected."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import gan_core
from cluster.capacity import Capacity, Request, ask_autoscaler, ensure, of_connected
from cluster.connect import TRIAL_RESOURCE
from gan_core.metrics.inception import WEIGHTS_ENV, weights_path
from pipelines.config import GanforgeConfig, to_dict
from pipelines.config.batch import check_split
from pipelines.config.space import check_strategy, parse_space, with_seeds
from pipelines.data.batches import resolve_domains
from pipelines.data.loader import StreamSpec, check_exact
from pipelines.data.manifest import read_dataset
from pipelines.errors import ConfigError, DataError
from pipelines.tracking import store
from pipelines.tracking.runs import check_reachable
from pipelines.train.torch_trainer import worker_resources


def check_data(cfg: GanforgeConfig) -> None:
    """Fail in the driver, with a clear message, before Ray starts any worker."""
    if not cfg.data.path:
        raise DataError("no data given: pass --data SHARD_FOLDER (see `ganforge data shard`)")
    dataset = read_dataset(cfg.data.path)
    domains = resolve_domains(dataset, cfg.gan, gan_core.get(cfg.gan).domains, cfg.data.domain)
    check_split(cfg.data.batch_size, cfg.train.worker_counts)
    if cfg.data.mode == "exact" and dataset.estimated_counts:
        raise DataError(
            f"data.mode=exact needs each shard's sample count, which {cfg.data.path} (a pattern with "
            "no manifest) does not give; use data.mode=resampled, or a shard folder with its manifest.json"
        )
    for world in cfg.train.worker_counts:
        # With auto loader processes the workers size them on their nodes; 1 is the least.
        spec = StreamSpec(world=world, mode=cfg.data.mode, loader_workers=max(1, cfg.data.loader_workers))
        for domain in domains.values():
            check_exact(dataset.domain(domain), spec)
    if cfg.data.mode == "exact" and cfg.train.elastic:
        warnings.warn(
            "data.mode=exact with a worker range: each worker count deals an epoch's shards differently, "
            "so a resize ends the epoch it interrupts (no sample is read twice in it; the rest is not read)",
            stacklevel=2,
        )


def check_eval(cfg: GanforgeConfig) -> None:
    """A configured Inception weights file must exist; without one, say once which metrics
    the run will report instead."""
    weights = cfg.eval.inception_weights
    if weights and not Path(weights).expanduser().is_file():
        raise ConfigError(f"eval.inception_weights: no file at {weights}")
    if cfg.eval.every and weights_path(weights or None) is None:
        warnings.warn(
            f"evaluation without FID Inception weights (set eval.inception_weights or {WEIGHTS_ENV}): "
            "the run reports eval/swd and eval/kid_pixels",
            stacklevel=3,
        )


def check_search(cfg: GanforgeConfig) -> dict:
    """A search's own settings; returns its dimensions (``tune.space``, and the seeds)."""
    if not cfg.eval.every:
        raise ConfigError("ganforge tune ranks trials by their evaluations: eval.every must be > 0")
    if cfg.eval.every > cfg.train.steps:
        raise ConfigError(
            f"eval.every ({cfg.eval.every}) > train.steps ({cfg.train.steps}): a trial would be "
            "evaluated only at its end, too late to stop it early"
        )
    dims = with_seeds(parse_space(cfg.tune.space, to_dict(cfg)), cfg.tune.seeds, cfg.train.seed)
    check_strategy(cfg, dims)
    return dims


def check_run(cfg: GanforgeConfig) -> None:
    """Everything about a run (each trial of a search, too) that can be checked before
    connecting to Ray."""
    check_data(cfg)
    check_eval(cfg)
    check_reachable(store.resolve(cfg.tracking).uri)
    if cfg.train.amp == "fp16" and not cfg.train.use_gpu:
        warnings.warn(
            "train.amp=fp16 on CPU is emulated and many times slower; use train.amp=bf16 on CPU", stacklevel=3
        )


def resource_request(cfg: GanforgeConfig, search: bool = False) -> Request:
    """What one run (or one trial, whose driver takes a ``ganforge_trial`` unit) asks of Ray:
    an elastic run needs room for its minimum."""
    if search:
        return Request(cfg.train.min_workers, worker_resources(cfg), {TRIAL_RESOURCE: 1}, "--workers-per-trial")
    return Request(cfg.train.min_workers, worker_resources(cfg))


def check_capacity(cfg: GanforgeConfig, address: str | None, search: bool = False) -> Capacity:
    """In a process connected to Ray: refuse a request the cluster can never hold, or wait
    (``train.wait_timeout``) for an autoscaler to grow the cluster until it does."""
    address = address or os.environ.get("RAY_ADDRESS")
    where = f"the Ray cluster at {address}" if address else "the local Ray instance"
    return ensure(
        resource_request(cfg, search),
        lambda: of_connected(where),
        cfg.train.wait_timeout,
        say=lambda line: print(f"ganforge: {line}", flush=True),
        ask=ask_autoscaler,
    )
