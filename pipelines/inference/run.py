"""``ganforge sample`` and ``ganforge translate``: batches through a trained generator,
written as PNG files into a folder that appears only when all of them are written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pipelines.core.tensors import from_uint8, to_uint8
from pipelines.data.images import CHANNEL_MODES, BadImage, decode_png, prepare_image
from pipelines.data.manifest import DataError
from pipelines.data.shard import list_images
from pipelines.data.staging import staged_folder
from pipelines.inference.model import Trained

MODES = {count: mode for mode, count in CHANNEL_MODES.items()}  # 1 -> "L", 3 -> "RGB"


def to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) in [-1, 1] -> 8-bit image."""
    array = to_uint8(image).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array, MODES[array.shape[2]])


def sample_images(
    trained: Trained,
    n: int,
    out: Path,
    batch_size: int = 64,
    seed: int = 0,
    truncation: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    if n < 1:
        raise DataError(f"--n must be >= 1, got {n}")
    written = 0
    with staged_folder(out, overwrite) as tmp, tqdm(total=n, desc="sample", unit="img", disable=not progress) as bar:
        for images in generated(trained, n, seed, truncation, batch_size):
            for image in images:
                to_pil(image).save(tmp / f"{written:06d}.png")
                written += 1
            bar.update(len(images))
    return out


def generated(
    trained: Trained, n: int, seed: int = 0, truncation: float = 1.0, batch_size: int = 64
) -> Iterator[torch.Tensor]:
    """``n`` images in batches, in [-1, 1]: the same for a given seed and batch size, whether
    written by ``ganforge sample`` or returned by the MLflow model."""
    generator = torch.Generator().manual_seed(seed)
    kwargs = {"truncation": truncation} if truncation != 1.0 else {}
    for start in range(0, n, batch_size):
        yield trained.gan.generate(trained.nets, min(batch_size, n - start), generator, **kwargs)


def translated(trained: Trained, images: np.ndarray, direction: str, batch_size: int = 32) -> Iterator[torch.Tensor]:
    """(N, H, W, C) uint8 images at the model's size, translated in batches, in [-1, 1]."""
    for start in range(0, len(images), batch_size):
        batch = from_uint8(torch.from_numpy(images[start : start + batch_size]).to(trained.device))
        yield trained.gan.translate(trained.nets, batch, direction)


@dataclass
class TranslateReport:
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _load(path: Path, size: int, channels: int) -> np.ndarray:
    mode = MODES[channels]
    return decode_png(prepare_image(path, size, mode), size, channels)


def translate_folder(
    trained: Trained,
    src: Path,
    out: Path,
    direction: str,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = True,
) -> TranslateReport:
    """Every image under ``src`` (resized and centre-cropped to the model's size) translated,
    saved as PNG under the same relative path in ``out``. Unreadable files are skipped."""
    files = list_images(src)
    if not files:
        raise DataError(f"no images found under {src}")
    gan, report = trained.gan, TranslateReport()
    with (
        staged_folder(out, overwrite) as tmp,
        tqdm(total=len(files), desc=direction, unit="img", disable=not progress) as bar,
    ):
        for start in range(0, len(files), batch_size):
            batch, names = [], []
            for path in files[start : start + batch_size]:
                try:
                    batch.append(_load(path, gan.resolution, gan.channels))
                    names.append(path.relative_to(src).with_suffix(".png"))
                except BadImage as exc:
                    report.skipped.append((str(path), str(exc)))
            if batch:
                (images,) = translated(trained, np.stack(batch), direction, batch_size)
                for name, image in zip(names, images):
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    to_pil(image).save(tmp / name)
                report.written += len(batch)
            bar.update(len(files[start : start + batch_size]))
    return report
