"""Shard folders that live elsewhere: an http(s) URL, or an object store (``s3://``,
``gs://``) read through its own command-line tool, the way WebDataset reads any stream
(``pipe:COMMAND``). Each scheme's command can be replaced through the environment, for
example ``GANFORGE_FETCH_S3='s5cmd cat {url}'``; it must write the object to stdout."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request

from pipelines.errors import DataError

# The default reader of each object-store scheme, and what to install for it.
COMMANDS = {
    "s3": ("aws s3 cp {url} -", "the AWS CLI (`pip install awscli`; credentials and AWS_ENDPOINT_URL as usual)"),
    "gs": ("gcloud storage cat {url}", "the Google Cloud CLI"),
}


def scheme(path: str) -> str:
    return str(path).split("://", 1)[0] if "://" in str(path) else ""


def is_remote(path: object) -> bool:
    return scheme(str(path)) in ("http", "https", *COMMANDS)


def command(url: str) -> str:
    """The shell command that writes the object at ``url`` to stdout."""
    name = scheme(url)
    template = os.environ.get(f"GANFORGE_FETCH_{name.upper()}") or COMMANDS[name][0]
    return template.format(url=shlex.quote(url))


def stream_url(url: str) -> str:
    """What WebDataset opens: http(s) directly (through curl), the rest through a pipe."""
    return url if scheme(url) in ("http", "https") else f"pipe:{command(url)}"


def read_text(url: str) -> str:
    """A small remote file (the manifest); any failure is a DataError naming the URL."""
    if scheme(url) in ("http", "https"):
        return _http_text(url)
    return _command_text(url)


def _http_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot read {url} ({reason}): not a shard folder written by `ganforge data shard`, or the server is down"
        ) from exc


def _command_text(url: str) -> str:
    line = command(url)
    program = shlex.split(line)[0]
    if shutil.which(program) is None:
        raise DataError(
            f"cannot read {url}: `{program}` is not installed; {scheme(url)}:// shards are read with "
            f"{COMMANDS[scheme(url)][1]}, or set GANFORGE_FETCH_{scheme(url).upper()}"
        )
    done = subprocess.run(line, shell=True, capture_output=True, timeout=300)
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise DataError(
            f"cannot read {url} (`{line}` exited with {done.returncode}: {detail[0]}): not a shard "
            "folder written by `ganforge data shard`, or no access"
        )
    return done.stdout.decode()
