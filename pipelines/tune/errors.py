"""Errors of a search that the CLI reports (kept light: the CLI imports them at start)."""


class SearchInterrupted(Exception):
    """The search was stopped (Ctrl+C) before every trial ended; its state is saved."""
