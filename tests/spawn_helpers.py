"""Helpers for tests that start real processes: free loopback ports, servers coming up, and
gloo process groups."""

from __future__ import annotations

import gc
import multiprocessing
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, server: subprocess.Popen, what: str, timeout: float = 120) -> bytes:
    """The body of ``url`` once the server started as ``server`` answers it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            assert server.poll() is None, f"{what} exited"
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.3)


def group_commands(pgid: int) -> list[str]:
    """The command lines of the live processes in process group ``pgid``."""
    commands = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                commands.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return commands


def ray_actors(class_name: str, state: str | None = None) -> list:
    """The actors of this session's Ray instance of one class (in one state, if given)."""
    import ray
    from ray.util.state import list_actors

    filters = [("class_name", "=", class_name)] + ([("state", "=", state)] if state else [])
    return list_actors(address=ray.get_runtime_context().gcs_address, filters=filters)


def spawn_gloo(fn: Callable, world: int, workdir: Path, *args) -> None:
    """Run `fn(rank, world, *args)` in `world` fresh processes joined in one gloo group.
    Forked from a fork server that has imported torch and ganforge once for the session: a
    spawned process would import them again, about 2 CPU-seconds per rank of every test."""
    multiprocessing.set_forkserver_preload(
        ["torch", "torch.distributed", "pipelines.core.loop", "pipelines.train.build", "gan_core"]
    )
    rendezvous = str(Path(workdir) / "rendezvous")
    mp.start_processes(
        _gloo_entry, args=(world, rendezvous, fn, args), nprocs=world, join=True, start_method="forkserver"
    )


def _gloo_entry(rank: int, world: int, rendezvous: str, fn: Callable, args: tuple) -> None:
    # Meet through a file, not a port picked in advance: two test runs on one machine could
    # pick the same free port between its release and the group's bind.
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    fn(rank, world, *args)
    # DDP reducers left for interpreter exit tear gloo's threads down in the wrong order and
    # abort the process ("terminate called without an active exception"), one run in ten.
    # Free them, wait for every rank, and only then destroy the group.
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
