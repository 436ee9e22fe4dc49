"""Ray Train's ``TorchTrainer`` without the Ray Data actor that ganforge never uses.

Ray Train V2 starts a ``DatasetManager`` actor for every run, whether or not the trainer was
given Ray Datasets. ganforge streams WebDataset shards inside its workers and passes none, so
that actor is one more process start per run, and per Tune trial, that does nothing: about
2 CPU-seconds, since it imports Ray Data and pandas. A trainer given datasets keeps it.

Leaving it out reaches into Ray Train's internals (the default callbacks); if a Ray release
moves them, runs go on with the plain ``TorchTrainer``."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def torch_trainer_class() -> type:
    from ray.train.torch import TorchTrainer

    try:
        from ray.train.v2._internal.callbacks import DatasetsCallback
    except ImportError:
        return TorchTrainer
    if not hasattr(TorchTrainer, "_create_default_callbacks"):
        return TorchTrainer

    class GanTrainer(TorchTrainer):
        def _create_default_callbacks(self) -> list[Any]:
            callbacks = super()._create_default_callbacks()
            if self.datasets:
                return callbacks
            return [c for c in callbacks if not isinstance(c, DatasetsCallback)]

    return GanTrainer
