"""Demo images from an installed package, so `make demo` and the tests need no download:
scikit-learn's 1,797 handwritten digits (8x8 scans, 17 grey levels), written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.data.manifest import DataError

DEMO_SIZE = 32  # 8x8 scans upscaled 4x: smooth strokes, small enough to train fast on CPU


def digit_images(size: int = DEMO_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size) uint8 white-on-black digits and their labels."""
    from sklearn.datasets import load_digits  # local import: only the demo needs scikit-learn

    digits = load_digits()
    scans = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(s).resize((size, size), Image.Resampling.BICUBIC)) for s in scans])
    return images, digits.target


def write_digits(out: Path, size: int = DEMO_SIZE, limit: int = 0) -> int:
    """One PNG per digit under ``out/<label>/``; returns the number written."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} already exists and is not empty")
    images, labels = digit_images(size)
    if limit:
        images, labels = images[:limit], labels[:limit]
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / f"{index:05d}.png")
    return len(images)
