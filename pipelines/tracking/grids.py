"""Sample grids as images, with numpy and Pillow (no torchvision)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pipelines.core.tensors import to_uint8


def grid_image(grid: torch.Tensor, padding: int = 2, scale: int = 1) -> Image.Image:
    """(rows, cols, C, H, W) images in [-1, 1] -> one PIL image, cells separated by padding."""
    rows, cols, channels, height, width = grid.shape
    pixels = to_uint8(grid).numpy()
    canvas = np.zeros((rows * (height + padding) + padding, cols * (width + padding) + padding, channels), np.uint8)
    for r in range(rows):
        for c in range(cols):
            y, x = padding + r * (height + padding), padding + c * (width + padding)
            canvas[y : y + height, x : x + width] = pixels[r, c].transpose(1, 2, 0)
    image = Image.fromarray(canvas[..., 0] if channels == 1 else canvas, "L" if channels == 1 else "RGB")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image
