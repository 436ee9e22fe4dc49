"""The errors of the cluster helpers, each a problem a user fixes by changing the command or the
cluster; the CLI prints them as one line. (cluster imports nothing from pipelines, so they
live here, not in pipelines/errors.py.)"""

from __future__ import annotations


class CapacityError(RuntimeError):
    """A request the cluster cannot meet: the message says what was asked, what the cluster
    has and the largest request that fits."""


class JobsError(RuntimeError):
    """The cluster cannot be reached or refuses the request; the message says what to do."""


class ClusterError(RuntimeError):
    """A local cluster cannot be started, found or stopped; the message says why."""


class ServiceError(RuntimeError):
    """A service did not come up; the message says which and where its log is."""
