"""A run's paths and store URIs made absolute in the driver, so that workers and jobs in other
directories, or on other nodes, find the same data, storage and tracking store."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from pipelines.config import GanforgeConfig
from pipelines.core import storage
from pipelines.tracking import store

STORAGE_ENV = "GANFORGE_STORAGE_PATH"


def _absolute(path: str) -> str:
    """Local paths made absolute; URLs (http shards, s3:// checkpoint storage) and WebDataset
    ``pipe:`` commands as they are."""
    return path if path.startswith("pipe:") else storage.absolute(path)


def resolved(cfg: GanforgeConfig, workdir: Path | None = None) -> GanforgeConfig:
    """Absolute paths and store URIs, so workers in other directories find the same things."""
    workdir = (workdir or Path.cwd()).resolve()
    tracking = store.resolve(cfg.tracking, workdir)
    if not tracking.run_name:
        stamp = time.strftime("%m%d-%H%M%S")
        tracking = dataclasses.replace(tracking, run_name=f"{cfg.gan}-{storage.basename(cfg.data.path)}-{stamp}")
    data = dataclasses.replace(cfg.data, path=_absolute(cfg.data.path))
    # A cluster names its bucket once, in its nodes' environment (ray_cluster.yaml).
    where = cfg.train.storage_path or os.environ.get(STORAGE_ENV) or str(workdir / "ray_results")
    train = dataclasses.replace(cfg.train, storage_path=_absolute(where))
    return dataclasses.replace(cfg, tracking=tracking, data=data, train=train)
