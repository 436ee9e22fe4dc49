"""Turn one image file of any common format into the training format: square, target size,
8-bit, the dataset's channel mode, PNG-encoded. Done once at shard time so training only
decodes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pipelines.data import png
from pipelines.errors import BadImage

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
CHANNEL_MODES = {"RGB": 3, "L": 1}


def _to_8bit(image: Image.Image) -> Image.Image:
    # 16-bit and 32-bit integer images ("I;16", "I") would be clipped to white by convert("L").
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return image


def _flatten_alpha(image: Image.Image) -> Image.Image:
    # Transparent pixels carry arbitrary colour values; compositing on white gives what a
    # viewer shows, instead of whatever was stored under alpha 0.
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba)
    return image


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size``, then cut the centred ``size`` x ``size`` square."""
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    left, top = (new_size[0] - size) // 2, (new_size[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def prepare_image(path: Path, size: int, channels: str) -> bytes:
    """PNG bytes of the prepared image; raises BadImage naming the problem."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image: Image.Image = ImageOps.exif_transpose(opened)
    except Exception as exc:  # PIL raises many types for corrupt or non-image files
        raise BadImage(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    if min(image.size) < 1:
        raise BadImage("empty image")
    prepared = resize_center_crop(_flatten_alpha(_to_8bit(image)).convert(channels), size)
    return png.encode(np.asarray(prepared))  # Up-filtered: cheap to decode at training time


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of a (C, H, W) array (itself when it is that size)."""
    top, left = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
    return image[:, top : top + size, left : left + size]


def random_crop(image: np.ndarray, size: int, rng: random.Random) -> np.ndarray:
    """A size x size window (a view) of a (C, H, W) array at a position drawn from ``rng``."""
    top, left = rng.randrange(image.shape[1] - size + 1), rng.randrange(image.shape[2] - size + 1)
    return image[:, top : top + size, left : left + size]


def decode_png(data: bytes, size: int, channels: int) -> np.ndarray:
    """(C, H, W) uint8 view of a shard sample's pixels (callers stack or copy it: one copy
    fewer per image); raises BadImage on corrupt or mis-sized data."""
    try:
        array = png.decode(data, size, channels)
    except png.Undecodable as exc:
        raise BadImage(f"undecodable sample ({exc})") from exc
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape != (size, size, channels) or array.dtype != np.uint8:
        raise BadImage(f"sample is {array.shape} {array.dtype}, dataset is ({size}, {size}, {channels}) uint8")
    return array.transpose(2, 0, 1)
