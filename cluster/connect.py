"""Connect to Ray: a cluster at ``address`` / ``RAY_ADDRESS``, or a local instance started in
this process. Quiet by default: Ray's per-worker log forwarding and print patching would
bury the progress bar."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path

# A Tune trial's own process (the driver of its Train run) takes one unit of this custom
# resource instead of a CPU: with a CPU each, trial drivers would hold the CPUs their workers
# wait for, and a small machine deadlocks. Clusters declare it on the head node (ray_cluster.yaml).
TRIAL_RESOURCE = "ganforge_trial"
LOCAL_TRIAL_SLOTS = 1024  # locally, concurrency is bounded by CPUs (see pipelines.tune.search)
GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"

QUIET_ENV = {
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",  # keep worker prints out of Train's report stream
    "RAY_DEDUP_LOGS": "1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
}


def token_file() -> Path:
    """Where Ray looks for a cluster token when none is in ``$RAY_AUTH_TOKEN``."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def use_token_if_any() -> None:
    """Ray 2.60 clusters require a token by default, and a client process sends one only in
    token mode. A token in the environment or in Ray's token file switches that on, for
    joining a cluster and for its Jobs API alike."""
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or token_file().is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


def ensure_token() -> Path | None:
    """The token file for a head started with `ray start`, made (as `ray get-auth-token
    --generate` would, but readable by this user only) where missing: `ray start --head`
    turns authentication on only when a token exists, and otherwise starts an open cluster
    with a warning. None when the user turned authentication off or gives the token inline."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = token_file()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # 256 random bits, as Ray's own generator; created 0600 so no other user can read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _new_instance(num_cpus: int | None) -> dict:
    """``ray.init`` arguments for a local instance whose processes know its address: Ray
    Train's placement-group cleaner looks its cluster up by itself, and with a second Ray
    instance on the machine it fails ("Found multiple active Ray instances") and never frees
    a stopped run's CPUs, so a search whose scheduler stops or pauses a trial waits forever."""
    from ray.util import get_node_ip_address

    port = free_port()
    os.environ[GCS_PORT_ENV] = str(port)  # read once, when the instance starts
    # A search starts a few CPU-less processes per trial (the trial, its report queue, its
    # Train controller); with the default of one worker start per CPU, the raylet warns of
    # a "large number of actors" on every search on a small machine.
    os.environ.setdefault("RAY_worker_maximum_startup_concurrency", str(max(8, os.cpu_count() or 1)))
    env = {
        "RAY_ADDRESS": f"{get_node_ip_address()}:{port}",
        # Ray Train's preemption watcher follows node drains (spot instances going away): a
        # local instance has none, and the watcher is one more process per Train run.
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    }
    return {
        "num_cpus": num_cpus,
        "include_dashboard": True,
        "dashboard_host": "127.0.0.1",
        "resources": {TRIAL_RESOURCE: LOCAL_TRIAL_SLOTS},
        "runtime_env": {"env_vars": env},
    }


def alive_nodes() -> int:
    import ray

    return sum(1 for node in ray.nodes() if node["Alive"])


def connect(address: str | None = None, num_cpus: int | None = None, verbose: bool = False) -> None:
    """Start or join Ray once per process; later calls are no-ops."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        # Before Ray is imported: it reads RAY_AUTH_MODE once, at import ("Authentication
        # token is missing or incorrect" otherwise).
        use_token_if_any()
    import ray

    if ray.is_initialized():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not verbose:
        # Ray 2.60 enables token authentication for new local clusters and announces it on
        # every start. Authentication stays on; only the notice is silenced.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    ray.init(
        # "local": a new instance, never the cluster `ray start` (or `ganforge cluster up`)
        # left on this machine, which a plain ray.init() would join and then reject our
        # local instance's arguments.
        address=address or "local",
        logging_level=logging.INFO if verbose else logging.WARNING,
        log_to_driver=verbose,
        configure_logging=True,
        **({} if address else _new_instance(num_cpus)),
    )
    if not address:
        os.environ.pop(GCS_PORT_ENV, None)  # for this start only
    if not verbose:
        for name in ("ray", "ray.train", "ray.tune", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
