"""``ganforge cluster up|down|status``: a local Ray head and MLflow server on 127.0.0.1."""

from __future__ import annotations

import argparse
from pathlib import Path

from cluster import local_cluster, state
from cluster.connect import ensure_token


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="start, stop or show a local Ray head and MLflow server (127.0.0.1)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    up = verbs.add_parser("up", help="start a Ray head and an MLflow server on this machine")
    up.add_argument(
        "--root", type=Path, help=f"the cluster's folder: MLflow store, logs (default: {state.home()}/cluster)"
    )
    up.add_argument("--num-cpus", type=int, help="CPUs the Ray head offers (default: all)")
    up.set_defaults(func=run_up)
    verbs.add_parser("down", help="stop what `cluster up` started, and nothing else").set_defaults(func=run_down)
    verbs.add_parser("status", help="where the local cluster is and whether it answers").set_defaults(func=run_status)


def run_up(args: argparse.Namespace) -> None:
    print("starting a Ray head and an MLflow server on 127.0.0.1 ...", flush=True)
    cluster = local_cluster.up(args.root, args.num_cpus)
    _describe(cluster)
    token = ensure_token()  # the head's: made before it started
    if token is not None:
        print(f"Ray token     {token}   (machines joining the cluster and job clients need it)")
    print("submit with `ganforge submit -- train GAN --data SHARDS`; stop with `ganforge cluster down`")


def run_down(args: argparse.Namespace) -> None:
    del args
    cluster = local_cluster.down()
    print(
        f"stopped the Ray head ({cluster.ray_address}) and the MLflow server ({cluster.mlflow_uri}); "
        f"runs stay in {cluster.root}"
    )


def run_status(args: argparse.Namespace) -> int:
    del args
    cluster = local_cluster.load_alive()
    if cluster is None:
        print("no local cluster is up (`ganforge cluster up` starts one)")
        return 1
    health = local_cluster.health(cluster)
    _describe(cluster, health)
    return 0 if all(health.values()) else 1


def _describe(cluster: state.ClusterState, health: dict[str, bool] | None = None) -> None:
    def mark(name: str) -> str:
        return "" if health is None else ("  [up]" if health[name] else "  [NOT ANSWERING]")

    print(f"Ray head      {cluster.ray_address}   dashboard and Jobs API {cluster.dashboard_url}{mark('ray')}")
    print(f"MLflow server {cluster.mlflow_uri}   store {cluster.root}{mark('mlflow')}")
