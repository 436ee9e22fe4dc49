"""Typed run configuration: schema, per-GAN YAML defaults, dotted overrides."""

from pipelines.config.load import ConfigError, build, flatten, load, to_dict
from pipelines.config.schema import DataConfig, OptimConfig, RunConfig, TrackingConfig, TrainConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "TrackingConfig",
    "TrainConfig",
    "build",
    "flatten",
    "load",
    "to_dict",
]
