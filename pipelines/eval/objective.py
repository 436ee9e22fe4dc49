"""The eval metric a run's checkpoints and models are ranked by, and a search's trials
(lower is better): FID on Inception features when its weights are found, else SWD, which
needs images of 16 px or more for its pyramid, else KID on pixels."""

from __future__ import annotations

from gan_core.metrics.inception import weights_path
from pipelines.config import GanforgeConfig


def objective_metric(cfg: GanforgeConfig, resolution: int) -> str:
    if cfg.tune.metric != "auto":
        return f"eval/{cfg.tune.metric}"
    if weights_path(cfg.eval.inception_weights or None) is not None:
        return "eval/fid_inception"
    return "eval/swd" if resolution >= 16 else "eval/kid_pixels"
