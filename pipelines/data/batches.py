"""The batches a GAN trains on: one stream per image domain the GAN needs, zipped.

A one-domain GAN (LSGAN, StyleGAN) reads the ``image`` domain, or the domain chosen with
``data.domain`` from two-domain shards; a translation GAN (CycleGAN, DiscoGAN) reads ``A`` and
``B`` as two independently shuffled streams, since the domains are unpaired and may differ in
size. An epoch follows the larger domain (as CycleGAN's reference does); the smaller one
cycles through its own epochs meanwhile.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from collections.abc import Iterator

import torch

from pipelines.data.loader import RankBatches, StreamSpec, first_images
from pipelines.data.manifest import DataError, Dataset


def resolve_domains(dataset: Dataset, gan: str, needs: tuple[str, ...], chosen: str = "") -> dict[str, str]:
    """Map the GAN's batch keys to the dataset's domains, or say clearly why they don't fit."""
    have = sorted(dataset.domains)
    if needs == ("image",):
        if chosen:
            dataset.domain(chosen)  # raises, naming the domains there are
            return {"image": chosen}
        if "image" in dataset.domains:
            return {"image": "image"}
        raise DataError(
            f"{dataset.root} holds two-domain shards (domains {', '.join(have)}); {gan} learns one "
            f"domain: choose it with --set data.domain={have[0]}"
        )
    if chosen:
        raise DataError(f"data.domain chooses the domain of a one-domain GAN; {gan} uses domains {', '.join(needs)}")
    missing = [d for d in needs if d not in dataset.domains]
    if missing:
        raise DataError(
            f"{gan} needs domains {', '.join(needs)} but {dataset.root} has only {', '.join(have)}; "
            f"write two-domain shards with `ganforge data shard --domain-a DIR --domain-b DIR`"
        )
    return {d: d for d in needs}


def domain_spec(spec: StreamSpec, domain: str) -> StreamSpec:
    """A seed of its own per domain: with a shared seed, two domains with as many shards
    would be shuffled identically, and A_i would meet B_i in every epoch (paired, not unpaired).
    crc32, not hash(): str hashes differ between processes."""
    return dataclasses.replace(spec, seed=spec.seed * 1_000_003 + zlib.crc32(domain.encode()))


class Batches:
    """``epoch(e)`` yields ``{"images": {key: uint8 NCHW}, "keys": {key: [sample ids]},
    "skipped": n, "padded": n}``."""

    def __init__(
        self,
        dataset: Dataset,
        domains: dict[str, str],
        spec: StreamSpec,
        batch_size: int,
        epoch_batches: int = 0,
        pin_memory: bool = False,
    ):
        self.dataset, self.domains = dataset, domains
        self.streams = {
            key: RankBatches(
                dataset.domain(name),
                domain_spec(spec, name),
                dataset.resolution,
                dataset.channels,
                batch_size,
                epoch_batches,
                pin_memory,
                dataset.load_size,
            )
            for key, name in domains.items()
        }
        self.lead = max(self.streams, key=lambda k: self.streams[k].shards.count)
        self._others: dict[str, Iterator[dict]] = {}

    def batches_in_epoch(self, epoch: int) -> int:
        return self.streams[self.lead].batches_in_epoch(epoch)

    def _endless(self, key: str, start_epoch: int) -> Iterator[dict]:
        for epoch in itertools.count(start_epoch):
            yield from self.streams[key].epoch(epoch)

    def epoch(self, epoch: int) -> Iterator[dict]:
        for key in self.streams:
            if key != self.lead and key not in self._others:
                self._others[key] = self._endless(key, epoch)
        for lead in self.streams[self.lead].epoch(epoch):
            parts = {self.lead: lead, **{k: next(it) for k, it in self._others.items()}}
            yield {
                "images": {k: parts[k]["images"] for k in self.streams},
                "keys": {k: parts[k]["keys"] for k in self.streams},
                "skipped": sum(p["skipped"] for p in parts.values()),
                "padded": sum(p["padded"] for p in parts.values()),
            }

    def preview(self, n: int) -> dict[str, torch.Tensor]:
        """The first ``n`` images of every domain, for fixed sample-grid inputs."""
        ds = self.dataset
        return {
            key: first_images(ds.domain(name), n, ds.resolution, ds.channels, ds.load_size)
            for key, name in self.domains.items()
        }
