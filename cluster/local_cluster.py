"""`ganforge cluster up|down|status`: a Ray head and an MLflow tracking server on this
machine, both on 127.0.0.1, recorded in the state file (cluster/state.py) so that submit,
jobs and status find them and `down` stops exactly these two."""

from __future__ import annotations

from pathlib import Path

from cluster import services, state
from cluster.connect import free_port
from cluster.errors import ClusterError
from cluster.state import ClusterState

RAY_START_TIMEOUT_S = 120.0
# `ray start --head` records its address here for plain `ray.init()` calls on this machine.
# `ray stop` removes the record; stopping the head ourselves must too, or the next
# `ray.init()` (a user's notebook, another tool) tries to join a head that is gone.
RAY_ADDRESS_FILE = Path("/tmp/ray/ray_current_cluster")
MLFLOW_START_TIMEOUT_S = 120.0  # a fresh SQLite store migrates its schema first (about 14 s here)


def up(root: Path | None = None, num_cpus: int | None = None) -> ClusterState:
    current = load_alive()
    if current is not None:
        raise ClusterError(
            f"a local cluster is already up (dashboard {current.dashboard_url}, "
            f"MLflow {current.mlflow_uri}); `ganforge cluster down` stops it"
        )
    root = (root or state.home() / "cluster").resolve()
    root.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("gcs", "dashboard", "agent", "client", "mlflow")}
    ray_log, mlflow_log = root / "ray-head.log", root / "mlflow-server.log"
    # Both start at once: MLflow's store migration overlaps Ray's start.
    ray = services.start_ray_head(ray_log, ports, num_cpus)
    mlflow = services.start_mlflow_server(root, mlflow_log, ports["mlflow"])
    cluster = ClusterState(
        root=str(root),
        ray_address=f"127.0.0.1:{ports['gcs']}",
        dashboard_url=f"http://127.0.0.1:{ports['dashboard']}",
        mlflow_uri=f"http://127.0.0.1:{ports['mlflow']}",
        ray_pid=ray.pid,
        mlflow_pid=mlflow.pid,
    )
    try:
        services.wait_until_up(
            "the Ray head", f"{cluster.dashboard_url}/api/version", ray, ray_log, RAY_START_TIMEOUT_S
        )
        services.wait_until_up(
            "the MLflow server", f"{cluster.mlflow_uri}/health", mlflow, mlflow_log, MLFLOW_START_TIMEOUT_S
        )
    except services.ServiceError as exc:
        _stop(cluster)  # nothing half-started is left running
        raise ClusterError(str(exc)) from exc
    state.save(cluster)
    return cluster


def down() -> ClusterState:
    cluster = state.load()
    if cluster is None:
        raise ClusterError("no local cluster is recorded; nothing to stop")
    _stop(cluster)
    state.clear()
    return cluster


def _stop(cluster: ClusterState) -> None:
    services.stop_group(cluster.ray_pid)
    services.stop_group(cluster.mlflow_pid)
    _forget_address(cluster)


def _forget_address(cluster: ClusterState) -> None:
    try:
        recorded = RAY_ADDRESS_FILE.read_text().strip()
    except OSError:
        return
    # Ray records the node's address, not 127.0.0.1: the port tells whether it is ours.
    if recorded.rsplit(":", 1)[-1] == cluster.ray_address.rsplit(":", 1)[-1]:
        RAY_ADDRESS_FILE.unlink(missing_ok=True)


def health(cluster: ClusterState) -> dict[str, bool]:
    return {
        "ray": services.alive(cluster.ray_pid) and services.answers(f"{cluster.dashboard_url}/api/version"),
        "mlflow": services.alive(cluster.mlflow_pid) and services.answers(f"{cluster.mlflow_uri}/health"),
    }


def load_alive() -> ClusterState | None:
    """The recorded cluster if any of its services still runs; a record whose processes are
    all gone (a reboot, a kill) is dropped."""
    cluster = state.load()
    if cluster is None:
        return None
    if not (services.alive(cluster.ray_pid) or services.alive(cluster.mlflow_pid)):
        state.clear()
        return None
    return cluster
