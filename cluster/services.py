"""Start and stop the processes of a local cluster: a Ray head and an MLflow server, each
the leader of its own process group, so stopping one stops all it spawned and nothing else
(`ray stop` would stop every Ray instance of the user on the machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cluster.connect import TRIAL_RESOURCE, ensure_token
from cluster.errors import ServiceError

# MLflow 3 servers start a job runner and five task consumers for MLflow's GenAI features
# (trace scoring, prompt optimization), which ganforge never uses: about 15 CPU-seconds in
# their first 10 s. A user who wants them sets the variable to true.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an MLflow server or UI that ganforge starts."""
    return {**SERVER_ENV, **(os.environ if base is None else base)}


def _bin_env() -> dict[str, str]:
    # The cluster's processes (and the jobs they run) use this interpreter's environment:
    # `python` and `ganforge` in a job resolve to the venv the cluster was started from.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env or _bin_env(),
            start_new_session=True,
        )


def start_ray_head(log: Path, ports: dict[str, int], num_cpus: int | None) -> subprocess.Popen:
    """`ray start --head --block` on loopback: the dashboard (and its Jobs API) listens on
    127.0.0.1 only. Trial drivers of `ganforge tune` get their own resource, as on a cloud head.
    Every port Ray would otherwise take at a fixed default is a free one: the dashboard agent's
    52365 is taken by any other Ray instance on the machine (a notebook's `ray.init()`), and
    with it taken the head has no agent to run jobs ("No available agent to submit job")."""
    ray = Path(sys.executable).parent / "ray"
    command = [
        str(ray),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={ports['gcs']}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={ports['dashboard']}",
        "--include-dashboard=true",
        f"--dashboard-agent-listen-port={ports['agent']}",
        f"--ray-client-server-port={ports['client']}",
        f'--resources={{"{TRIAL_RESOURCE}": 1024}}',
        "--disable-usage-stats",
    ]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus}")
    env = _bin_env()
    if ensure_token() is not None:  # a head with a token only asks for it in token mode
        env["RAY_AUTH_MODE"] = "token"
    # On SIGTERM a head first drains for up to 30 s so Serve replicas can move; a local head
    # runs none, and `cluster down` means now.
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    return _spawn(command, log, env)


def mlflow_server_command(store_uri: str, artifacts: str, port: int) -> list[str]:
    """An `mlflow server` on 127.0.0.1 with one worker. Artifacts go through the server
    (`--artifacts-destination`), so a client on any node uploads over HTTP instead of writing
    to a path that exists only on the server's machine."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        store_uri,
        "--artifacts-destination",
        artifacts,
    ]


def start_mlflow_server(root: Path, log: Path, port: int) -> subprocess.Popen:
    """The cluster's tracking server, with a SQLite store under ``root``."""
    command = mlflow_server_command(f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri(), port)
    return _spawn(command, log, server_env(_bin_env()))


def answers(url: str, timeout: float = 2.0) -> bool:
    """The server at ``url`` answers HTTP. A 401/403 counts: Ray's dashboard answers its API
    only with a token, and that it answers at all is what is asked here."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 403)
    except (urllib.error.URLError, OSError):
        return False


def wait_until_up(name: str, url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{name} exited with code {process.returncode} while starting; see {log}")
        if answers(url):
            return
        time.sleep(0.5)
    raise ServiceError(f"{name} did not answer at {url} within {timeout:.0f} s; see {log}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, grace: float = 20.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left after ``grace``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # not our child
        os.waitpid(pgid, os.WNOHANG)  # reap the leader if it is our own child (else it lingers as a zombie)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
