"""What a Ray Train worker is handed to run: one typed object, carried as it is (Ray pickles
it), not a dict of the config beside a tree of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.config import GanforgeConfig


@dataclass(frozen=True)
class RunSpec:
    config: GanforgeConfig  # validated by the driver; ``config.tracking.run_id`` names the MLflow run
    resume_from: str | None = None  # a checkpoint folder that `train --resume` or a Tune exploit names
    progress: Any = None  # the driver's progress queue (a Ray actor handle); None in a Tune trial
    relay: Any = None  # the relay actor to a loopback MLflow server; None where rank 0 reaches it
    # Keep the best checkpoints by eval score besides the newest; False keeps the newest ones
    # (a PBT trial: an exploit restores what another trial had most recently).
    rank_checkpoints: bool = True

    @property
    def run_id(self) -> str:
        return self.config.tracking.run_id
