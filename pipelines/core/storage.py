"""Storage locations: a local folder, or a URI of any filesystem pyarrow opens (``s3://``,
``gs://``, ``hdfs://``, ``file://``), the same ones Ray Train and Tune write to.

Run storage, search state and checkpoints go through these helpers, never ``pathlib``: on a
cluster they live on S3, where ``Path("s3://b/x")`` would quietly become a local folder
named ``s3:``. pyarrow comes with Ray; it is imported only when a location is touched, so
the torch-only core runs without it."""

from __future__ import annotations

import functools
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any


def is_uri(location: str) -> bool:
    return "://" in location


def absolute(location: str) -> str:
    """A local path made absolute (workers run in other folders); a URI as it is."""
    return location if is_uri(location) else str(Path(location).expanduser().resolve())


def join(base: str, *parts: str) -> str:
    """``base/part/...``; a URI keeps its scheme and uses '/' whatever the OS."""
    if is_uri(base):
        return posixpath.join(base.rstrip("/"), *parts)
    return os.path.join(base, *parts)


def basename(location: str) -> str:
    return posixpath.basename(location.rstrip("/"))


@functools.lru_cache(maxsize=16)
def _filesystem(scheme_and_host: str) -> Any:
    """One filesystem per bucket: creating an S3 one resolves the bucket's region."""
    from pyarrow.fs import FileSystem

    return FileSystem.from_uri(scheme_and_host)[0]


def resolve(location: str) -> tuple[Any, str]:
    """The pyarrow filesystem holding ``location`` and the location's path within it."""
    if not is_uri(location):
        from pyarrow.fs import LocalFileSystem

        return LocalFileSystem(), str(Path(location).expanduser().resolve())
    scheme, rest = location.split("://", 1)
    if scheme == "file":
        return resolve(rest)
    host = rest.split("/", 1)[0]
    path = rest.rstrip("/")
    return _filesystem(f"{scheme}://{host}"), path


def exists(location: str) -> bool:
    from pyarrow.fs import FileType

    fs, path = resolve(location)
    return fs.get_file_info(path).type != FileType.NotFound


def is_file(location: str) -> bool:
    from pyarrow.fs import FileType

    fs, path = resolve(location)
    return fs.get_file_info(path).type == FileType.File


def read_text(location: str) -> str:
    fs, path = resolve(location)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def write_text(location: str, text: str) -> None:
    """Whole or not at all: an object store's PUT is atomic; a local file is renamed into place."""
    fs, path = resolve(location)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    if not is_uri(location) or location.startswith("file://"):
        tmp = f"{path}.tmp-{os.getpid()}"
        Path(tmp).write_text(text)
        os.replace(tmp, path)
        return
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())


def upload(folder: str | Path, location: str) -> str:
    """Copy a local folder's files to ``location``; returns ``location``."""
    from pyarrow.fs import LocalFileSystem, copy_files

    fs, path = resolve(location)
    fs.create_dir(path, recursive=True)
    copy_files(str(Path(folder).resolve()), path, source_filesystem=LocalFileSystem(), destination_filesystem=fs)
    return location


def download(location: str, folder: str | Path | None = None) -> Path:
    """Copy the files under ``location`` to a local folder (a new temporary one by default)."""
    from pyarrow.fs import LocalFileSystem, copy_files

    target = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="ganforge-fetch-"))
    target.mkdir(parents=True, exist_ok=True)
    fs, path = resolve(location)
    copy_files(path, str(target.resolve()), source_filesystem=fs, destination_filesystem=LocalFileSystem())
    return target


def delete(location: str) -> None:
    """Remove a folder and everything under it; nothing if it is not there."""
    fs, path = resolve(location)
    if exists(location):
        fs.delete_dir(path)


def children(location: str) -> list[str]:
    """The names directly under a folder; none if it is not there."""
    from pyarrow.fs import FileSelector

    fs, path = resolve(location)
    infos = fs.get_file_info(FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos)
