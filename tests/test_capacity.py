"""What a run asks of a Ray cluster against what the cluster has: a cluster that cannot grow
refuses at once with the largest request that fits; one with an autoscaler is waited for,
aloud, until it fits or the wait times out. The cluster states come from the session's real
Ray instance, or are written as Ray's autoscaler writes its status report."""

from __future__ import annotations

import json
import time

import pytest

from cluster.capacity import Capacity, CapacityError, Request, autoscaler_grows, ensure, of_connected, refusal

CPU1 = {"CPU": 1.0}


def fixed(*cpus: float) -> Capacity:
    return Capacity("a test cluster", tuple({"CPU": c} for c in cpus), grows=False)


def growing(*cpus: float, ceiling: dict[str, float] | None = None) -> Capacity:
    return Capacity("a test cluster", tuple({"CPU": c} for c in cpus), grows=True, ceiling=ceiling)


def test_a_worker_s_resources_come_from_one_node():
    two_cpu_workers = {"CPU": 2.0}
    assert fixed(3, 3, 3).workers_fit(two_cpu_workers) == 3  # not 9 // 2 = 4
    assert fixed(3, 3, 3).holds(Request(3, two_cpu_workers))
    assert not fixed(3, 3, 3).holds(Request(4, two_cpu_workers))
    gpu_workers = {"CPU": 1.0, "GPU": 1.0}
    assert Capacity("c", ({"CPU": 8, "GPU": 2}, {"CPU": 8}), grows=False).workers_fit(gpu_workers) == 2


def test_the_refusal_says_what_was_asked_what_there_is_and_what_fits():
    message = refusal(Request(64, CPU1), fixed(2))
    assert message == (
        "this run asks for 64 workers of 1 CPU (64 CPUs in all), but a test cluster has 2 CPUs, "
        "0 GPUs on 1 node and cannot grow; the largest request that fits is --workers 2"
    )
    no_gpu = refusal(Request(2, {"CPU": 1.0, "GPU": 1.0}), fixed(2))
    assert "2 GPUs in all" in no_gpu and "not one worker fits" in no_gpu
    trials = refusal(Request(1, CPU1, {"ganforge_trial": 1}, "--workers-per-trial"), fixed(2))
    assert "no 'ganforge_trial' resource" in trials and "ray start --head --resources=" in trials


def test_a_cluster_that_cannot_grow_refuses_at_once():
    said = []
    start = time.monotonic()
    with pytest.raises(CapacityError, match="cannot grow; the largest request that fits is --workers 2"):
        ensure(Request(3, CPU1), lambda: fixed(1, 1), timeout=60, say=said.append)
    assert time.monotonic() - start < 1 and said == []
    assert ensure(Request(2, CPU1), lambda: fixed(1, 1)).workers_fit(CPU1) == 2  # what fits starts


def test_an_autoscaling_cluster_is_waited_for_and_each_change_is_said():
    states = iter([growing(2), growing(2), growing(2, 2), growing(2, 2, 4)])
    said: list[str] = []
    asked: list[Request | None] = []
    request = Request(6, CPU1)
    capacity = ensure(request, lambda: next(states), say=said.append, interval=0.01, ask=asked.append)
    assert capacity.workers_fit(CPU1) == 8
    assert asked == [request, None]  # the autoscaler is told what to add, and the request withdrawn after
    assert said == [  # once per state of the cluster, not once per look
        "waiting for the autoscaler: this run asks for 6 workers of 1 CPU (6 CPUs in all); "
        "a test cluster has 2 CPUs, 0 GPUs on 1 node now",
        "waiting for the autoscaler: this run asks for 6 workers of 1 CPU (6 CPUs in all); "
        "a test cluster has 4 CPUs, 0 GPUs on 2 nodes now",
    ]


def test_a_wait_that_goes_on_too_long_ends_with_the_same_message():
    said: list[str] = []
    start = time.monotonic()
    with pytest.raises(CapacityError) as error:
        ensure(Request(4, CPU1), lambda: growing(2), timeout=0.3, say=said.append, interval=0.05)
    assert 0.3 <= time.monotonic() - start < 2
    assert str(error.value).startswith(
        "this run asks for 4 workers of 1 CPU (4 CPUs in all), but a test cluster "
        "has 2 CPUs, 0 GPUs on 1 node; the largest request that fits is --workers 2"
    )
    assert "--wait-timeout" in str(error.value) and len(said) == 1


def test_a_request_beyond_the_autoscaler_s_ceiling_is_refused_at_once():
    with pytest.raises(CapacityError, match="its autoscaler stops at 8 CPUs"):
        ensure(Request(16, CPU1), lambda: growing(2, ceiling={"CPU": 8}), timeout=60)


# The autoscaler's status report of a cluster launched from a config with node types, as Ray
# 2.60's monitor writes it (ray/autoscaler/_private/autoscaler.py, AutoscalerSummary).
LAUNCHED = {
    "autoscaler_report": {
        "active_nodes": {"ray.head.default": 1},
        "idle_nodes": None,
        "pending_launches": {"ray.worker.gpu": 2},
        "pending_nodes": [],
        "failed_nodes": [],
    }
}


def _camel_keys(tree):
    """The report as the dashboard serves it: every key camel-cased, node types included."""
    from cluster.capacity import _camel

    return {_camel(k): _camel_keys(v) if isinstance(v, dict) else v for k, v in tree.items()}


def test_a_real_autoscaler_is_told_from_ray_s_read_only_one(ray_local):
    from ray.experimental.internal_kv import _internal_kv_get

    deadline = time.monotonic() + 60
    while not (raw := _internal_kv_get("__autoscaling_status")) or "autoscaler_report" not in json.loads(raw):
        assert time.monotonic() < deadline, "the local instance's monitor wrote no status report"
        time.sleep(1)
    local = json.loads(raw)  # a local instance: Ray's read-only autoscaler, one node type per node
    assert local["autoscaler_report"]["active_nodes"] and not autoscaler_grows(local)
    assert not autoscaler_grows(_camel_keys(local))
    assert autoscaler_grows(LAUNCHED) and autoscaler_grows(_camel_keys(LAUNCHED))
    assert not autoscaler_grows(None)


def test_the_session_s_ray_instance_is_a_fixed_two_cpu_cluster(ray_local):
    capacity = of_connected("the session's Ray")
    assert capacity.totals()["CPU"] == 2 and not capacity.grows and capacity.ceiling is None
    with pytest.raises(CapacityError, match="the largest request that fits is --workers 2"):
        ensure(Request(3, CPU1), lambda: of_connected("the session's Ray"))
