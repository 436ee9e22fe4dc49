"""Errors the `ganforge` command reports without a traceback, in one module that imports
nothing heavy: the CLI catches them before it has imported torch, Ray or MLflow, so a
command that needs none of them (help, data, cluster, jobs) starts in well under a second.
Every error class of pipelines lives here; those of the cluster helpers in cluster/errors.py."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config key or value a user must fix; the CLI prints it without a traceback."""


class NotFound(FileNotFoundError):
    """A run, registered model, checkpoint, search or job that a user named does not exist.
    The message says where ganforge looked: which tracking store, storage path or cluster."""


class BadImage(ValueError):
    """A file that cannot become a training image; the message says why (skipped and counted)."""


class DataError(ValueError):
    """A data problem a user must fix (missing shards, wrong domain, too few shards)."""


class TrainingFailed(RuntimeError):
    """The job ran but a worker failed; the message holds the worker's error."""


class Diverged(RuntimeError):
    """Training stopped learning: ``reason`` is ``diverged`` (non-finite values for too many
    steps in a row), or a reason from the stability monitor (``d_overpowers``,
    ``mode_collapse``). Survives pickling across Ray with its reason."""

    def __init__(self, message: str, reason: str = "diverged"):
        super().__init__(message, reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.args[0]


class SearchInterrupted(Exception):
    """The search was stopped (Ctrl+C) before every trial ended; its state is saved."""


def user_error_of(exc: BaseException) -> Exception | None:
    """A data or config problem that a Ray worker hit, as the one-line error the CLI prints.

    Ray wraps worker exceptions; one raised in a DataLoader process is re-raised with the
    original traceback in its message, whose last line is the original error."""
    failures = getattr(exc, "worker_failures", None) or {}
    for rank, error in sorted(failures.items()):
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, (DataError, ConfigError, Diverged)):
            last = str(cause).strip().splitlines()[-1]
            prefix = f"{type(cause).__module__}.{type(cause).__name__}: "
            message = f"worker {rank}: {last.removeprefix(prefix)}"
            return Diverged(message, cause.reason) if isinstance(cause, Diverged) else type(cause)(message)
    return None
