"""Rank 0's warnings reach the driver's terminal through the progress queue, and stay in the
worker's own log; a rank without the queue is left alone."""

import queue
import warnings

import pytest

from pipelines.train.progress import NOTICE, notices_to_driver


def test_a_warning_inside_goes_to_the_queue_and_to_the_workers_log():
    driver = queue.Queue()
    # Re-raised for the worker's log, and repeats are not swallowed.
    with pytest.warns(UserWarning, match="the run goes on at epoch 3"), notices_to_driver(driver):
        warnings.warn("the run goes on at epoch 3", stacklevel=1)
        warnings.warn("the run goes on at epoch 3", stacklevel=1)
    assert [driver.get_nowait() for _ in range(driver.qsize())] == [(NOTICE, "the run goes on at epoch 3")] * 2


def test_a_full_queue_never_stops_the_worker():
    full = queue.Queue(maxsize=1)
    full.put_nowait("something")
    with pytest.warns(UserWarning, match="lost notice"), notices_to_driver(full):
        warnings.warn("lost notice", stacklevel=1)
    assert full.qsize() == 1


def test_warnings_before_a_failure_are_kept():
    driver = queue.Queue()
    with pytest.raises(OSError), pytest.warns(UserWarning, match="checkpoint looks old"), notices_to_driver(driver):
        warnings.warn("checkpoint looks old", stacklevel=1)
        raise OSError("checkpoint unreadable")
    assert driver.get_nowait() == (NOTICE, "checkpoint looks old")


def test_without_a_queue_warnings_are_left_alone():
    with pytest.warns(UserWarning, match="plain"), notices_to_driver(None):
        warnings.warn("plain", stacklevel=1)
