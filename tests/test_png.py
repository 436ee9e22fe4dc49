"""The shard PNG decoder: its fast path gives PIL's pixels for what `data shard` writes,
hands everything else to PIL, and refuses damaged samples as PIL does."""

import io

import numpy as np
import pytest
from PIL import Image

from pipelines.data import png
from pipelines.data.images import decode_png
from pipelines.errors import BadImage


def _png(array: np.ndarray, **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", **save)
    return out.getvalue()


def _image(size: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (255 / (2 * size))
    noisy = ramp[..., None] + rng.normal(0, 20, (size, size, channels))  # every PNG row filter gets used
    return noisy.clip(0, 255).astype(np.uint8).squeeze(-1) if channels == 1 else noisy.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [16, 64, 257])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_the_fast_path_decodes_what_shards_hold_exactly_as_pil(channels, size, level):
    image = _image(size, channels)
    data = _png(image, compress_level=level)
    assert png._fast_path(data, size, channels) is not None
    assert np.array_equal(png.decode(data, size, channels), image)


def test_an_image_stored_in_several_idat_chunks_is_joined():
    image = _image(512, 3)
    data = _png(image, compress_level=0)  # 768 KiB of pixels: PIL writes them in many chunks
    assert data.count(b"IDAT") > 1
    assert np.array_equal(png.decode(data, 512, 3), image)


@pytest.mark.parametrize(
    "image,size,channels",
    [
        (Image.fromarray(_image(16, 3)).convert("P"), 16, 3),  # palette
        (Image.fromarray(_image(16, 3)).convert("RGBA"), 16, 3),  # alpha
        (Image.fromarray(_image(16, 1).astype(np.int32) * 256).convert("I;16"), 16, 1),  # 16-bit
        (Image.fromarray(_image(32, 3)), 16, 3),  # another size
    ],
)
def test_anything_else_goes_to_pil(image, size, channels):
    out = io.BytesIO()
    image.save(out, format="PNG")
    data = out.getvalue()
    assert png._fast_path(data, size, channels) is None
    with Image.open(io.BytesIO(data)) as opened:
        assert np.array_equal(png.decode(data, size, channels), np.asarray(opened))


def test_a_damaged_pixel_stream_fails_its_crc_check():
    data = bytearray(_png(_image(64, 3), compress_level=1))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(png.Undecodable, match="CRC"):
        png.decode(bytes(data), 64, 3)
    with pytest.raises(BadImage, match="undecodable sample"):
        decode_png(bytes(data), 64, 3)


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_a_truncated_sample_is_refused(cut):
    data = _png(_image(64, 3), compress_level=1)
    with pytest.raises(BadImage, match="undecodable sample"):
        decode_png(data[: int(len(data) * cut)], 64, 3)


def test_a_sample_of_the_wrong_size_or_mode_is_named():
    with pytest.raises(BadImage, match=r"sample is \(32, 32, 3\) uint8, dataset is \(16, 16, 3\)"):
        decode_png(_png(_image(32, 3)), 16, 3)
    with pytest.raises(BadImage, match=r"dataset is \(16, 16, 1\)"):
        decode_png(_png(_image(16, 3)), 16, 1)


def test_not_a_png_is_refused():
    with pytest.raises(BadImage, match="undecodable sample"):
        decode_png(b"GIF89a not really", 16, 3)
