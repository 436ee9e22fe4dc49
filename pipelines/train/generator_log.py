"""Rank 0's generator, logged at every evaluation and at the end of a run: the sampling nets
(EMA copies where there are any) are exported, wrapped as the MLflow pyfunc model and logged
as a LoggedModel of the run with its step, its eval metrics and its score; the driver then
names the best one in the run (``tracking.models.mark_best``)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan_core.interface import GENERATOR
from pipelines.core.checkpoint import export_generator
from pipelines.core.engine import Engine

if TYPE_CHECKING:
    from pipelines.tracking.runs import RunLogger


class GeneratorLog:
    def __init__(self, engine: Engine, logger: RunLogger, meta: dict[str, Any], metric: str, reference: str):
        self.engine, self.logger, self.meta = engine, logger, meta
        self.metric, self.reference = metric, reference

    def tags(self, evaluated: dict[str, float]) -> dict[str, str]:
        """What a model is ranked and compared by; none for a model logged without evaluation."""
        from pipelines.tracking.models import METRIC_TAG, REFERENCE_TAG, SCORE_TAG

        if not evaluated:
            return {}
        score = evaluated.get(self.metric, math.inf)
        return {SCORE_TAG: repr(float(score)), METRIC_TAG: self.metric, REFERENCE_TAG: self.reference}

    def log(self, step: int, evaluated: dict[str, float] | None) -> str | None:
        """Log the generator at ``step`` with the evaluation's metrics (which go to the run
        either way); returns the LoggedModel's id, or None where MLflow could not take it."""
        from pipelines.inference.pyfunc import save_pyfunc  # MLflow's pyfunc: rank 0 alone

        evaluated = evaluated or {}
        exported = self.engine.gan.nets_with(GENERATOR)
        nets = {name: net for name, net in self.engine.sampling_nets().items() if name in exported}
        with tempfile.TemporaryDirectory(prefix="ganforge-model-") as folder:
            export = export_generator(Path(folder, "generator"), nets, self.meta)
            model = save_pyfunc(Path(folder, "model"), export, self.meta, self.engine.gan.domains)
            model_id = self.logger.model(step, model, evaluated, self.tags(evaluated))
        if model_id is None and evaluated:
            self.logger.metrics(step, evaluated)
        return model_id
