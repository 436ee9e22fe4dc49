"""The loop's batches arrive one ahead: the next batch is read (and on a GPU, copied on a
side stream) while this step trains, and the position a checkpoint records is that of the
batch the step trained on, not of the one read ahead."""

import pytest
import torch

from pipelines.core.loop import Position
from pipelines.core.staging import Staged


def _source(reads, n=4):
    for i in range(n):
        reads.append(i)
        yield {"images": {"x": torch.full((2, 1, 4, 4), i, dtype=torch.uint8)}}, Position(0, i + 1)


def test_the_next_batch_is_read_ahead_and_positions_follow_the_batch_returned():
    reads = []
    staged = Staged(_source(reads), torch.device("cpu"))
    raw, after = staged.next(more=True)
    assert int(raw["images"]["x"][0, 0, 0, 0]) == 0 and after == Position(0, 1) and reads == [0, 1]
    raw, after = staged.next(more=True)
    assert int(raw["images"]["x"][0, 0, 0, 0]) == 1 and after == Position(0, 2) and reads == [0, 1, 2]
    raw, after = staged.next(more=False)  # the last step: nothing more is read
    assert int(raw["images"]["x"][0, 0, 0, 0]) == 2 and after == Position(0, 3) and reads == [0, 1, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the side-stream copy needs a CUDA device")
def test_on_a_gpu_each_batch_arrives_whole_on_the_device():
    reads = []
    staged = Staged(
        ((raw | {"images": {"x": raw["images"]["x"].pin_memory()}}, p) for raw, p in _source(reads)),
        torch.device("cuda"),
    )
    for i in range(4):
        raw, _ = staged.next(more=i < 3)
        assert raw["images"]["x"].is_cuda and torch.equal(
            raw["images"]["x"].cpu(), torch.full((2, 1, 4, 4), i, dtype=torch.uint8)
        )
