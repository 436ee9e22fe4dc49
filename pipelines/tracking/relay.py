"""MLflow calls of rank 0 relayed through the node that created the run.

On a cluster the tracking server listens on the head's loopback (``ray_cluster.yaml``), which
the driver (and each Tune trial's driver) reaches and rank 0, on a GPU node, does not. The
driver therefore starts a small actor on its own node that holds the MLflow client, and rank
0's ``RunLogger`` sends its metrics, tags and sample images to it through Ray.

Files (the final checkpoint, the generator's model folders) never travel through Ray's
object store: rank 0 writes them to a staging folder in the run's storage (``s3://...`` on a
cluster), the actor copies them from there into MLflow and deletes them. The relay is used
only for a server on a loopback address; any other store is written directly."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from PIL import Image

from pipelines.core import storage


def needs_relay(uri: str) -> bool:
    """True for an MLflow server on a loopback address: only processes on its node reach it."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    if parsed.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parsed.hostname).is_loopback
    except ValueError:  # a host name: reachable from every node, or not at all
        return False


class TrackingRelay:
    """The actor's body (``ray.remote`` is applied where it is started): an MLflow client on
    the node that reaches the server. Errors travel back to the caller, whose queue retries."""

    def __init__(self, uri: str):
        from pipelines.tracking.runs import fail_fast_client  # MLflow: only in the actor's process

        self.client = fail_fast_client(uri)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def log_batch(self, run_id: str, metrics: Sequence = (), tags: Sequence = ()) -> None:
        self.client.log_batch(run_id, metrics=list(metrics), tags=list(tags))

    def log_image(self, run_id: str, png: bytes, key: str, step: int) -> None:
        self.client.log_image(run_id, Image.open(io.BytesIO(png)), key=key, step=step)

    def log_artifacts(self, run_id: str, staged: str, artifact_path: str) -> None:
        with _unstaged(staged) as folder:
            self.client.log_artifacts(run_id, str(folder), artifact_path)

    def log_logged_model(
        self, run_id: str, staged: str, step: int, metrics: dict[str, float], tags: dict[str, str]
    ) -> str:
        from pipelines.tracking.models import log_logged_model

        with _unstaged(staged) as folder:
            return log_logged_model(self.client, run_id, folder, step, metrics, tags)


@contextlib.contextmanager
def _unstaged(staged: str) -> Iterator[Path]:
    """A staged folder copied to local disk for MLflow; both copies are gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="ganforge-relay-") as folder:
        try:
            yield storage.download(staged, folder)
        finally:
            storage.delete(staged)


def start_relay(uri: str) -> Any:
    """The relay actor, pinned to this process's node; None where none is needed."""
    if not needs_relay(uri):
        return None
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(TrackingRelay).options(num_cpus=0, scheduling_strategy=here)
    return actor.remote(uri)


class RelayClient:
    """The subset of ``MlflowClient`` that ``RunLogger`` uses, answered by the relay actor.
    ``staging``: a folder in the run's storage that the actor's node reads too."""

    def __init__(self, actor: Any, staging: str):
        self.actor, self.staging = actor, staging

    def _stage(self, folder: str) -> str:
        return storage.upload(folder, storage.join(self.staging, uuid.uuid4().hex))

    @staticmethod
    def _wait(ref: Any) -> None:
        import ray

        ray.get(ref)

    def log_batch(self, run_id: str, metrics: Sequence = (), tags: Sequence = ()) -> None:
        self._wait(self.actor.log_batch.remote(run_id, list(metrics), list(tags)))

    def log_image(self, run_id: str, image: Image.Image, key: str, step: int) -> None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        self._wait(self.actor.log_image.remote(run_id, buffer.getvalue(), key, step))

    def log_artifacts(self, run_id: str, folder: str, artifact_path: str) -> None:
        self._wait(self.actor.log_artifacts.remote(run_id, self._stage(folder), artifact_path))

    def log_logged_model(
        self, run_id: str, folder: str, step: int, metrics: dict[str, float], tags: dict[str, str]
    ) -> str:
        import ray

        return ray.get(self.actor.log_logged_model.remote(run_id, self._stage(folder), step, metrics, tags))
