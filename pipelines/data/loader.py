"""Stream shards into fixed-size batches, the same number on every rank.

Two modes (``data.mode``):

* ``exact``: an epoch reads every sample once. Each epoch the shard list is permuted with a
  seed shared by all ranks, then split rank-wise and, within a rank, DataLoader-worker-wise,
  so no two readers share a shard. Ranks with fewer samples pad their last batches by reading
  their own shards again (like ``DistributedSampler``'s padding), because unequal batch counts
  hang DDP; the padding is counted.
* ``resampled``: every reader draws shards with replacement from its own seeded RNG, forever;
  an epoch is a fixed number of batches. Best for step-based training.

Workers decode and yield chunks; the rank's main process re-batches them into exactly
``batch_size`` samples, so partial chunks from several workers combine instead of making
ragged batches. Undecodable samples and broken shards are skipped and counted, not fatal.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import multiprocessing
import os
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipelines.data.images import BadImage, center_crop, decode_png, random_crop
from pipelines.data.lifetime import die_with_parent
from pipelines.data.manifest import DataError, DomainShards
from pipelines.data.tar import tar_samples

CHUNK = 64  # samples per worker->main transfer: amortises IPC without adding latency
# Loader processes start by fork where there is one: in milliseconds, sharing the parent's
# imports. The default follows the parent, and in a process started by spawn (as
# torch.multiprocessing.spawn starts DDP ranks) each epoch's loaders would start a fresh
# interpreter and import torch again: here, 4x slower steps for a small GAN.
LOADER_START = "fork" if "fork" in multiprocessing.get_all_start_methods() else None


@dataclass(frozen=True)
class StreamSpec:
    """Where this stream sits in the job: which rank of how many, which mode and seed."""

    rank: int = 0
    world: int = 1
    mode: str = "resampled"
    seed: int = 0
    shuffle_buffer: int = 1000
    loader_workers: int = 1


def exact_assignment(n_shards: int, epoch: int, seed: int, world: int) -> list[list[int]]:
    """Shard indices of each rank in one exact epoch (the same on every rank)."""
    order = list(range(n_shards))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[rank::world] for rank in range(world)]


MAX_AUTO_LOADERS = 8  # beyond this, one rank's PNG decoding outruns any GAN step measured


def auto_loader_workers(cpus: int, gpus: int, domains: int) -> int:
    """Loader processes per domain for a rank: on a GPU node, the CPUs each GPU's rank gets,
    less one for the training process itself, split over the domains; 1 without a GPU (CPU
    training workers spend their cores on the step)."""
    if gpus <= 0:
        return 1
    return max(1, min(MAX_AUTO_LOADERS, (cpus // gpus - 1) // max(1, domains)))


def node_gpus() -> int:
    """GPUs on this machine, all of them: NVML sees past CUDA_VISIBLE_DEVICES, which Ray
    narrows to the worker's own GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVIDIA driver: no GPU this code can use, or torch's count
        return torch.cuda.device_count()


def loader_processes(configured: int, domains: int) -> int:
    """``data.loader_workers``, with -1 (auto) sized from this node's CPUs and GPUs."""
    if configured >= 0:
        return configured
    return auto_loader_workers(os.cpu_count() or 1, node_gpus(), domains)


def readers(spec: StreamSpec) -> int:
    return spec.world * max(1, spec.loader_workers)


def check_exact(shards: DomainShards, spec: StreamSpec) -> None:
    """An exact epoch deals whole shards to the readers, and a reader without one would
    leave its rank short of batches: at least one shard per reader."""
    if spec.mode == "exact" and len(shards.urls) < readers(spec):
        raise DataError(
            f"data.mode=exact needs at least {readers(spec)} shards ({spec.world} workers x "
            f"{max(1, spec.loader_workers)} loader processes) but domain {shards.name!r} has {len(shards.urls)}; "
            "reshard with a smaller --shard-size, use fewer data.loader_workers, or use data.mode=resampled"
        )


class _Skips:
    """Counts samples and shards lost to errors inside one reader process, and stops a reader
    that opens shard after shard without finding one decodable sample (in resampled mode it
    would otherwise spin forever and hang every rank at the next all-reduce)."""

    def __init__(self, patience: int) -> None:
        self.count = 0
        self.patience = patience
        self.shards_since_sample = 0
        self.last_url = ""

    def opened(self, url: str) -> None:
        self.shards_since_sample += 1
        self.last_url = url
        if self.shards_since_sample > self.patience:
            raise DataError(
                f"{self.patience} shards in a row held no decodable image "
                f"(last: {self.last_url}); are these shards written by `ganforge data shard`?"
            )

    def decoded(self) -> None:
        self.shards_since_sample = 0

    def handler(self, exc: Exception) -> bool:
        del exc
        self.count += 1
        return True  # keep reading: one bad member or shard must not end the epoch


