"""Helpers for tests that start real processes: free loopback ports and gloo process groups."""

from __future__ import annotations

import socket

import torch.distributed as dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_gloo(rank: int, world: int, rendezvous: str) -> None:
    """Meet through a file, not a port picked in advance: two test runs on one machine
    could pick the same free port between its release and the group's bind."""
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
