"""System metrics per node: MLflow's system-metrics monitors (CPU and memory, disk, network,
and GPU utilisation and memory where NVML finds a GPU) sampled on every node that runs
workers, by that node's first worker, and logged into the run as ``system/<node>/<metric>``
at the training step, so the UI's System metrics tab charts each node beside the losses.

MLflow's own monitor thread logs straight to the tracking URI; this one logs through the
node's ``RunLogger``, which queues through store outages and reaches a loopback server
through the relay."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def node_label(node_id: str) -> str:
    """A short, unique name for a Ray node in metric keys: its id's first 8 hex digits."""
    return node_id[:8]


def monitors() -> list[Any]:
    """MLflow's monitors: CPU and memory, disk and network, and a GPU's where NVML (or ROCm)
    finds one."""
    from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
    from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
    from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor
    from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor
    from mlflow.system_metrics.metrics.rocm_monitor import ROCMMonitor

    found = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]
    for gpu in (GPUMonitor, ROCMMonitor):
        try:
            found.append(gpu())
            break
        except Exception:  # no such GPU, or no driver library on this node
            continue
    return found


class NodeMetrics:
    def __init__(self, logger: Any, node: str, step: Callable[[], int], interval: float = 10.0):
        self.monitors = monitors()
        self.logger, self.prefix, self.step, self.interval = logger, f"system/{node}/", step, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ganforge-system-metrics", daemon=True)

    def start(self) -> NodeMetrics:
        self._thread.start()
        return self

    def sample(self) -> dict[str, float]:
        """One sample of every monitor, under this node's prefix."""
        metrics: dict[str, float] = {}
        for monitor in self.monitors:
            monitor.collect_metrics()
            metrics.update(monitor.aggregate_metrics())
            monitor.clear_metrics()
        return {self.prefix + key: float(value) for key, value in metrics.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.logger.metrics(self.step(), self.sample())

    def stop(self) -> None:
        """Stop sampling, with a last sample so even a short run has one per node."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        self.logger.metrics(self.step(), self.sample())