class DomainStream(IterableDataset):
    """Decoded samples of one domain for one rank, as chunks of up to CHUNK samples."""

    def __init__(self, shards: DomainShards, spec: StreamSpec, resolution: int, channels: int, load_size: int = 0):
        super().__init__()
        self.shards, self.spec = shards, spec
        self.resolution, self.channels = resolution, channels
        self.load_size = load_size or resolution  # stored larger: a random crop of each sample
        self.epoch, self.pass_ = 0, 0

    def set_epoch(self, epoch: int, pass_: int = 0) -> None:
        self.epoch, self.pass_ = epoch, pass_

    def _rng(self, worker: int, salt: int) -> random.Random:
        s = self.spec
        return random.Random(hash((s.seed, self.epoch, self.pass_, s.rank, worker, salt)))

    def _indices(self, worker: int, n_workers: int) -> Iterator[int]:
        n = len(self.shards.urls)
        if self.spec.mode == "exact":
            yield from exact_assignment(n, self.epoch, self.spec.seed, self.spec.world)[self.spec.rank][
                worker::n_workers
            ]
            return
        rng = self._rng(worker, salt=1)
        while True:
            yield rng.randrange(n)

    def _urls(self, worker: int, n_workers: int, skips: _Skips) -> Iterator[dict]:
        for index in self._indices(worker, n_workers):
            skips.opened(self.shards.urls[index])
            yield {"url": self.shards.urls[index]}

    def _patience(self) -> int:
        """Shards a reader may open without decoding an image before it gives up: twice the
        shard list, plus what filling the shuffle buffer takes, since no sample reaches the
        decoder until the buffer is half full."""
        fill = math.ceil(self.spec.shuffle_buffer / max(1, min(self.shards.counts)))
        return max(10, 2 * len(self.shards.urls)) + fill

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        skips = _Skips(patience=self._patience())
        samples = tar_samples(self._urls(worker, n_workers, skips), handler=skips.handler)
        if self.spec.shuffle_buffer > 1:
            rng = self._rng(worker, salt=2)
            samples = wds.filters.shuffle(self.spec.shuffle_buffer, initial=self.spec.shuffle_buffer // 2, rng=rng)(
                samples
            )
        images: list[np.ndarray] = []
        keys: list[str] = []
        reported = 0
        crops = self._rng(worker, salt=3)  # the same crops when an epoch is read again (a resume)
        for sample in samples:
            try:
                image = decode_png(sample["png"], self.load_size, self.channels)
                images.append(random_crop(image, self.resolution, crops) if self.load_size > self.resolution else image)
            except (BadImage, KeyError):  # KeyError: a member with no .png image
                skips.count += 1
                continue
            skips.decoded()
            keys.append(f"{sample['__url__']}#{sample['__key__']}")
            if len(images) == CHUNK:
                yield _chunk(images, keys, skips.count - reported, self.pass_)
                reported, images, keys = skips.count, [], []
        if images or skips.count > reported:
            yield _chunk(images, keys, skips.count - reported, self.pass_)


def _chunk(images: list[np.ndarray], keys: list[str], skipped: int, pass_: int) -> dict:
    # numpy, not torch: DataLoader would move a tensor through a shared-memory file
    # descriptor (about 10 ms per transfer here), while an array is pickled through the pipe.
    array = np.stack(images) if images else np.empty((0,), np.uint8)
    # The keys a rank's batches carry too: samples read again to pad a short rank are counted.
    return {"images": array, "keys": keys, "skipped": skipped, "padded": len(keys) if pass_ > 0 else 0}


def rebatch(chunks: Iterator[dict], batch_size: int, pin_memory: bool = False) -> Iterator[dict]:
    """Exactly ``batch_size`` samples per batch from chunks of any size; the tail is dropped.

    Each chunk's images are copied once, straight into the batch they belong to (a fresh
    tensor per batch, so one still in use is never overwritten): re-concatenating what was
    left over after each batch had cost a sixth of a loader's time. With ``pin_memory`` the
    batches are in page-locked memory, from which a GPU copies them asynchronously."""
    buffer: torch.Tensor | None = None
    keys: list[str] = []
    skipped = padded = 0
    for chunk in chunks:
        skipped += chunk["skipped"]
        array, n = chunk["images"], len(chunk["keys"])
        start = 0
        while start < n:
            if buffer is None:
                buffer = torch.empty((batch_size, *array.shape[1:]), dtype=torch.uint8, pin_memory=pin_memory)
            take = min(n - start, batch_size - len(keys))
            buffer[len(keys) : len(keys) + take] = torch.from_numpy(array[start : start + take])
            keys += chunk["keys"][start : start + take]
            padded += take if chunk["padded"] else 0  # a chunk is padding whole, or not at all
            start += take
            if len(keys) == batch_size:
                yield {"images": buffer, "keys": keys, "skipped": skipped, "padded": padded}
                buffer, keys, skipped, padded = None, [], 0, 0


