"""``ganforge data shard``: image folders -> WebDataset tar shards + manifest.json.

Images are prepared (resized, cropped, converted) once here, in parallel. Files that are not
readable images are skipped, counted and listed in the manifest. The output appears
atomically: shards are written to a temporary sibling folder that is renamed into place only
when everything succeeded, so an interrupted run never leaves a half-written dataset.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from pipelines.data.images import CHANNEL_MODES, IMAGE_EXTENSIONS, BadImage, prepare_image
from pipelines.data.manifest import FORMAT, MANIFEST, DataError
from pipelines.data.staging import staged_folder


@dataclass(frozen=True)
class ShardOptions:
    size: int = 64
    # Stored side: > size stores larger images, of which training takes random size-px crops
    # (CycleGAN's jitter: 286 for 256); 0 = size.
    load_size: int = 0
    channels: str = "RGB"
    shard_size: int = 1000  # images per shard
    workers: int = 0  # image-preparing processes; 0 = all cores
    seed: int = 0  # order shuffle, so shards mix classes stored in separate folders
    holdout: int = 0  # images per domain kept out of training, for evaluation
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.size < 8:
            raise DataError(f"--size must be >= 8, got {self.size}")
        if self.load_size and self.load_size < self.size:
            raise DataError(f"--load-size must be >= --size ({self.size}), got {self.load_size}")
        if self.channels not in CHANNEL_MODES:
            raise DataError(f"--channels must be one of {sorted(CHANNEL_MODES)}, got {self.channels!r}")
        if self.shard_size < 1:
            raise DataError(f"--shard-size must be >= 1, got {self.shard_size}")
        if self.holdout < 0:
            raise DataError(f"--holdout must be >= 0, got {self.holdout}")


def list_images(source: Path) -> list[Path]:
    """Every file under ``source`` (recursive) with an image extension, in a stable order."""
    if not source.is_dir():
        raise DataError(f"image folder {source} does not exist or is not a folder")
    files = [p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files)


def _prepare(path: Path, size: int, channels: str) -> tuple[Path, bytes | None, str]:
    try:
        return path, prepare_image(path, size, channels), ""
    except BadImage as exc:
        return path, None, str(exc)


def _prepared(files: list[Path], opts: ShardOptions, desc: str) -> Iterator[tuple[Path, bytes | None, str]]:
    work = partial(_prepare, size=opts.load_size or opts.size, channels=opts.channels)
    processes = opts.workers or os.cpu_count() or 1
    bar = tqdm(total=len(files), desc=desc, unit="img", disable=not opts.progress)
    with bar:
        if processes == 1 or len(files) < 64:
            for item in map(work, files):
                bar.update()
                yield item
            return
        # fork: the shard tool runs before any Ray or torch thread exists, and unlike spawn
        # it works when __main__ is not importable (stdin, notebooks).
        with mp.get_context("fork").Pool(processes) as pool:
            for item in pool.imap(work, files, chunksize=16):
                bar.update()
                yield item


class _ShardSeries:
    """Consecutive tar shards ``<prefix>-000000.tar``, ... of up to ``shard_size`` samples."""

    def __init__(self, out: Path, prefix: str, shard_size: int):
        self.out, self.prefix, self.shard_size = out, prefix, shard_size
        self.shards: list[dict] = []
        self.writer: wds.TarWriter | None = None
        self.count = 0

    def write(self, png: bytes, rel: str) -> None:
        if self.writer is None or self.shards[-1]["count"] == self.shard_size:
            self.close()
            self.shards.append({"name": f"{self.prefix}-{len(self.shards):06d}.tar", "count": 0})
            # An integer mtime keeps members plain USTAR: a float one costs every member an
            # extra PAX header block, which doubles the loader's tar-parsing time.
            self.writer = wds.TarWriter(str(self.out / self.shards[-1]["name"]), mtime=int(time.time()))
        self.writer.write({"__key__": f"{self.count:09d}", "png": png, "path.txt": rel})
        self.shards[-1]["count"] += 1
        self.count += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _shuffled_files(source: Path, seed: int) -> list[Path]:
    files = list_images(source)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {source}")
    random.Random(seed).shuffle(files)
    return files


def _holdout_names(files: dict[str, list[Path]], sources: dict[str, Path], n: int) -> dict[str, set[str]]:
    """Relative paths held out per domain. When the domains hold the same file names (a
    paired dataset), the same names are held out of both, so the test split stays paired."""
    rel = {name: [str(f.relative_to(sources[name])) for f in found] for name, found in files.items()}
    for name, names in rel.items():
        if n and n >= len(names):
            raise DataError(f"--holdout {n} leaves no training images in domain {name} ({len(names)} images)")
    sets = [set(names) for names in rel.values()]
    if len(sets) == 2 and sets[0] == sets[1]:
        first = set(next(iter(rel.values()))[:n])
        return {name: first for name in rel}
    return {name: set(names[:n]) for name, names in rel.items()}


def _write_domain(name: str, source: Path, files: list[Path], held: set[str], out: Path, opts: ShardOptions) -> dict:
    train = _ShardSeries(out, name, opts.shard_size)
    holdout = _ShardSeries(out, f"{name}-holdout", opts.shard_size)
    skipped: list[dict] = []
    for path, png, reason in _prepared(files, opts, desc=f"shard {name}"):
        rel = str(path.relative_to(source))
        if png is None:
            skipped.append({"file": rel, "reason": reason})
            continue
        (holdout if rel in held else train).write(png, rel)
    train.close()
    holdout.close()
    if not train.count + holdout.count:
        raise DataError(f"none of the {len(files)} files under {source} is a readable image")
    return {
        "source": str(source.resolve()),
        "count": train.count,
        "shards": train.shards,
        "holdout": {"count": holdout.count, "shards": holdout.shards},
        "skipped_count": len(skipped),
        "skipped": skipped,
    }


def write_shards(sources: dict[str, Path], out: Path, opts: ShardOptions) -> dict:
    """Shard each domain's folder (``{"image": dir}`` or ``{"A": dir_a, "B": dir_b}``)."""
    opts.validate()
    sources = {name: Path(src) for name, src in sources.items()}
    files = {name: _shuffled_files(src, opts.seed) for name, src in sources.items()}
    held = _holdout_names(files, sources, opts.holdout)
    with staged_folder(out, opts.overwrite) as tmp:
        domains = {name: _write_domain(name, src, files[name], held[name], tmp, opts) for name, src in sources.items()}
        manifest = {
            "format": FORMAT,
            "resolution": opts.size,
            "load_size": opts.load_size or opts.size,
            "channel_mode": opts.channels,
            "channels": CHANNEL_MODES[opts.channels],
            "shard_size": opts.shard_size,
            "images": sum(d["count"] for d in domains.values()),
            "shards": sum(len(d["shards"]) for d in domains.values()),
            "holdout": sum(d["holdout"]["count"] for d in domains.values()),
            "skipped_count": sum(d["skipped_count"] for d in domains.values()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "domains": domains,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest
