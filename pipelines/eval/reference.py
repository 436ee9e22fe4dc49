"""Reference images and their features for the metrics: the held-out split of a domain when
the shards have one, else its training split. Features are the expensive part (a pass of
Inception over thousands of images), so they are computed once and cached beside the shards
in ``stats/<extractor>-<split>-<domain>-<n>.pt``, written atomically."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_core.metrics import MetricSuite
from pipelines.core.tensors import from_uint8
from pipelines.data.loader import read_images
from pipelines.data.manifest import Dataset


@dataclass
class Reference:
    images: torch.Tensor  # uint8 (N, C, H, W)
    names: list[str]  # the source file of each image
    split: str  # "holdout" or "train"
    domain: str
    features: torch.Tensor | None = None  # float64 (N, D), once computed


def reference_id(dataset: Dataset, domains: dict[str, str], samples: int, extractor: str) -> str:
    """What an eval score was measured against: the extractor, the number of reference images
    and each domain's split and its digest. Scores with equal ids compare."""
    splits = []
    for domain in sorted(domains.values()):
        shards, split = dataset.reference(domain)
        splits.append(f"{domain}-{split}-{dataset.digest(shards)}")
    return f"{extractor}:{samples}:{','.join(splits)}"


def to_float(images: torch.Tensor) -> torch.Tensor:
    return from_uint8(images)


def cache_path(dataset: Dataset, suite: MetricSuite, split: str, domain: str, n: int) -> Path:
    return dataset.cache_dir() / "stats" / f"{suite.name}-{split}-{domain}-{n}.pt"


def _save(features: torch.Tensor, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save({"features": features.float()}, tmp)
        os.replace(tmp, path)
    except OSError as exc:  # read-only shards: compute again next time, but say so
        warnings.warn(f"could not cache reference features at {path}: {exc}", stacklevel=3)


def load_reference(dataset: Dataset, domain: str, n: int) -> Reference:
    """Up to ``n`` reference images of ``domain``, always the same ones."""
    shards, split = dataset.reference(domain)
    images, names = read_images(shards, n, dataset.resolution, dataset.channels, dataset.load_size)
    return Reference(images, names, split, domain)


def add_features(ref: Reference, dataset: Dataset, suite: MetricSuite) -> Reference:
    """``ref`` with its features, from the cache when they are there."""
    if ref.features is not None:
        return ref
    path = cache_path(dataset, suite, ref.split, ref.domain, len(ref.images))
    if path.is_file():
        features = torch.load(path, map_location="cpu", weights_only=True)["features"].double()
        if len(features) == len(ref.images):
            ref.features = features
            return ref
    ref.features = suite.features(to_float(ref.images))
    _save(ref.features, path)
    return ref
