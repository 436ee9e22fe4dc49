"""Demo images from an installed package, so `make demo` and the tests need no download:
scikit-learn's 1,797 handwritten digits (8x8 scans, 17 grey levels), written as PNG files,
and for translation GANs the same digits against MNIST-M-style versions textured with crops
of scikit-learn's two sample photographs."""

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


def photo_crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 random crops (64-160 px, resized) of scikit-learn's two sample
    photographs: real textures and colours for the two-domain demo and tests."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(64, 161))
        y, x = rng.integers(photo.shape[0] - side), rng.integers(photo.shape[1] - side)
        crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.Resampling.BICUBIC)
        crops.append(np.asarray(crop))
    return np.stack(crops)


def mnist_m(digits: np.ndarray, seed: int = 0) -> np.ndarray:
    """MNIST-M style (Ganin et al. 2016): each digit blended into a photo crop as
    |crop - digit|, so strokes take the inverted colours of a real texture."""
    crops = photo_crops(len(digits), digits.shape[1], seed).astype(np.int16)
    return np.abs(crops - digits[..., None].astype(np.int16)).astype(np.uint8)


def write_digit_domains(out: Path, size: int = DEMO_SIZE) -> dict[str, int]:
    """Unpaired two-domain demo data: ``out/A`` plain digits, ``out/B`` MNIST-M-style digits.
    The domains use disjoint halves of the digits, so no B image is a copy of an A image."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} already exists and is not empty")
    images, labels = digit_images(size)
    domains = {"A": (images[0::2], labels[0::2], "L"), "B": (mnist_m(images[1::2]), labels[1::2], "RGB")}
    for name, (pictures, names, mode) in domains.items():
        for index, (picture, label) in enumerate(zip(pictures, names)):
            folder = out / name / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(picture, mode).save(folder / f"{index:05d}.png")
    return {name: len(pictures) for name, (pictures, _, _) in domains.items()}
