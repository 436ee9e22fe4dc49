"""ganforge tune in isolation: the search space, the search algorithms, the concurrency rule
and the stability verdicts (real searches: test_tune_e2e.py)."""

from __future__ import annotations

import re

import pytest

from cluster.capacity import Capacity
from cluster.connect import TRIAL_RESOURCE
from pipelines.config import ConfigError, load, to_dict
from pipelines.config.schema import StabilityConfig
from pipelines.config.space import apply_point, parse_points, parse_space, with_seeds
from pipelines.core.guard import Diverged
from pipelines.core.stability import StabilityMonitor
from pipelines.tune.schedule import search_algorithm
from pipelines.tune.search import concurrency
from pipelines.tune.summary import Trial, pool_seeds


# --- the space ---------------------------------------------------------------------------
def test_space_entries_become_dimensions_and_points_apply_to_the_tree():
    cfg = load("lsgan")
    dims = parse_space(
        [
            "optim.lr_g=loguniform:1e-5:1e-2",
            "optim.beta1=uniform:0:0.9",
            "model.ngf=choice:32,64",
            "optim.lr_d=grid:1e-4,4e-4",
            "optim.lr_g=loguniform:1e-4:1e-3",
        ],
        to_dict(cfg),
    )
    assert dims["optim.lr_g"].values == (1e-4, 1e-3)  # the later entry wins (a --space over the YAML)
    assert dims["model.ngf"].values == (32, 64) and dims["optim.lr_d"].kind == "grid"
    tree = apply_point(to_dict(cfg), {"optim.lr_d": 4e-4, "model.ngf": 32})
    assert tree["optim"]["lr_d"] == 4e-4 and tree["model"]["ngf"] == 32 and to_dict(cfg)["model"]["ngf"] == 64


