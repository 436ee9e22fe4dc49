"""Output folders that appear whole or not at all: work happens in a hidden sibling folder
that is renamed into place at the end, so an interrupted command never leaves a folder that
looks finished (shards without their manifest, half of a sample set)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipelines.data.manifest import DataError


def check_free(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    if out.exists():
        check_free(out, overwrite)
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(trash)
        tmp.rename(out)
        shutil.rmtree(trash)
    else:
        tmp.rename(out)


@contextlib.contextmanager
def staged_folder(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yields the folder to write into; ``out`` gets its content only if the block succeeds."""
    out = out.expanduser().resolve()
    check_free(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _publish(tmp, out, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
