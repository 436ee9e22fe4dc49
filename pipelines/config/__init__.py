"""Typed run configuration: schema, per-GAN YAML defaults, dotted overrides."""

from pipelines.config.load import ConfigError, build, flatten, load, to_dict
from pipelines.config.schema import DataConfig, GanforgeConfig, OptimConfig, TrackingConfig, TrainConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "GanforgeConfig",
    "OptimConfig",
    "TrackingConfig",
    "TrainConfig",
    "build",
    "flatten",
    "load",
    "to_dict",
]
