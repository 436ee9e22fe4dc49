"""Shard PNGs: what `data shard` writes is a PNG that PIL reads back exactly; the decoder
gives PIL's pixels for those, for PNGs PIL wrote (older shards) and for anything else, and
refuses damaged samples as PIL does."""

import io
import struct
import zlib

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


def _pil_reads(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return np.asarray(image)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [1, 16, 64, 257])
def test_what_shards_hold_is_a_png_any_reader_opens_and_it_decodes_exactly(channels, size):
    image = _image(size, channels)
    data = png.encode(image)
    assert np.array_equal(_pil_reads(data), image)
    decoded = png.decode(data, size, channels)
    assert decoded.shape == (size, size, channels) and decoded.flags.writeable
    assert np.array_equal(decoded.squeeze(-1) if channels == 1 else decoded, image)


def test_every_row_is_up_filtered_and_photos_take_about_the_room_of_pils_own_files():
    """Up rows are what the decoder's one cumulative sum undoes; at level 6 the demo's photo
    crops take about the room PIL's level 1 (what shards held before) took."""
    from pipelines.data.demo import photo_crops

    crops = photo_crops(20, 64)
    ours = [png.encode(crop) for crop in crops]
    rows = np.frombuffer(zlib.decompress(png._fast_path(ours[0], 64, 3)[1]), np.uint8).reshape(64, 193)
    assert (rows[:, 0] == png.UP).all()
    assert sum(map(len, ours)) < 1.05 * sum(len(_png(crop, compress_level=1)) for crop in crops)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [16, 64, 257])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_pngs_pil_wrote_decode_exactly_as_pil_reads_them(channels, size, level):
    """Older shards: PIL chose each row's filter (mostly Paeth)."""
    image = _image(size, channels)
    data = _png(image, compress_level=level)
    assert png._fast_path(data, size, channels) is not None
    rows = np.frombuffer(zlib.decompress(png._fast_path(data, size, channels)[1]), np.uint8)
    assert set(rows.reshape(size, -1)[:, 0]) - {0, png.UP}  # other filters than Up: PIL un-filters
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
    data = bytearray(png.encode(_image(64, 3)))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(png.Undecodable, match="CRC"):
        png.decode(bytes(data), 64, 3)
    with pytest.raises(BadImage, match="undecodable sample"):
        decode_png(bytes(data), 64, 3)


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_a_truncated_sample_is_refused(cut):
    data = png.encode(_image(64, 3))
    with pytest.raises(BadImage, match="undecodable sample"):
        decode_png(data[: int(len(data) * cut)], 64, 3)


def test_a_pixel_stream_of_the_wrong_length_is_named():
    """A header that claims another size than the rows it holds."""
    small = png.encode(_image(16, 3))
    lying = png.SIGNATURE + png._chunk(b"IHDR", struct.pack(">IIBBBBB", 17, 17, 8, 2, 0, 0, 0)) + small[33:]
    with pytest.raises(BadImage, match="pixel data is 784 bytes, expected 884"):
        decode_png(lying, 17, 3)


def test_a_sample_of_the_wrong_size_or_mode_is_named():
    with pytest.raises(BadImage, match=r"sample is \(32, 32, 3\) uint8, dataset is \(16, 16, 3\)"):
        decode_png(_png(_image(32, 3)), 16, 3)
    with pytest.raises(BadImage, match=r"dataset is \(16, 16, 1\)"):
        decode_png(_png(_image(16, 3)), 16, 1)


def test_not_a_png_is_refused():
    with pytest.raises(BadImage, match="undecodable sample"):
        decode_png(b"GIF89a not really", 16, 3)
