"""Which shards each rank read in one epoch, gathered on rank 0. On a cluster of several
nodes it is the evidence a user looks for: every node read shards of its own, and together
they read them all (an exact epoch; resampled streams draw with replacement)."""

from __future__ import annotations

import shlex
from collections import defaultdict
from typing import Any

import torch.distributed as dist

from pipelines.core.distributed import active, world_size


def shard_name(url: str) -> str:
    """The shard's file name, whichever form ``stream_url`` gave it."""
    if url.startswith("pipe:"):
        url = next((word for word in shlex.split(url[5:]) if "://" in word), url)
    return url.rstrip("/").rsplit("/", 1)[-1]


def shard_of(key: str) -> str:
    """Sample keys read ``URL#sample``; the shard is the URL's file name."""
    return shard_name(key.split("#", 1)[0])


class ShardCoverage:
    def __init__(self, epoch: int):
        self.epoch = epoch  # the first epoch this run reads from its start
        self.shards: dict[str, set[str]] = defaultdict(set)

    def add(self, raw: dict, epoch: int) -> None:
        if epoch == self.epoch:
            for domain, keys in raw["keys"].items():
                self.shards[domain].update(map(shard_of, keys))

    def gather(self, rank: int, node: str, complete: bool) -> dict:
        """Every rank's shards (a collective: every rank calls it)."""
        mine = {"rank": rank, "node": node, "shards": {d: sorted(s) for d, s in sorted(self.shards.items())}}
        ranks: list[Any] = [mine]
        if active():
            ranks = [None] * world_size()  # filled in by the gather
            dist.all_gather_object(ranks, mine)
        return {"epoch": self.epoch, "complete": complete, "ranks": ranks}
