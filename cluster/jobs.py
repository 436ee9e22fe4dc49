"""Jobs on a Ray cluster through the Ray Jobs SDK: submit any ganforge command, list jobs,
read their status and logs, stop them. The address comes from --address, else
$RAY_API_SERVER_ADDRESS (Ray's own name for it) or $RAY_ADDRESS, else the local cluster that
`ganforge cluster up` recorded."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from collections.abc import Iterator

from cluster import local_cluster
from cluster.capacity import Capacity, Request, autoscaler_grows, fits_now
from cluster.connect import use_token_if_any
from cluster.errors import JobsError
from cluster.runtime_env import job_runtime_env
from cluster.state import ClusterState

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
AGENT_WAIT_S = 120  # a just-started head's job agent: seconds to wait for it to take jobs


def dashboard_address(address: str | None) -> str:
    """The Jobs API's URL: --address, else $RAY_API_SERVER_ADDRESS or $RAY_ADDRESS, else the
    local cluster's dashboard."""
    chosen = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if chosen:
        return chosen if "://" in chosen else f"http://{chosen}"
    cluster = local_cluster.load_alive()
    if cluster is None:
        raise JobsError(
            "no Ray cluster to submit to: pass --address http://HEAD:8265, set RAY_API_SERVER_ADDRESS, "
            "or start a local one with `ganforge cluster up`"
        )
    return cluster.dashboard_url


def tracking_uri(uri: str | None, cluster: ClusterState | None) -> str | None:
    """Jobs must log to a tracking server every node reaches: a local file store would
    scatter runs over the nodes' disks. None: the cluster's own setting applies (a head
    started from ray_cluster.yaml sets MLFLOW_TRACKING_URI for the jobs it runs)."""
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or (cluster.mlflow_uri if cluster else "")
    if not chosen:
        return None
    if not chosen.startswith(("http://", "https://", "databricks")):
        raise JobsError(
            f"jobs log to an MLflow server, not to a local store ({chosen}): the job's processes "
            "run on other nodes, whose runs would be lost to this machine"
        )
    return chosen


def client(address: str | None):
    url = dashboard_address(address)
    use_token_if_any()
    from ray.job_submission import JobSubmissionClient

    for name in ("ray", "ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)  # not a line per uploaded package and socket
    try:
        return JobSubmissionClient(url)
    except (ConnectionError, RuntimeError) as exc:
        raise JobsError(f"cannot reach the Ray Jobs API at {url}: {exc}".splitlines()[0]) from exc


def submit(
    command: list[str],
    address: str | None = None,
    tracking: str | None = None,
    job_id: str | None = None,
    request: Request | None = None,
) -> tuple[str, str | None]:
    """Submit `ganforge COMMAND...` (its local paths made absolute by the caller) as a Ray
    job; returns its id and the tracking URI it was given (None: the cluster's own).
    ``request``: what the command's run asks of the cluster, checked against it first."""
    if not command:
        raise JobsError(
            "nothing to submit: give a ganforge command after --, e.g. `ganforge submit -- train lsgan ...`"
        )
    url = dashboard_address(address)
    jobs = client(url)
    if request is not None:
        check_room(jobs, request)
    local = local_cluster.load_alive()
    uri = tracking_uri(tracking, local if local is not None and local.dashboard_url == url else None)
    entrypoint = shlex.join(["python", "-m", "pipelines.cli.main", *command])
    return _submit_when_ready(jobs, entrypoint=entrypoint, runtime_env=job_runtime_env(uri), submission_id=job_id), uri


def cluster_capacity(jobs) -> Capacity:
    """The cluster behind a Jobs API: its alive nodes (Ray's state API) and whether an
    autoscaler may add more (its status report, which the dashboard serves). Both go
    through the dashboard with the cluster's token, as the Jobs SDK sends it."""
    from ray.util.state import list_nodes

    url = jobs.get_address()
    nodes = list_nodes(address=url, filters=[("state", "=", "ALIVE")], detail=True, raise_on_missing_output=False)
    response = jobs._do_request("GET", "/api/cluster_status")  # the SDK's authenticated request
    status = (response.json().get("data") or {}).get("clusterStatus") if response.status_code == 200 else None
    return Capacity(
        f"the Ray cluster at {url}", tuple(dict(n.resources_total) for n in nodes), autoscaler_grows(status)
    )


def check_room(jobs, request: Request) -> None:
    """Refuse a job whose run could never start on this cluster. A cluster with an autoscaler
    may still grow: the job's own driver waits for it, and says so in the job's logs."""
    fits_now(request, cluster_capacity(jobs))


def _submit_when_ready(jobs, timeout: float = AGENT_WAIT_S, **job) -> str:
    """A head that has just started answers before its job agent does ("No available agent
    to submit job, please try again later"); such a refusal created no job, so try again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return jobs.submit_job(**job)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(2)


def job_info(jobs, job_id: str):
    """The job's info from the Jobs API; a job id the cluster does not know is a one-line
    error that names the cluster."""
    try:
        return jobs.get_job_info(job_id)
    except RuntimeError as exc:
        if "status code 404" in str(exc) or "does not exist" in str(exc):
            raise JobsError(
                f"no job {job_id} on the Ray cluster at {jobs.get_address()} (`ganforge jobs list` lists its jobs)"
            ) from exc
        raise JobsError(f"the Ray Jobs API at {jobs.get_address()} refused: {str(exc).splitlines()[0]}") from exc


def wait(jobs, job_id: str, timeout: float, poll: float = 1.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = str(jobs.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise JobsError(f"job {job_id} is still {status} after {timeout:.0f} s")
        time.sleep(poll)


def follow_logs(jobs, job_id: str) -> Iterator[str]:
    """The job's output as it is written, until the job ends."""
    stream = jobs.tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()
