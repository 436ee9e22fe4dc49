"""``manifest.json``: what a shard folder holds. Written last by the shard tool (a folder
without one is incomplete) and read by the loader to plan equal per-rank epochs. A shard
folder is a local path, or the URL of one (http(s), ``s3://``, ``gs://``; see ``remote``):
the manifest is fetched, the shards are streamed by WebDataset. A brace pattern of shard
files with no manifest is read too, with estimated counts (see ``pattern``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.data.pattern import is_pattern, probe, shard_urls
from pipelines.data.remote import is_remote, read_text, stream_url
from pipelines.errors import DataError  # raised by every data module; imported from here by most

FORMAT = "ganforge-shards/1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DomainShards:
    name: str
    urls: tuple[str, ...]
    counts: tuple[int, ...]

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Dataset:
    root: Path | str  # a local folder, or the URL of one
    resolution: int
    channels: int
    domains: dict[str, DomainShards]
    manifest: dict[str, Any]
    holdouts: dict[str, DomainShards]  # held-out evaluation split per domain (may be empty)

    @property
    def load_size(self) -> int:
        """The side the images are stored at: larger than ``resolution`` where training takes
        random crops of them (``data shard --load-size``)."""
        return int(self.manifest.get("load_size", self.resolution))

    def domain(self, name: str) -> DomainShards:
        if name not in self.domains:
            have = ", ".join(sorted(self.domains))
            raise DataError(f"{self.root} has no domain {name!r} (it has: {have})")
        return self.domains[name]

    def cache_dir(self) -> Path:
        """Where derived files (evaluation statistics) go: beside local shards; for remote
        ones and patterns, a folder of the user's cache named after the URL."""
        if not is_remote(self.root) and not is_pattern(self.root):
            return Path(self.root)
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:16]
        return Path.home() / ".cache" / "ganforge" / "shards" / digest

    @property
    def estimated_counts(self) -> bool:
        """True for a pattern without a manifest: shard sizes are guessed from the first shard."""
        return bool(self.manifest.get("estimated_counts"))

    def digest(self, shards: DomainShards) -> str:
        """A digest of what the manifest says of one split (its shard names and counts, the image
        size and when the shards were written): the same for a copy of the shards elsewhere,
        another for shards written again."""
        described = {
            "resolution": self.resolution,
            "channels": self.channels,
            "created": self.manifest.get("created", ""),
            "shards": [[url.rsplit("/", 1)[-1], count] for url, count in zip(shards.urls, shards.counts)],
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]

    def holdout(self, name: str) -> DomainShards | None:
        """The domain's held-out split, or None when the shards were written without one."""
        self.domain(name)
        return self.holdouts.get(name)

    def reference(self, name: str) -> tuple[DomainShards, str]:
        """What a domain's samples are evaluated against, and its split's name: the held-out
        split, else the training split."""
        holdout = self.holdout(name)
        return (holdout, "holdout") if holdout is not None else (self.domain(name), "train")


def read_dataset(path: str | Path) -> Dataset:
    if is_pattern(path):
        return _pattern_dataset(str(path))
    if is_remote(path):
        root: Path | str = str(path).rstrip("/")
        manifest_path, text = f"{root}/{MANIFEST}", read_text(f"{root}/{MANIFEST}")
    else:
        root = Path(path).expanduser()
        local_manifest = root / MANIFEST
        manifest_path = str(local_manifest)
        if not root.exists():
            raise DataError(f"data path {root} does not exist; create shards with `ganforge data shard`")
        if not local_manifest.is_file():
            raise DataError(f"{root} has no {MANIFEST}: not a shard folder written by `ganforge data shard`")
        text = local_manifest.read_text()
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise DataError(f"{manifest_path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    domains, holdouts = {}, {}
    for name, entry in manifest["domains"].items():
        if not entry["shards"]:
            raise DataError(f"{root}: domain {name!r} has no shards")
        domains[name] = _shards(root, name, entry["shards"])
        if entry.get("holdout", {}).get("shards"):
            holdouts[name] = _shards(root, f"{name}-holdout", entry["holdout"]["shards"])
    return Dataset(root, int(manifest["resolution"]), int(manifest["channels"]), domains, manifest, holdouts)


def _pattern_dataset(pattern: str) -> Dataset:
    """One domain, ``image``: a pattern names the shards of one image set."""
    urls = shard_urls(pattern)
    per_shard, resolution, channels = probe(urls[0])
    manifest = {"format": "pattern", "pattern": pattern, "estimated_counts": True}
    shards = DomainShards("image", tuple(urls), (per_shard,) * len(urls))
    return Dataset(pattern, resolution, channels, {"image": shards}, manifest, {})


def _shards(root: Path | str, name: str, entries: list[dict]) -> DomainShards:
    if is_remote(root):  # checked when read: a request per shard here would cost more than it saves
        urls = tuple(stream_url(f"{root}/{s['name']}") for s in entries)
        return DomainShards(name, urls, tuple(int(s["count"]) for s in entries))
    urls = tuple(str(Path(root) / s["name"]) for s in entries)
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        raise DataError(f"{root}: {len(missing)} shard file(s) listed in the manifest are missing, e.g. {missing[0]}")
    return DomainShards(name, urls, tuple(int(s["count"]) for s in entries))
