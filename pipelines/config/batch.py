"""The global batch: ``data.batch_size`` is what one optimizer step sees over all workers
(NVIDIA's ``--batch``, CycleGAN's 1, DiscoGAN's 64), split evenly across them. The same
config then trains the same thing on 1, 2 or 8 workers: DDP averages the ranks' gradients of
per-rank mean losses, which is the gradient of the global batch's mean loss."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.errors import ConfigError


def worker_batch(batch: int, workers: int) -> int:
    """Each worker's share of the global batch; refused where it cannot be split evenly."""
    if batch % workers:
        raise ConfigError(_advice(batch, workers))
    return batch // workers


def check_split(batch: int, worker_counts: Iterable[int]) -> None:
    """Refuse a batch that some worker count the run may run at cannot split."""
    for workers in worker_counts:
        worker_batch(batch, workers)


def _advice(batch: int, workers: int) -> str:
    below, above = (batch // workers) * workers, -(-batch // workers) * workers
    batches = " or ".join(f"data.batch_size={b}" for b in dict.fromkeys((below, above)) if b >= workers)
    fewer = max(w for w in range(1, workers) if batch % w == 0)
    more = next((w for w in range(workers + 1, batch + 1) if batch % w == 0), None)
    counts = " or ".join(f"train.workers={w}" for w in (fewer, more) if w is not None)
    return (
        f"data.batch_size={batch} is the global batch and does not split evenly over {workers} workers: "
        f"use {batches}, or {counts}"
    )
