"""The next batch on its way to the GPU while this step computes.

The loop takes a step's batch with ``next()``, queues the step's kernels, then calls
``prefetch()``: the next batch is read from the loader and copied to the device from
page-locked memory on a side CUDA stream while the GPU still runs the step just queued. A
step waits only for its own batch's copy (an event), never for the one behind it. On CPU
nothing is copied and batches pass through, still read one step ahead, so CPU runs
exercise the same order of reads.

Each batch comes with the stream position after it, so reading ahead never moves the
position a checkpoint records: that is the position of the batch the step trained on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


class Staged:
    def __init__(self, batches: Iterator[tuple[dict, Any]], device: torch.device):
        self.batches, self.device = batches, device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.ahead: tuple[dict, Any, Any] | None = None

    def _send(self, item: tuple[dict, Any]) -> tuple[dict, Any, Any]:
        raw, position = item
        if self.stream is None:
            return raw, position, None
        with torch.cuda.stream(self.stream):
            images = {k: v.to(self.device, non_blocking=True) for k, v in raw["images"].items()}
            copied = torch.cuda.Event()
            copied.record(self.stream)
        return {**raw, "images": images}, position, copied

    def next(self) -> tuple[dict, Any]:
        """This step's batch (the one prefetched, else read now) and the position after it."""
        raw, position, copied = self.ahead or self._send(next(self.batches))
        self.ahead = None
        if copied is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(copied)
            for images in raw["images"].values():
                images.record_stream(current)  # the side stream's allocator must not reuse it early
        return raw, position

    def prefetch(self) -> None:
        """Read the next batch and start its copy; called once the step's work is queued, and
        only when another step follows (a run's last step starts no read it will not use)."""
        if self.ahead is None:
            self.ahead = self._send(next(self.batches))
