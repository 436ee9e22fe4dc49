"""Loader processes end with the process they feed.

A DataLoader process learns that its parent is gone only between samples, and then waits,
at exit, to flush what it has queued for the parent: when the parent was killed outright
(SIGKILL, as a lost Ray Train worker is) with that pipe full, the loader never exits. It
then also holds the sockets it inherited from the killed worker, which kept Ray from seeing
the worker's death: the run hung instead of restarting its worker group. Linux's parent-death
signal kills the loader the moment its parent dies; elsewhere DataLoader's own check stays."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int, _worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn`` (with the parent's pid bound): SIGKILL this process
    when the thread that started it ends, which for ganforge's loaders is the training loop."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not permitted here: DataLoader's own parent check remains
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)