def _as_is(chunk: Any) -> Any:
    """Keep chunks as numpy (DataLoader would convert them to tensors in the worker)."""
    return chunk


class RankBatches:
    """The batches of one rank: ``epoch(e)`` yields exactly ``batches_in_epoch(e)`` batches."""

    def __init__(
        self,
        shards: DomainShards,
        spec: StreamSpec,
        resolution: int,
        channels: int,
        batch_size: int,
        epoch_batches: int = 0,
        pin_memory: bool = False,
        load_size: int = 0,
    ):
        check_exact(shards, spec)
        self.shards, self.spec, self.batch_size = shards, spec, batch_size
        self.dataset = DomainStream(shards, spec, resolution, channels, load_size)
        self.epoch_batches = epoch_batches or max(1, shards.count // (batch_size * spec.world))
        self.pin_memory = pin_memory
        self._endless: Iterator[dict] | None = None

    def batches_in_epoch(self, epoch: int) -> int:
        if self.spec.mode == "resampled":
            return self.epoch_batches
        per_rank = exact_assignment(len(self.shards.urls), epoch, self.spec.seed, self.spec.world)
        most = max(sum(self.shards.counts[i] for i in shards) for shards in per_rank)
        return math.ceil(most / self.batch_size)

    def _loader(self) -> DataLoader:
        workers = self.spec.loader_workers
        return DataLoader(
            self.dataset,
            batch_size=None,
            collate_fn=_as_is,
            num_workers=workers,  # chunks are not pinned here: rebatch writes pinned batches
            prefetch_factor=4 if workers else None,
            multiprocessing_context=LOADER_START if workers else None,
            worker_init_fn=functools.partial(die_with_parent, os.getpid()),
        )

    def _passes(self, epoch: int) -> Generator[dict, None, None]:
        # Pass 0 reads the rank's shards once; later passes only pad a short rank.
        for pass_ in itertools.count():
            self.dataset.set_epoch(epoch, pass_)
            got = 0
            for chunk in self._loader():
                got += len(chunk["keys"])
                yield chunk
            if not got:
                raise DataError(
                    f"rank {self.spec.rank} read no decodable sample from its shards of {self.shards.name!r}"
                )

    def epoch(self, epoch: int) -> Iterator[dict]:
        n = self.batches_in_epoch(epoch)
        if self.spec.mode == "resampled":
            if self._endless is None:  # one endless stream: no worker restarts between epochs
                self.dataset.set_epoch(epoch)
                self._endless = rebatch(iter(self._loader()), self.batch_size, self.pin_memory)
            yield from islice(self._endless, n)
            return
        with contextlib.closing(self._passes(epoch)) as chunks:
            yield from islice(rebatch(chunks, self.batch_size, self.pin_memory), n)


def read_images(
    shards: DomainShards, n: int, resolution: int, channels: int, load_size: int = 0
) -> tuple[torch.Tensor, list[str]]:
    """The first ``n`` decodable images of a domain (all if ``n`` is 0), in shard order, with
    the source file names they were sharded from; images stored larger (``load_size``) are
    centre-cropped. The same on every call: sample grids and evaluation references stay fixed
    all run long."""
    images: list[np.ndarray] = []
    names: list[str] = []
    for sample in tar_samples(({"url": u} for u in shards.urls), handler=wds.ignore_and_continue):
        try:
            images.append(center_crop(decode_png(sample["png"], load_size or resolution, channels), resolution))
        except (BadImage, KeyError):
            continue
        names.append(sample.get("path.txt", b"").decode() or sample["__key__"])
        if len(images) == n:
            break
    if not images:
        raise DataError(
            f"{shards.name!r} ({len(shards.urls)} shards from {shards.urls[0]}) holds no decodable "
            f"image; are these shards written by `ganforge data shard`?"
        )
    return torch.from_numpy(np.stack(images)), names


def first_images(shards: DomainShards, n: int, resolution: int, channels: int, load_size: int = 0) -> torch.Tensor:
    return read_images(shards, n, resolution, channels, load_size)[0]
