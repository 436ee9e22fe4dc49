"""``ganforge tune GAN --data SHARDS``: a Ray Tune search of the G/D learning-rate balance,
each trial a Ray Train run, tracked as a parent MLflow run with one child run per trial."""

from __future__ import annotations

import argparse

from pipelines.cli.options import (
    add_cluster_options,
    add_config_options,
    add_data_option,
    add_run_options,
    as_overrides,
    run_option_overrides,
)
from pipelines.cli.ui_cmd import ui_hint
from pipelines.config import load
from pipelines.config.schema import DEFAULT_SPACE, SCHEDULERS, SEARCHES


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search the generator/discriminator learning-rate balance with Ray Tune")
    p.add_argument("gan", help="a registered GAN (`ganforge gans` lists them)")
    add_data_option(p)
    p.add_argument("--samples", type=int, help="configurations to try (tune.samples)")
    p.add_argument(
        "--seeds",
        type=int,
        help="train every configuration with this many seeds and rank by their mean (tune.seeds; random search)",
    )
    p.add_argument("--workers-per-trial", type=int, help="DDP workers of each trial (train.workers)")
    p.add_argument("--steps", type=int, help="step budget of each trial (train.steps)")
    p.add_argument("--search", choices=SEARCHES, help="search algorithm (tune.search)")
    p.add_argument("--scheduler", choices=SCHEDULERS, help="trial scheduler (tune.scheduler)")
    p.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="KEY=KIND:ARGS",
        help="add or replace a dimension, e.g. --space optim.beta1=uniform:0:0.9 (repeatable; "
        f"default: {' '.join(DEFAULT_SPACE)})",
    )
    p.add_argument("--name", help="the search's name (its folder in train.storage_path); default <gan>-<data>-<time>")
    p.add_argument("--resume", metavar="NAME", help="continue an interrupted search; finished trials are not repeated")
    add_config_options(p, "eval.every=200")
    add_run_options(p)
    add_cluster_options(p, "show Ray's logs")
    p.set_defaults(func=run)


def flag_overrides(args: argparse.Namespace) -> list[str]:
    flags = {
        "data.path": args.data,
        "tune.samples": args.samples,
        "tune.seeds": args.seeds,
        "train.workers": args.workers_per_trial,
        "train.steps": args.steps,
        "tune.search": args.search,
        "tune.scheduler": args.scheduler,
        **run_option_overrides(args),
    }
    return as_overrides(flags)


def run(args: argparse.Namespace) -> None:
    from pipelines.tune.search import run_search  # Ray Tune loads in seconds: only when searching

    cfg = load(args.gan, args.config, flag_overrides(args) + args.overrides)
    if args.space:  # a --space entry replaces the YAML's entry for the same key (parse_space keeps the last)
        cfg.tune.space = [*cfg.tune.space, *args.space]
    outcome = run_search(
        cfg,
        name=args.resume or args.name,
        address=args.address,
        resume=bool(args.resume),
        progress=not args.no_progress,
        verbose=args.verbose,
    )
    print(f"search {outcome.name}: {len(outcome.trials)} trials, MLflow parent run {outcome.parent_run_id}")
    for trial in outcome.trials:
        point = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.point.items())
        print(f"  {trial.trial_id}  {point}  {outcome.metric}={trial.objective:.4f}  step {trial.step}  {trial.reason}")
    if outcome.best is None:
        print("no trial completed its budget without instability: widen tune.space or lower the learning rates")
    else:
        best = outcome.best
        spread = f" ± {best.spread:.4f} (mean ± std of {best.seeds} seeds)" if best.seeds > 1 else ""
        print(f"best: {best.point} {outcome.metric}={best.objective:.4f}{spread}")
        print(f"train it: ganforge train {cfg.gan} --from-search {outcome.parent_run_id}")
    print(f"browse it: {ui_hint(outcome.tracking)}")
