"""The driver's view of a running search (a Tune callback): a progress bar over trials, and
each trial's child run ended with its status and stop reason as soon as the trial ends."""

from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback
from tqdm import tqdm

from pipelines.config import GanforgeConfig
from pipelines.tune.mlflow_runs import end_trial_run

UNSTABLE = ("diverged", "d_overpowers", "mode_collapse")


def stop_reason(result: dict[str, Any], steps: int) -> str:
    """completed, early_stopped (by the scheduler), or an instability reason."""
    if result.get("stop_reason"):
        return str(result["stop_reason"])
    return "completed" if result.get("step", 0) >= steps else "early_stopped"


STATUS = {"completed": "FINISHED", "early_stopped": "KILLED", **{r: "FAILED" for r in UNSTABLE}}


class SearchTracker(Callback):
    def __init__(self, cfg: GanforgeConfig, parent: str, total: int, enabled: bool):
        self.cfg, self.parent = cfg, parent
        self.best = math.inf
        self.reasons: dict[str, int] = {}
        self.total, self.enabled = total, enabled
        self.bar: tqdm | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune saves its callbacks with the experiment
        return {**self.__dict__, "bar": None}

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        self.bar = tqdm(total=self.total, desc="tune", unit="trial", disable=not self.enabled, dynamic_ncols=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        objective = result.get("objective")
        if isinstance(objective, (int, float)) and objective < self.best:
            self.best = objective
            self._postfix()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        reason = stop_reason(result, self.cfg.train.steps)
        end_trial_run(
            self.cfg,
            self.parent,
            trial.trial_id,
            STATUS.get(reason, "FINISHED"),
            reason,
            str(result.get("stop_detail", "")),
        )
        self._ended(reason)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        end_trial_run(self.cfg, self.parent, trial.trial_id, "FAILED", "error", str(trial.error_file or ""))
        self._ended("error")

    def _ended(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if self.bar is not None:  # Tune calls setup before any trial
            self.bar.update(1)
        self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix({"best": f"{self.best:.4f}", **self.reasons}, refresh=False)

    def on_experiment_end(self, trials, **info) -> None:
        if self.bar is not None:
            self.bar.close()
