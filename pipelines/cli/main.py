"""``ganforge``: one console script, with subcommands. Errors a user can fix (bad config,
bad data, unknown GAN) print one line and exit 2; a failed training job exits 1."""

from __future__ import annotations

import argparse
import sys
import warnings

from cluster.errors import CapacityError, ClusterError, JobsError
from pipelines.cli import (
    cluster_cmd,
    data_cmd,
    evaluate_cmd,
    generate_cmd,
    jobs_cmd,
    submit_cmd,
    train_cmd,
    tune_cmd,
    ui_cmd,
)
from pipelines.config.load import ConfigError
from pipelines.errors import DataError, Diverged, SearchInterrupted, TrainingFailed

# Command modules import torch, Ray and MLflow inside the functions that run a command, so
# `ganforge --help`, `data`, `cluster` and `jobs` never pay for them (tests/test_cli_startup.py).

# Problems a user fixes by changing the command: one line, no traceback (NotFound, a reference
# that does not exist, is a FileNotFoundError). Anything else is a bug and keeps its traceback.
USER_ERRORS = (ConfigError, DataError, FileNotFoundError, ConnectionError, ClusterError, JobsError, CapacityError)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ganforge", description="Train GANs at scale with Ray, WebDataset and MLflow.")
    top.add_argument("--version", action="version", version=f"ganforge {_version()}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_cmd.add(sub)
    train_cmd.add(sub)
    tune_cmd.add(sub)
    generate_cmd.add(sub)
    evaluate_cmd.add(sub)
    ui_cmd.add(sub)
    cluster_cmd.add(sub)
    submit_cmd.add(sub)
    jobs_cmd.add(sub)
    sub.add_parser("gans", help="list the GANs in the registry").set_defaults(func=list_gans)
    return top


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ganforge")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def list_gans(args: argparse.Namespace) -> None:
    del args
    import gan_core

    for name in gan_core.available():
        cls = gan_core.get(name)
        gan = cls(cls.Config(), 64, 3)  # the phases of the GAN's default config
        print(f"{name:10s} domains: {', '.join(gan.domains):6s} phases: {', '.join(map(_describe, gan.phases))}")


def _describe(phase) -> str:
    text = f"{phase.name} ({phase.trains}"
    text += f", every {phase.every}" if phase.every > 1 else ""
    text += f", skips steps divisible by {phase.skip_every}" if phase.skip_every else ""
    return text + (", lazy)" if phase.lazy else ")")


def _one_line_warnings() -> None:
    """Our own warnings read as one line, not as a source location and a code excerpt."""
    default = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None):
        if category is UserWarning:
            return f"ganforge: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = format_warning


def one_line(exc: BaseException) -> str:
    """The error as one line: a message from a library (a server's reply, a parser's report)
    may span several."""
    return " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    _one_line_warnings()
    args = parser().parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    except SearchInterrupted as exc:
        print(f"ganforge: {exc}", file=sys.stderr)
        return 130
    except (TrainingFailed, Diverged) as exc:
        print(f"ganforge: {exc}", file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        print(f"ganforge: error: {one_line(exc)}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
