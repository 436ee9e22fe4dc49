"""Tune's search algorithm and trial scheduler from the ``tune`` config section. Time is
counted in training steps (the ``step`` every report carries), so ASHA's rungs and PBT's
perturbation interval line up with evaluations."""

from __future__ import annotations

import warnings
from typing import Any

from pipelines.config import ConfigError, GanforgeConfig
from pipelines.config.space import Dimension, check_strategy, parse_points


def search_algorithm(cfg: GanforgeConfig, dims: dict[str, Dimension], limit: int = 0) -> Any:
    """At most ``limit`` trials at once (0: no limit): Tune ignores ``max_concurrent_trials``
    with its own random/grid generator, so the limit is set on the algorithm itself."""
    check_strategy(cfg, dims)
    if cfg.tune.search == "random":
        from ray.tune.search import BasicVariantGenerator

        # With several seeds, each sampled point is held constant over the seed grid (Tune's
        # default resamples the random dimensions for every grid value).
        return BasicVariantGenerator(
            points_to_evaluate=parse_points(cfg.tune.points, dims) or None,
            random_state=cfg.tune.seed,
            max_concurrent=limit,
            constant_grid_search=cfg.tune.seeds > 1,
        )
    try:
        import optuna.samplers
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as exc:
        raise ConfigError(f"tune.search=optuna needs the optuna package ({exc})") from exc
    from ray.tune.search import ConcurrencyLimiter

    searcher = OptunaSearch(
        sampler=optuna.samplers.TPESampler(seed=cfg.tune.seed),
        points_to_evaluate=parse_points(cfg.tune.points, dims) or None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher


def scheduler(cfg: GanforgeConfig, dims: dict[str, Dimension]) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    every = cfg.eval.every
    if cfg.tune.scheduler == "asha":
        grace = min(cfg.tune.grace_evals * every, cfg.train.steps)
        return ASHAScheduler(
            time_attr="step", max_t=cfg.train.steps, grace_period=grace, reduction_factor=cfg.tune.reduction_factor
        )
    if cfg.tune.scheduler == "pbt":
        mutations = {k: d.domain() for k, d in dims.items() if d.kind != "grid"}  # check_strategy: not empty
        # Tune suggests reusing trial actors under PBT; a ganforge trial builds a new Train run at
        # every start anyway, so the advice does not apply.
        warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
        # The bottom quantile copies the top quantile's weights and perturbs their config.
        return PopulationBasedTraining(
            time_attr="step",
            perturbation_interval=cfg.tune.perturbation_evals * every,
            hyperparam_mutations=mutations,
            quantile_fraction=cfg.tune.pbt_quantile,
            synch=cfg.tune.pbt_synch,
        )
    return FIFOScheduler()
