"""What one training process builds from a config, with torch alone: the GAN's engine and the
rank's data stream. A Ray Train worker, the benchmarks' plain loop and the tests' torch-only
DDP runs build them here, so all three train the same thing."""

from __future__ import annotations

import torch

from pipelines.config.batch import worker_batch
from pipelines.config.schema import GanforgeConfig
from pipelines.core.engine import Engine
from pipelines.data.batches import Batches, resolve_domains
from pipelines.data.loader import StreamSpec, loader_processes
from pipelines.data.manifest import Dataset


def build_engine(cfg: GanforgeConfig, dataset: Dataset, device: torch.device) -> Engine:
    torch.manual_seed(cfg.train.seed)  # the same initial weights for the same seed: runs are reproducible
    return Engine.for_config(cfg, dataset.resolution, dataset.channels, device)


def build_batches(cfg: GanforgeConfig, dataset: Dataset, engine: Engine, rank: int = 0, world: int = 1) -> Batches:
    """This rank's share of the data, batched for ``engine``'s GAN."""
    spec = StreamSpec(
        rank=rank,
        world=world,
        mode=cfg.data.mode,
        seed=cfg.train.seed,
        shuffle_buffer=cfg.data.shuffle_buffer,
        loader_workers=loader_processes(cfg.data.loader_workers, len(engine.gan.domains)),
    )
    domains = resolve_domains(dataset, cfg.gan, engine.gan.domains, cfg.data.domain)
    batch = worker_batch(cfg.data.batch_size, world)  # this rank's share of the global batch
    return Batches(dataset, domains, spec, batch, cfg.data.epoch_batches, pin_memory=engine.device.type == "cuda")
