"""The local Ray instance ganforge starts stays usable with another Ray instance on the machine."""

import subprocess
import sys

import pytest

OTHER_INSTANCE = (
    "import ray, sys; ray.init(num_cpus=0, include_dashboard=False); print('up', flush=True); "
    "sys.stdin.read(); ray.shutdown()"
)


@pytest.mark.slow  # guards against a deadlock of searches (Ray Train's cleaner could not find its cluster)
def test_workers_find_their_own_cluster_beside_another_ray_instance(ray_local):
    import ray

    @ray.remote(num_cpus=0)
    class Probe:
        def own_state(self) -> str:
            # What Ray Train's placement-group cleaner asks about its controller: a lookup
            # of the cluster by address. With two instances and no address it raises.
            from ray.util.state import get_actor

            return get_actor(ray.get_runtime_context().get_actor_id(), timeout=30).state

    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_INSTANCE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert other.stdout.readline() == "up\n"
        assert ray.get(Probe.remote().own_state.remote()) == "ALIVE"
    finally:
        other.communicate(timeout=60)  # closing its stdin shuts the other instance down
