"""The loop's batches are read one step ahead: the next batch is read (and on a GPU, copied
on a side stream) once this step's work is queued, and the position a checkpoint records is
that of the batch the step trained on, not of the one read ahead."""

import pytest
import torch

from pipelines.core.loop import Position
from pipelines.core.staging import Staged


def _source(reads, n=4):
    for i in range(n):
        reads.append(i)
        yield {"images": {"x": torch.full((2, 1, 4, 4), i, dtype=torch.uint8)}}, Position(0, i + 1)


def _value(raw) -> int:
    return int(raw["images"]["x"][0, 0, 0, 0])


def test_the_next_batch_is_read_ahead_and_positions_follow_the_batch_returned():
    reads = []
    staged = Staged(_source(reads), torch.device("cpu"))
    raw, after = staged.next()
    assert (_value(raw), after, reads) == (0, Position(0, 1), [0])
    staged.prefetch()
    assert reads == [0, 1]  # read while step 0 would compute
    staged.prefetch()
    assert reads == [0, 1]  # one ahead at most
    raw, after = staged.next()
    assert (_value(raw), after, reads) == (1, Position(0, 2), [0, 1])
    raw, after = staged.next()  # nothing prefetched: read now
    assert (_value(raw), after, reads) == (2, Position(0, 3), [0, 1, 2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the side-stream copy needs a CUDA device")
def test_on_a_gpu_each_batch_arrives_whole_on_the_device():
    reads = []
    staged = Staged(
        ((raw | {"images": {"x": raw["images"]["x"].pin_memory()}}, p) for raw, p in _source(reads)),
        torch.device("cuda"),
    )
    for i in range(4):
        raw, _ = staged.next()
        if i < 3:
            staged.prefetch()
        assert raw["images"]["x"].is_cuda and torch.equal(
            raw["images"]["x"].cpu(), torch.full((2, 1, 4, 4), i, dtype=torch.uint8)
        )
