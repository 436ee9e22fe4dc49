"""``ganforge jobs list|status|logs|stop``: the jobs of a Ray cluster."""

from __future__ import annotations

import argparse
import datetime

from cluster import jobs


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list, inspect, follow or stop jobs on a Ray cluster")
    p.add_argument(
        "--address",
        help="the cluster's dashboard (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS or the local cluster)",
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="every job, newest last").set_defaults(func=run_list)
    for name, func, text in (
        ("status", run_status, "a job's status and message"),
        ("stop", run_stop, "stop a running job"),
    ):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument("job_id")
        verb.set_defaults(func=func)
    logs = verbs.add_parser("logs", help="a job's output")
    logs.add_argument("job_id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(func=run_logs)


def _when(ms: int | None) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def run_list(args: argparse.Namespace) -> None:
    found = sorted(jobs.client(args.address).list_jobs(), key=lambda job: job.start_time or 0)
    if not found:
        print("no jobs")
        return
    print(f"{'JOB':28s} {'STATUS':10s} {'STARTED':19s}  ENTRYPOINT")
    for job in found:
        name = job.submission_id or job.job_id
        print(f"{name:28s} {job.status.value:10s} {_when(job.start_time):19s}  {job.entrypoint}")


def run_status(args: argparse.Namespace) -> int:
    info = jobs.job_info(jobs.client(args.address), args.job_id)
    print(f"{args.job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
    return 0 if info.status.value != "FAILED" else 1


def run_logs(args: argparse.Namespace) -> None:
    client = jobs.client(args.address)
    jobs.job_info(client, args.job_id)  # an unknown id: one line naming the cluster
    if not args.follow:
        print(client.get_job_logs(args.job_id), end="")
        return
    for chunk in jobs.follow_logs(client, args.job_id):
        print(chunk, end="", flush=True)


def run_stop(args: argparse.Namespace) -> None:
    client = jobs.client(args.address)
    jobs.job_info(client, args.job_id)
    stopped = client.stop_job(args.job_id)
    print(f"{args.job_id}: {'stop requested' if stopped else 'not running'}")
