"""``ganforge``: one console script, with subcommands. Errors a user can fix (bad config,
bad data, unknown GAN) print one line and exit 2; a failed training job exits 1."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli import data_cmd, train_cmd, ui_cmd

USER_ERRORS = (ValueError, KeyError, FileNotFoundError)  # ConfigError and DataError are ValueErrors


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ganforge", description="Train GANs at scale with Ray, WebDataset and MLflow.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_cmd.add(sub)
    train_cmd.add(sub)
    ui_cmd.add(sub)
    gans = sub.add_parser("gans", help="list the GANs in the registry")
    gans.set_defaults(func=lambda args: print("\n".join(__import__("gan_core").available())))
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    except train_cmd.TrainingFailed as exc:
        print(f"ganforge: {exc}", file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        message = exc.args[0] if exc.args else str(exc)
        print(f"ganforge: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
