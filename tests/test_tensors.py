"""Loader batches to model inputs: uint8 images become float in [-1, 1], each image
mirrored or not by its own coin, and flipping before the scaling (on a quarter of the
bytes) gives exactly what scaling first gave."""

import torch

from pipelines.core.tensors import from_uint8, to_model_batch


def _batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"images": {"A": torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=g)}}


def test_images_become_floats_in_range_and_unflipped_without_hflip():
    batch = _batch()
    out = to_model_batch(batch, torch.device("cpu"), hflip=False)["A"]
    assert out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, from_uint8(batch["images"]["A"]))
    assert torch.equal(from_uint8(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([-1.0, 1.0]))


def test_each_image_is_mirrored_by_its_own_coin_exactly_as_scaling_first_did():
    batch = _batch()
    out = to_model_batch(batch, torch.device("cpu"), hflip=True, generator=torch.Generator().manual_seed(5))["A"]
    flip = torch.rand(32, generator=torch.Generator().manual_seed(5)) < 0.5
    scaled = from_uint8(batch["images"]["A"])
    assert torch.equal(out, torch.where(flip[:, None, None, None], scaled.flip(-1), scaled))
    assert 0 < int(flip.sum()) < 32  # some of each
    for i in range(32):
        assert torch.equal(out[i], scaled[i].flip(-1) if flip[i] else scaled[i])
