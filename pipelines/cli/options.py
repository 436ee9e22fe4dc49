"""Options every Ray job command (train, tune) takes the same way."""

from __future__ import annotations

import argparse

DATA_HELP = (
    "the shards: a folder written by `ganforge data shard` (a path, an http(s) URL, or s3://bucket/path or "
    "gs://bucket/path, streamed through the store's own CLI), or a brace pattern of shard files without a "
    "manifest ('s3://bucket/x-{000000..000127}.tar', or a WebDataset 'pipe:COMMAND')"
)


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help=DATA_HELP)


def add_config_options(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="YAML",
        help="YAML file merged over the GAN's defaults (repeatable: a later file wins)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"dotted override, e.g. --set {example} (repeatable)",
    )


def add_cluster_options(p: argparse.ArgumentParser, verbose_help: str) -> None:
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or a local instance)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help=verbose_help)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Where a run logs, and how long it waits for an autoscaling cluster to make room."""
    p.add_argument(
        "--tracking-uri",
        help="MLflow store or server the run logs to, and where --resume / "
        "--from-search look runs up (tracking.uri; default: "
        "$MLFLOW_TRACKING_URI or ./mlflow.db)",
    )
    p.add_argument(
        "--register",
        metavar="NAME",
        help="register the best model (a search: its best trial's) in MLflow's model registry under NAME; "
        "it takes the alias best when it scores better than the version holding it (tracking.register)",
    )
    p.add_argument(
        "--wait-timeout",
        type=float,
        metavar="SECONDS",
        help="on a cluster with an autoscaler, how long to wait for room for the workers before giving "
        "up (train.wait_timeout; default 0: no limit). A cluster that cannot grow refuses at once",
    )


def run_option_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "tracking.uri": args.tracking_uri,
        "tracking.register": args.register,
        "train.wait_timeout": args.wait_timeout,
    }


def as_overrides(flags: dict[str, object]) -> list[str]:
    """The flags a user gave, as ``key=value`` overrides (before --set, which wins)."""
    return [f"{key}={value}" for key, value in flags.items() if value is not None]


def registered_line(registered) -> str:
    """What `--register` did, in one line."""
    line = f"registered: models:/{registered.name}/{registered.version}"
    if registered.best:
        return f"{line}, now models:/{registered.name}@best"
    return f"{line} ({registered.note})" if registered.note else line
