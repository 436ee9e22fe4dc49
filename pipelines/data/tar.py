"""WebDataset samples from tar shards, read with a small tar parser of our own.

WebDataset's ``tarfile_samples`` reads shards through Python's ``tarfile`` module, whose
header parsing was a third of a loader process's time at 64 px (``docs/benchmarks.md``).
Shards are plain POSIX tar files: 512-byte headers, each followed by its member's bytes
padded to 512. This reads exactly that, checks each header's checksum, and yields the same
samples as ``webdataset.tarfile_samples``: members grouped by key (the name up to the first
dot of its base name), with ``__key__`` and ``__url__``. Shards are opened by WebDataset's
``gopen``, so local paths, ``pipe:`` commands and URLs work as before. Errors (an unreadable
or truncated shard, a corrupt header) go to ``handler``, which skips the rest of that shard
when it returns True, as WebDataset's handlers do."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from webdataset.gopen import gopen

BLOCK = 512
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # WebDataset's split of a member name
_FILE_TYPES = (b"0", b"\0", b"7")  # regular files (7: contiguous file)


class TarError(ValueError):
    """A shard that is not a readable tar file."""


def _number(field: bytes) -> int:
    if field[:1] == b"\x80":  # GNU base-256, for members of 8 GiB or more
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _pax_path(data: bytes) -> str | None:
    """The ``path`` record of a pax extended header, if it has one."""
    for record in data.decode("utf-8", "replace").split("\n"):
        _, _, keyword_value = record.partition(" ")
        keyword, _, value = keyword_value.partition("=")
        if keyword == "path":
            return value
    return None


def _read(stream: IO[bytes], n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise TarError(f"truncated tar: {what} ends after {len(data)} of {n} bytes")
    return data


def members(stream: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file in a tar stream, in order."""
    long_name: str | None = None
    while True:
        header = stream.read(BLOCK)
        if header == bytes(BLOCK):  # end of archive
            return
        if not header:  # tar writers end with zero blocks: a download cut between members
            raise TarError("truncated tar: no end-of-archive marker")
        if len(header) != BLOCK:
            raise TarError(f"truncated tar: a header of {len(header)} bytes")
        if _number(header[148:156]) != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise TarError("corrupt tar header (bad checksum)")
        size, kind = _number(header[124:136]), header[156:157]
        data = _read(stream, size, "a member")
        stream.read(-size % BLOCK)
        if kind in (b"L", b"x"):  # the next member's long name (GNU), or its pax headers
            long_name = data.rstrip(b"\0").decode() if kind == b"L" else _pax_path(data)
            continue
        name = long_name or _name(header)
        long_name = None
        if kind in _FILE_TYPES:
            yield name, data


def _name(header: bytes) -> str:
    name = header[:100].split(b"\0", 1)[0].decode()
    prefix = header[345:500].split(b"\0", 1)[0].decode() if header[257:262] == b"ustar" else ""
    return f"{prefix}/{name}" if prefix else name


def _open(url: str) -> IO[bytes]:
    stream = gopen(url)
    peek = getattr(stream, "peek", None)
    if peek is not None and peek(2)[:2] == b"\x1f\x8b":  # a .tar.gz shard
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    return stream


def _samples_of(url: str) -> Iterator[dict[str, Any]]:
    """One shard's samples: consecutive members that share a key."""
    sample: dict[str, Any] | None = None
    with _open(url) as stream:
        for name, data in members(stream):
            match = _KEY.match(name)
            if match is None or name.rsplit("/", 1)[-1].startswith("__"):  # no extension; metadata
                continue
            key, suffix = match.group(1), match.group(2).lower()
            if sample is None or sample["__key__"] != key:
                if sample is not None:
                    yield sample
                sample = {"__key__": key, "__url__": url}
            if suffix in sample:
                raise TarError(f"{name}: duplicate file name in tar file {url}")
            sample[suffix] = data
    if sample is not None:
        yield sample


def tar_samples(sources: Iterable[dict[str, str]], handler: Callable[[Exception], bool]) -> Iterator[dict[str, Any]]:
    """The samples of each shard in ``sources`` (dicts with a ``url``), like WebDataset's
    ``tarfile_samples``; a shard that fails is handed to ``handler`` and its rest skipped."""
    for source in sources:
        try:
            yield from _samples_of(source["url"])
        except Exception as exc:  # any failure of one shard: the handler decides (it counts)
            exc.args = (*exc.args, source["url"])
            if not handler(exc):
                raise
