"""Errors the `ganforge` command reports without a traceback, in one module that imports
nothing heavy: the CLI catches them before it has imported torch, Ray or MLflow, so a
command that needs none of them (help, data, cluster, jobs) starts in well under a second."""

from __future__ import annotations


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
