"""Options every Ray job command (train, tune) takes the same way."""

from __future__ import annotations

import argparse


def add_config_options(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="YAML file merged over the GAN's defaults (repeatable: a later file wins)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"dotted override, e.g. --set {example} (repeatable)")


def add_cluster_options(p: argparse.ArgumentParser, verbose_help: str) -> None:
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or a local instance)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help=verbose_help)
