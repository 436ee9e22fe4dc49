"""Whether a Ray cluster can hold what a run asks for, checked before any worker starts.

Ray itself waits, silently and for ever, for resources a cluster does not have: a run that
asks a 2-CPU machine for 64 workers just hangs. So ganforge compares the request with the
cluster's nodes first:

* a cluster that cannot grow (a local instance, `ganforge cluster up`, nodes joined by hand:
  Ray runs a read-only autoscaler there) refuses a request that does not fit, at once, with
  the largest request that does;
* a cluster with an autoscaler waits for it, saying what it waits for and what the cluster
  has now, until the request fits or the wait times out; a request beyond the autoscaler's
  ceiling, where the autoscaler publishes one (autoscaler v2, KubeRay), is refused at once.

The cluster's state comes from the autoscaler's status report, which Ray's monitor writes on
every cluster: read from the GCS inside a connected process, or from the dashboard's
``/api/cluster_status`` for `ganforge submit`, which has only the Jobs API's address."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cluster.errors import CapacityError

# The node types Ray's read-only autoscaler (no autoscaling config) reports: one per node,
# named after the node's id. A cluster whose report names any other type has a real one.
# (The dashboard camel-cases the report's keys, node types among them: node_3a9f -> node3A9F.)
READONLY_NODE_TYPE = re.compile(r"^node_?[0-9a-f]{56}$", re.IGNORECASE)
STATUS_KEY = "__autoscaling_status"  # ray._private.ray_constants.DEBUG_AUTOSCALING_STATUS
POLL_S = 5.0  # seconds between looks at an autoscaling cluster
SAY_EVERY_S = 30.0  # a waiting line at least this often, and whenever the cluster changes


@dataclass(frozen=True)
class Request:
    """``workers`` bundles of ``per_worker`` resources (each on one node), plus ``extra``
    anywhere in the cluster (a Tune trial's driver unit); ``flag`` sets the worker count."""

    workers: int
    per_worker: dict[str, float]
    extra: dict[str, float] = field(default_factory=dict)
    flag: str = "--workers"

    def totals(self) -> dict[str, float]:
        totals = {key: amount * self.workers for key, amount in self.per_worker.items()}
        for key, amount in self.extra.items():
            totals[key] = totals.get(key, 0) + amount
        return totals

    def describe(self) -> str:
        each = " + ".join(_amount(k, v) for k, v in self.per_worker.items())
        text = f"{self.workers} worker{'s' * (self.workers != 1)} of {each}"
        if self.workers > 1:
            text += f" ({', '.join(_amount(k, v * self.workers) for k, v in self.per_worker.items())} in all)"
        return text + "".join(f" and {_amount(k, v)}" for k, v in self.extra.items())


@dataclass(frozen=True)
class Capacity:
    where: str  # "the local Ray instance", "the Ray cluster at http://...": for messages
    nodes: tuple[dict[str, float], ...]  # each alive node's total resources
    grows: bool  # an autoscaler may add nodes
    ceiling: dict[str, float] | None = None  # the most the autoscaler may provide, where it says

    def totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for node in self.nodes:
            for key, amount in node.items():
                totals[key] = totals.get(key, 0) + amount
        return totals

    def workers_fit(self, per_worker: dict[str, float]) -> int:
        """How many workers of ``per_worker`` (at least one CPU each) the nodes hold, each
        worker's bundle on one node, as Ray places them."""
        return sum(min(int(node.get(k, 0) // v) for k, v in per_worker.items() if v > 0) for node in self.nodes)

    def holds(self, request: Request) -> bool:
        totals = self.totals()
        return self.workers_fit(request.per_worker) >= request.workers and all(
            totals.get(k, 0) >= v for k, v in request.extra.items()
        )

    def beyond_ceiling(self, request: Request) -> bool:
        return self.ceiling is not None and any(self.ceiling.get(k, 0) < v for k, v in request.totals().items())

    def describe(self) -> str:
        totals = self.totals()
        shown = [_amount(k, totals.get(k, 0)) for k in ("CPU", "GPU")]
        return f"{', '.join(shown)} on {len(self.nodes)} node{'s' * (len(self.nodes) != 1)}"


def _amount(key: str, value: float) -> str:
    return f"{value:g} {key}{'s' * (value != 1 and key in ('CPU', 'GPU'))}"


def refusal(request: Request, capacity: Capacity) -> str:
    """The one-line error: what was asked, what the cluster has, the largest request that fits."""
    fit = capacity.workers_fit(request.per_worker)
    if capacity.beyond_ceiling(request):
        ceiling = sorted((capacity.ceiling or {}).items())
        has = f"its autoscaler stops at {', '.join(_amount(k, v) for k, v in ceiling)}"
    else:
        has = f"{capacity.where} has {capacity.describe()}" + ("" if capacity.grows else " and cannot grow")
    missing = [k for k, v in request.extra.items() if capacity.totals().get(k, 0) < v]
    if missing:  # a custom resource (ganforge_trial) is declared when the head starts
        declare = ", ".join(f'"{k}": 64' for k in missing)
        hint = (
            f"it has no {', '.join(repr(k) for k in missing)} resource: start its head with "
            f"`ray start --head --resources='{{{declare}}}'` (ray_cluster.yaml declares it)"
        )
    elif fit >= 1:
        hint = f"the largest request that fits is {request.flag} {min(fit, request.workers)}"
    else:
        hint = "not one worker fits: ask for fewer CPUs per worker (train.threads_per_worker) or no GPU"
    return f"this run asks for {request.describe()}, but {has}; {hint}"


def ensure(
    request: Request,
    poll: Callable[[], Capacity],
    timeout: float = 0.0,
    say: Callable[[str], None] = print,
    interval: float = POLL_S,
    ask: Callable[[Request | None], None] | None = None,
) -> Capacity:
    """Return once the cluster holds ``request``; refuse at once what it can never hold;
    on an autoscaling cluster, wait (``timeout`` seconds at most; 0: no limit) and say why.
    ``ask`` tells the autoscaler what is wanted while waiting, and None when done."""
    capacity = poll()
    if fits_now(request, capacity):
        return capacity
    if ask is not None:
        ask(request)
    try:
        return _wait(request, capacity, poll, timeout, say, interval)
    finally:
        if ask is not None:
            ask(None)


def fits_now(request: Request, capacity: Capacity) -> bool:
    """Whether the cluster holds ``request`` now; a request it can never hold (no autoscaler,
    or beyond the autoscaler's ceiling) is refused; False where an autoscaler may add room."""
    if capacity.holds(request):
        return True
    if not capacity.grows or capacity.beyond_ceiling(request):
        raise CapacityError(refusal(request, capacity))
    return False


def _wait(
    request: Request,
    capacity: Capacity,
    poll: Callable[[], Capacity],
    timeout: float,
    say: Callable[[str], None],
    interval: float,
) -> Capacity:
    start = time.monotonic()
    said, said_at = "", -math.inf
    while not capacity.holds(request):
        waited = time.monotonic() - start
        if timeout and waited >= timeout:
            raise CapacityError(f"{refusal(request, capacity)} (still so after {waited:.0f} s: --wait-timeout)")
        line = (
            f"waiting for the autoscaler: this run asks for {request.describe()}; "
            f"{capacity.where} has {capacity.describe()} now"
        )
        if line != said or time.monotonic() - said_at >= SAY_EVERY_S:
            say(line)
            said, said_at = line, time.monotonic()
        time.sleep(interval if not timeout else min(interval, max(0.0, timeout - waited)))
        capacity = poll()
    return capacity


def autoscaler_grows(status: dict[str, Any] | None) -> bool:
    """Whether the autoscaler's status report comes from a real autoscaler, not Ray's
    read-only one. Read with either spelling of its keys: the GCS's, or the dashboard's."""
    status = status or {}
    report = status.get("autoscaler_report") or status.get("autoscalerReport") or {}
    types: set[str] = set()
    for key in ("active_nodes", "idle_nodes", "pending_launches"):
        types.update(report.get(key) or report.get(_camel(key)) or {})
    return any(not READONLY_NODE_TYPE.match(t) for t in types)


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(part.title() for part in rest)


def ask_autoscaler(request: Request | None) -> None:
    """An autoscaler adds nodes for work that waits; while ganforge waits, the run's placement
    group does not exist yet, so the request is made explicit. None withdraws it (the run's
    own placement group holds the nodes from then on)."""
    from ray.autoscaler.sdk import request_resources

    bundles = [] if request is None else [dict(request.per_worker)] * request.workers
    if request is not None and request.extra:
        bundles.append(dict(request.extra))
    request_resources(bundles=bundles)


def of_connected(where: str) -> Capacity:
    """The cluster this process has joined (or started) with ``ray.init``."""
    import json

    import ray
    from ray.experimental.internal_kv import _internal_kv_get

    nodes = tuple({k: float(v) for k, v in node["Resources"].items()} for node in ray.nodes() if node["Alive"])
    raw = _internal_kv_get(STATUS_KEY)
    ceiling = ray._private.state.state.get_max_resources_from_cluster_config()
    grows = ceiling is not None or autoscaler_grows(json.loads(raw) if raw else None)
    return Capacity(where, nodes, grows, {k: float(v) for k, v in ceiling.items()} if ceiling else None)
