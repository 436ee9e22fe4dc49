"""Shards named by a brace pattern, WebDataset's notation for a shard list without a
manifest: ``s3://bucket/ffhq/shards-{000000..000127}.tar`` (or an http(s) or local one, or
a WebDataset ``pipe:`` command such as ``pipe:s5cmd cat s3://bucket/shards-{0000..0127}.tar``).

With no manifest, the first shard is read (by the driver and by each worker, at start) to
learn the image size and channels and how many samples a shard holds; the other shards are
taken to hold as many (writers such as ``ganforge data shard`` and WebDataset's
``ShardWriter`` fill every shard but the last). The counts are therefore estimates:
resampled epochs work, exact ones need a manifest."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import braceexpand

from pipelines.data.remote import is_remote, stream_url
from pipelines.errors import DataError

PATTERN = re.compile(r"\{[^{}]*(\.\.|,)[^{}]*\}")


def is_pattern(path: object) -> bool:
    """``{000000..000127}`` or ``{a,b}``: WebDataset's brace notation for a list of shards."""
    return bool(PATTERN.search(str(path)))


def shard_urls(pattern: str) -> list[str]:
    """Every shard the pattern names, as WebDataset opens it; local files must exist.
    ``pipe:COMMAND`` patterns are WebDataset's own: each expansion is a command to run."""
    names = list(braceexpand.braceexpand(pattern))
    if pattern.startswith("pipe:"):
        return names
    if is_remote(pattern):
        return [stream_url(name) for name in names]
    missing = [n for n in names if not Path(n).expanduser().is_file()]
    if missing:
        raise DataError(f"{pattern}: {len(missing)} of {len(names)} shard files do not exist, e.g. {missing[0]}")
    return [str(Path(n).expanduser()) for n in names]


def probe(url: str) -> tuple[int, int, int]:
    """(samples, image size, channels) of one shard, read as a stream."""
    import webdataset as wds  # imports torch: not at module level, which the CLI loads at start

    keys: set[str] = set()
    shape = None
    try:
        with wds.gopen(url, "rb") as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".png"):
                    keys.add(member.name[:-4])
                    data = tar.extractfile(member)
                    if data is not None:  # a regular file always has its data
                        shape = shape or _square_shape(data.read(), f"{url}: {member.name}")
    except (OSError, tarfile.TarError) as exc:
        raise DataError(f"cannot read shard {url} ({type(exc).__name__}: {exc})") from exc
    if shape is None:
        raise DataError(
            f"shard {url} holds no .png sample: ganforge trains on shards of PNG images "
            "(`ganforge data shard` writes them)"
        )
    return len(keys), *shape


def _square_shape(data: bytes, where: str) -> tuple[int, int]:
    import numpy as np
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image)
    except Exception as exc:
        raise DataError(f"{where} is not a readable image ({type(exc).__name__})") from exc
    height, width = array.shape[:2]
    if height != width:
        raise DataError(
            f"{where} is {width}x{height}; training shards hold square images "
            "(`ganforge data shard --size N` writes them)"
        )
    return height, 1 if array.ndim == 2 else array.shape[2]
