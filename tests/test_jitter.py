"""CycleGAN's data jitter on real shards: `data shard --load-size` stores images larger than
the model's size, training takes a random crop of each sample, new in every epoch, the same
when an epoch is read again (a resume), always inside the image; references and sample-grid
inputs take the centre."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.cli.main import main
from pipelines.data.batches import Batches
from pipelines.data.loader import StreamSpec, read_images
from pipelines.data.manifest import DataError, read_dataset
from pipelines.data.shard import ShardOptions, write_shards
from pipelines.eval.reference import load_reference

LOAD, SIZE = 20, 16


@pytest.fixture(scope="module")
def jittered(tmp_path_factory):
    """40 noise images of 20 x 20, sharded at --size 16 --load-size 20, and the originals."""
    root = tmp_path_factory.mktemp("jitter")
    rng = np.random.default_rng(0)
    originals = {}
    for i in range(40):
        array = rng.integers(0, 256, (LOAD, LOAD), dtype=np.uint8)
        Image.fromarray(array, "L").save(root / f"{i:02d}.png")
        originals[f"{i:02d}.png"] = array
    out = root / "shards"
    assert (
        main(
            [
                "data",
                "shard",
                "--src",
                str(root),
                "--out",
                str(out),
                "--size",
                "16",
                "--load-size",
                "20",
                "--channels",
                "L",
                "--shard-size",
                "10",
            ]
        )
        == 0
    )
    return out, originals


def _epoch(shards, epoch: int) -> dict[str, np.ndarray]:
    ds = read_dataset(shards)
    spec = StreamSpec(mode="exact", seed=1, shuffle_buffer=10, loader_workers=1)
    batches = Batches(ds, {"image": "image"}, spec, batch_size=8)
    crops = {}
    for batch in batches.epoch(epoch):
        for key, image in zip(batch["keys"]["image"], batch["images"]["image"]):
            crops[key] = image[0].numpy()
    return crops


def _offsets(crop: np.ndarray, original: np.ndarray) -> list[tuple[int, int]]:
    return [
        (y, x)
        for y in range(LOAD - SIZE + 1)
        for x in range(LOAD - SIZE + 1)
        if np.array_equal(original[y : y + SIZE, x : x + SIZE], crop)
    ]


def _original_of(shards, key: str, originals) -> np.ndarray:
    """The source image of a sample key (``url#key``), from the shard it names."""
    import webdataset as wds

    url, _, sample_key = key.partition("#")
    for sample in wds.tarfile_samples([{"url": url}]):
        if sample["__key__"] == sample_key:
            return originals[sample["path.txt"].decode()]
    raise AssertionError(f"no sample {key}")


def test_training_takes_random_crops_that_vary_by_epoch_and_stay_inside(jittered):
    shards, originals = jittered
    ds = read_dataset(shards)
    assert (ds.resolution, ds.load_size) == (SIZE, LOAD)
    first, second, again = _epoch(shards, 0), _epoch(shards, 1), _epoch(shards, 0)
    assert set(first) == set(second) and len(first) == 40
    positions = {}
    for key, crop in first.items():
        original = _original_of(shards, key, originals)
        found = _offsets(crop, original)  # the crop is a window of the stored image, never outside it
        assert found, f"{key}: not a {SIZE}px window of its {LOAD}px image"
        assert _offsets(second[key], original)
        positions[key] = found[0]
    assert len(set(positions.values())) > 5  # many different positions across samples
    assert sum(not np.array_equal(first[k], second[k]) for k in first) > 30  # epochs crop anew
    assert all(np.array_equal(first[k], again[k]) for k in first)  # an epoch read again crops the same


def test_references_and_previews_take_the_centre(jittered):
    shards, originals = jittered
    ds = read_dataset(shards)
    images, names = read_images(ds.domain("image"), 5, SIZE, 1, LOAD)
    margin = (LOAD - SIZE) // 2
    for image, name in zip(images, names):
        assert np.array_equal(image[0].numpy(), originals[name][margin : margin + SIZE, margin : margin + SIZE])
    assert load_reference(ds, "image", 5).images.shape == (5, 1, SIZE, SIZE)
    preview = Batches(ds, {"image": "image"}, StreamSpec(), batch_size=4).preview(3)
    assert preview["image"].shape == (3, 1, SIZE, SIZE)


def test_a_load_size_below_the_size_is_refused(tmp_path):
    with pytest.raises(DataError, match="--load-size must be >= --size"):
        write_shards({"image": tmp_path}, tmp_path / "out", ShardOptions(size=16, load_size=12))
