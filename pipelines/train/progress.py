"""The driver's progress bar: rank 0's (step, metrics) messages from a Ray queue, drawn as a
tqdm bar, with a warning when MLflow goes away and when it is back, and rank 0's notices:
warnings a worker raises that the user must see without reading worker logs."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from tqdm import tqdm

NOTICE = "notice"  # (NOTICE, text) on the queue: a worker's warning, repeated by the driver


@contextlib.contextmanager
def notices_to_driver(queue: Any) -> Iterator[None]:
    """Warnings raised inside go to the driver's terminal as well as the worker's log, which
    the user sees only with --verbose or `ganforge jobs logs`. ``queue`` None: left alone."""
    if queue is None:
        yield
        return
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:  # also when what is inside fails: its warnings may say why
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            with contextlib.suppress(Exception):  # a full or gone queue must never stop training
                queue.put_nowait((NOTICE, str(warning.message)))


class Progress:
    """Draws rank 0's (step, metrics) messages from a Ray queue as a tqdm bar, with the loss of
    each of the GAN's optimizer ``groups`` (logged as ``loss/<group>``)."""

    def __init__(self, queue: Any, total: int, enabled: bool, groups: tuple[str, ...] = ("D", "G")):
        self.queue, self.stop, self.groups = queue, threading.Event(), groups
        self.outage = False
        self.bar = tqdm(total=total, desc="train", unit="step", disable=not enabled, dynamic_ncols=True)
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while not self.stop.is_set():
            try:
                message = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # the queue actor is gone: the job ended
                return
            if message[0] == NOTICE:
                warnings.warn(f"rank 0: {message[1]}", stacklevel=1)
                continue
            step, metrics = message
            self.bar.update(step - self.bar.n)
            self._report_outage(bool(metrics.get("tracking/outage")), step)
            losses = {g: f"{metrics.get(f'loss/{g}', float('nan')):.3f}" for g in self.groups}
            self.bar.set_postfix({**losses, "img/s": f"{metrics.get('perf/images_per_sec', 0):.0f}"}, refresh=False)

    def _report_outage(self, outage: bool, step: int) -> None:
        if outage and not self.outage:
            warnings.warn(
                f"MLflow became unreachable at step {step}: training and checkpoints go on, "
                "metrics and images are queued and retried",
                stacklevel=1,
            )
        elif self.outage and not outage:
            warnings.warn(f"MLflow is reachable again at step {step}; queued metrics are being sent", stacklevel=1)
        self.outage = outage

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.bar.close()
