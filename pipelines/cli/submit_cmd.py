"""``ganforge submit -- COMMAND...``: run any ganforge command as a job on a Ray cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from cluster import jobs


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit",
        help="run a ganforge command as a Ray job (Ray Jobs API), logging to an MLflow server",
        description="Ships this project's code with the job; the cluster needs the dependencies "
        "installed (ray_cluster.yaml does that). Example: "
        "ganforge submit -- train lsgan --data /shared/shards --workers 4",
    )
    p.add_argument(
        "--address",
        help="the cluster's dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
        "$RAY_ADDRESS or the local cluster of `ganforge cluster up`)",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow server the job logs to, as the cluster's nodes reach it (default: "
        "$MLFLOW_TRACKING_URI, the local cluster's server, or the head's own setting)",
    )
    p.add_argument("--job-id", help="a name for the job (default: Ray's)")
    p.add_argument("--wait", action="store_true", help="stream the job's logs until it ends; exit 1 if it fails")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the ganforge command, after --")
    p.set_defaults(func=run)


def absolute_data_paths(args: list[str]) -> list[str]:
    """`--data shards/x` names a folder relative to where the user typed it; the job runs in
    another directory. Local paths that exist become absolute (a local cluster shares this
    filesystem); URLs and cluster-side paths pass through."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--data" and i + 1 < len(args):
            out += [arg, _absolute(args[i + 1])]
            i += 2
            continue
        if arg.startswith("--data="):
            arg = "--data=" + _absolute(arg.split("=", 1)[1])
        out.append(arg)
        i += 1
    return out


def _absolute(path: str) -> str:
    if "://" in path or path.startswith("pipe:"):
        return path
    # A shard folder here, or a brace pattern of shard files in a folder here; any other path
    # may be one on the cluster's nodes, and stays as given.
    from pipelines.data.pattern import is_pattern  # WebDataset: only when submitting

    here = Path(path).exists() or (is_pattern(path) and Path(path).parent.is_dir())
    return str(Path(path).resolve()) if here else path


def requested(command: list[str]):
    """What a submitted `train` or `tune` asks of the cluster, read as the job will read it:
    a mistyped command, a bad config value or a search that cannot work fails here, before it
    is sent (data and weights may be paths on the cluster: the job's own preflight checks
    them). None for other commands, or where the command's config files are not on this
    machine."""
    if command[:1] not in (["train"], ["tune"]):
        return None
    from pipelines.cli import main, train_cmd, tune_cmd
    from pipelines.config import ConfigError, load
    from pipelines.train.preflight import check_search, resource_request

    args = main.parser().parse_args(command)
    flags = train_cmd.flag_overrides(args) if args.command == "train" else tune_cmd.flag_overrides(args)
    try:
        cfg = load(args.gan, args.config, flags + args.overrides)
    except ConfigError:
        if all(Path(f).is_file() for f in args.config):
            raise
        return None
    if args.command == "tune":
        check_search(cfg)
    return resource_request(cfg, search=args.command == "tune")


def run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    job_id, uri = jobs.submit(
        absolute_data_paths(command), args.address, args.tracking_uri, args.job_id, requested(command)
    )
    print(f"submitted job {job_id}, logging to {uri or 'the cluster head MLFLOW_TRACKING_URI'}")
    if not args.wait:
        print(f"follow it with `ganforge jobs logs {job_id} --follow`")
        return 0
    client = jobs.client(args.address)
    for chunk in jobs.follow_logs(client, job_id):
        print(chunk, end="", flush=True)
    status = jobs.wait(client, job_id, timeout=60)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1
