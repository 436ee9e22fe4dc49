"""``ganforge train GAN --data SHARDS``: a Ray Train DDP job tracked in MLflow."""

from __future__ import annotations

import argparse

from pipelines.cli.options import (
    add_cluster_options,
    add_config_options,
    add_data_option,
    add_run_options,
    as_overrides,
    registered_line,
    run_option_overrides,
)
from pipelines.cli.ui_cmd import ui_hint
from pipelines.config import ConfigError, GanforgeConfig, build, load
from pipelines.config.load import apply_overrides
from pipelines.tracking import store


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a GAN with Ray Train (DDP) and track it in MLflow")
    p.add_argument("gan", help="a registered GAN (`ganforge gans` lists them)")
    add_data_option(p)
    p.add_argument(
        "--workers",
        metavar="N|MIN-MAX",
        help="DDP workers (train.workers); MIN-MAX for an elastic run that shrinks and grows with the cluster",
    )
    p.add_argument("--steps", type=int, help="optimizer steps (train.steps)")
    p.add_argument("--batch-size", type=int, help="global batch, split evenly across the workers (data.batch_size)")
    p.add_argument("--gpus", action="store_true", help="one GPU per worker, NCCL (train.use_gpu)")
    add_config_options(p, "optim.lr_d=4e-4")
    add_run_options(p)
    p.add_argument(
        "--resume",
        metavar="RUN_OR_CHECKPOINT",
        help="continue a run (same MLflow run and step axis) from its newest checkpoint, or from a "
        "checkpoint folder; flags and --set still apply, e.g. --steps to train longer",
    )
    p.add_argument(
        "--from-search",
        metavar="SEARCH_RUN_ID",
        help="train the best config a `ganforge tune` search found (its parent MLflow run id); "
        "flags and --set still apply",
    )
    add_cluster_options(p, "show Ray's logs and the workers' output")
    p.set_defaults(func=run)


def flag_overrides(args: argparse.Namespace) -> list[str]:
    flags = {
        "data.path": args.data,
        "train.workers": args.workers,
        "train.steps": args.steps,
        "data.batch_size": args.batch_size,
        "train.use_gpu": True if args.gpus else None,
        **run_option_overrides(args),
    }
    return as_overrides(flags)


def from_search(gan: str, parent: str, overrides: list[str], tracking_uri: str) -> GanforgeConfig:
    from pipelines.tune.summary import best_config

    tree = best_config(parent, tracking_uri)
    if tree.get("gan") != gan:
        raise ConfigError(f"search run {parent} tuned {tree.get('gan')}, not {gan}")
    return build(apply_overrides(tree, overrides))


def run(args: argparse.Namespace) -> None:
    from pipelines.train.launch import train
    from pipelines.train.resume import find_checkpoint, resume_config

    # Flags first, so an explicit --set wins over them.
    overrides = flag_overrides(args) + args.overrides
    cfg = load(args.gan, args.config, overrides)
    checkpoint = None
    if args.resume or args.from_search:  # looked up in the store that the flags, --config and --set name
        tracking = store.resolve(cfg.tracking)
    if args.resume:
        checkpoint = find_checkpoint(args.resume, tracking)
        cfg = resume_config(args.gan, checkpoint, overrides)
        print(f"resuming {cfg.tracking.run_id or 'as a new run'} from {checkpoint}")
    elif args.from_search:
        cfg = from_search(args.gan, args.from_search, overrides, tracking.uri)
        print(f"training the best config of search run {args.from_search}")
    outcome = train(
        cfg,
        address=args.address,
        progress=not args.no_progress,
        verbose=args.verbose,
        resume_from=str(checkpoint) if checkpoint else None,
    )
    shown = {k: round(v, 4) for k, v in outcome.metrics.items() if k.startswith(("loss/", "perf/images"))}
    print(f"finished: MLflow run {outcome.run_id} {shown}")
    if outcome.model:
        print(f"best model: {outcome.model}")
    if outcome.registered:
        print(registered_line(outcome.registered))
    print(f"browse it: {ui_hint(outcome.tracking)}")