@pytest.mark.parametrize(
    "entry, message",
    [
        ("optim.lr_q=loguniform:1e-5:1e-2", "unknown config key optim.lr_q (did you mean optim.lr_g?)"),
        ("optim.lr_g=loguniform:0:1e-2", "loguniform needs lo > 0"),
        ("optim.lr_g=uniform:1e-2:1e-5", "two numbers lo:hi with lo < hi"),
        ("optim.lr_g=normal:0:1", "kind one of"),
        ("optim.lr_g", "is not 'dotted.key=kind:args'"),
    ],
)
def test_bad_space_entries_name_the_problem(entry, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_space([entry], to_dict(load("lsgan")))


def test_points_to_try_first_are_parsed_and_checked_against_the_space():
    dims = parse_space(["optim.lr_g=loguniform:1e-5:1e-2", "optim.lr_d=loguniform:1e-5:1e-2"], to_dict(load("lsgan")))
    assert parse_points(["optim.lr_g=2e-4,optim.lr_d=4e-4"], dims) == [{"optim.lr_g": 2e-4, "optim.lr_d": 4e-4}]
    with pytest.raises(ConfigError, match="optim.beta1 is not a key of tune.space"):
        parse_points(["optim.lr_g=2e-4,optim.beta1=0.5"], dims)
    with pytest.raises(ConfigError, match="gives no value for optim.lr_d"):
        parse_points(["optim.lr_g=2e-4"], dims)


def test_seeds_repeat_every_point_and_refuse_a_seed_dimension_of_their_own():
    cfg = load("lsgan", overrides=["train.seed=7"])
    dims = with_seeds(parse_space(cfg.tune.space, to_dict(cfg)), 3, cfg.train.seed)
    assert dims["train.seed"].kind == "grid" and dims["train.seed"].values == (7, 8, 9)
    assert parse_points(["optim.lr_g=2e-4,optim.lr_d=2e-4"], dims) == [{"optim.lr_g": 2e-4, "optim.lr_d": 2e-4}]
    with pytest.raises(ConfigError, match="drop the train.seed entry"):
        with_seeds(parse_space(["optim.lr_g=loguniform:1e-5:1e-2", "train.seed=choice:0,1"], to_dict(cfg)), 2, 0)
    for search, scheduler, message in (
        ("optuna", "asha", "use tune.search=random"),
        ("random", "pbt", "use tune.seeds=1"),
    ):
        seeded = load("lsgan", overrides=[f"tune.search={search}", f"tune.scheduler={scheduler}", "tune.seeds=2"])
        with pytest.raises(ConfigError, match=message):
            search_algorithm(seeded, with_seeds(parse_space(seeded.tune.space, to_dict(seeded)), 2, 0))


def _trial(trial_id, lr_g, seed, objective, reason="completed"):
    return Trial(
        trial_id,
        {"optim.lr_g": lr_g, "optim.lr_d": 2e-4, "train.seed": seed},
        objective,
        100,
        reason,
        f"run-{trial_id}",
    )


def test_points_are_ranked_by_their_mean_over_seeds_not_by_a_lucky_seed():
    trials = [
        _trial("a0", 1e-3, 0, 10.0),
        _trial("a1", 1e-3, 1, 50.0),  # one lucky seed, one bad
        _trial("b0", 2e-4, 0, 20.0),
        _trial("b1", 2e-4, 1, 22.0),
        _trial("c0", 5e-4, 0, 15.0),
        _trial("c1", 5e-4, 1, 16.0, reason="early_stopped"),
    ]
    best, second, stopped = pool_seeds(trials)
    assert best.point == {"optim.lr_g": 2e-4, "optim.lr_d": 2e-4} and best.objective == 21.0 and best.spread == 1.0
    assert best.seeds == 2 and best.trial_id == "b0" and best.run_id == "run-b0"  # its best seed's run is registered
    assert second.point["optim.lr_g"] == 1e-3 and second.objective == 30.0
    assert stopped.reason == "early_stopped" and not stopped.eligible  # a stopped seed disqualifies its point


def test_optuna_cannot_drive_pbt_and_says_what_to_use():
    cfg = load("lsgan", overrides=["tune.search=optuna", "tune.scheduler=pbt"])
    with pytest.raises(ConfigError, match="use tune.search=random with pbt"):
        search_algorithm(cfg, parse_space(cfg.tune.space, to_dict(cfg)))


def test_optuna_search_is_built_with_a_concurrency_limit():
    cfg = load("lsgan", overrides=["tune.search=optuna"])
    algorithm = search_algorithm(cfg, parse_space(cfg.tune.space, to_dict(cfg)), limit=2)
    assert type(algorithm).__name__ == "ConcurrencyLimiter" and algorithm.max_concurrent == 2


def _nodes(*cpus: float, trial_slots: float = 1024) -> Capacity:
    nodes = [{"CPU": c} for c in cpus]
    nodes[0][TRIAL_RESOURCE] = trial_slots
    return Capacity("a cluster", tuple(nodes), grows=False)


def test_concurrency_fills_the_cluster():
    cfg = load("lsgan", overrides=["train.workers=2"])
    assert concurrency(cfg, _nodes(2)) == 1
    assert concurrency(cfg, _nodes(64)) == 32
    two_threads = load("lsgan", overrides=["train.workers=2", "train.threads_per_worker=2"])
    assert concurrency(two_threads, _nodes(3, 3, 3)) == 1  # a worker's 2 CPUs are on one node: 3 workers fit, not 4
    assert concurrency(load("lsgan", overrides=["train.workers=2", "tune.max_concurrent=3"]), _nodes(64)) == 3
    assert concurrency(cfg, _nodes(64, trial_slots=5)) == 5  # each trial's driver takes a slot


# --- the stability monitor -----------------------------------------------------------------
def test_a_discriminator_at_its_floor_while_g_loses_ground_is_d_overpowers():
    monitor = StabilityMonitor(StabilityConfig(check=True, patience=2, d_loss_below=0.05))
    monitor.check(20, {"loss/D": 0.30, "loss/G": 0.40}, {})
    monitor.check(40, {"loss/D": 0.03, "loss/G": 0.45}, {})
    with pytest.raises(Diverged, match="d_overpowers: at step 60") as caught:
        monitor.check(60, {"loss/D": 0.02, "loss/G": 0.50}, {})
    assert caught.value.reason == "d_overpowers"


def test_a_low_d_loss_alone_or_a_falling_g_loss_is_not_an_alarm():
    monitor = StabilityMonitor(StabilityConfig(check=True, patience=2))
    for step, g in enumerate([0.5, 0.4, 0.3, 0.2]):  # D at its floor, but G is learning
        monitor.check(step, {"loss/D": 0.01, "loss/G": g}, {})
    balanced = StabilityMonitor(StabilityConfig(check=True, patience=2))
    for step, g in enumerate([0.5, 0.6, 0.7, 0.8]):  # G's loss rises, but D is not winning outright
        balanced.check(step, {"loss/D": 0.2, "loss/G": g}, {})


def test_diversity_that_falls_from_its_peak_is_mode_collapse_but_an_untrained_start_is_not():
    monitor = StabilityMonitor(StabilityConfig(check=True, patience=2, collapse_ratio=0.25))
    for step, diversity in enumerate([0.02, 0.03, 0.5, 0.8, 0.15]):  # starts low: untrained, not collapsed
        monitor.check(step, {}, {"eval/diversity": diversity})
    with pytest.raises(Diverged, match="mode_collapse") as caught:
        monitor.check(9, {}, {"eval/diversity": 0.1})
    assert caught.value.reason == "mode_collapse"
