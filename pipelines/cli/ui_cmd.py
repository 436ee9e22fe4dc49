"""``ganforge ui``: the MLflow UI over the project's store, on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from cluster.services import SERVER_ENV, server_env
from pipelines.config.schema import TrackingConfig
from pipelines.tracking import store


def add(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="open the MLflow UI over the run store (127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--tracking-uri", default="", help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    ui.add_argument("--print-command", action="store_true", help="print the mlflow command instead of running it")
    ui.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    command = store.ui_command(store.resolve(TrackingConfig(uri=args.tracking_uri)), args.port)
    env = server_env()
    if args.print_command:
        print(shlex.join([f"{k}={env[k]}" for k in SERVER_ENV] + command))
        return
    print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    os.execve(command[0], command, env)


def ui_hint(tracking: TrackingConfig) -> str:
    """The command that opens the UI over ``tracking``, as the user can type it from here;
    a tracking server serves its own UI."""
    if tracking.uri.startswith(("http://", "https://")):
        return f"the MLflow UI at {tracking.uri}"
    exe = Path(sys.argv[0]).resolve()
    on_path = shutil.which("ganforge")
    installed_elsewhere = exe.name != "ganforge" or (on_path and Path(on_path).resolve() == exe)
    relative = os.path.relpath(exe)
    command = "ganforge" if installed_elsewhere else (str(exe) if relative.startswith("..") else relative)
    if tracking.uri != store.resolve(TrackingConfig()).uri:
        command += f" ui --tracking-uri {shlex.quote(tracking.uri)}"
    else:
        command += " ui"
    return f"{command}   (MLflow UI on http://127.0.0.1:5000)"
