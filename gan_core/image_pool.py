"""The history buffer of Shrivastava et al. (2017) as CycleGAN uses it: D is shown fakes
drawn half from the current batch and half from up to ``size`` earlier fakes, which damps
the oscillation of G and D chasing each other."""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """Per image: while filling, store and return it; then with p = 0.5 return a stored
        fake and keep the new one in its place, else return the new one."""
        if self.size == 0:
            return fakes
        if self.images and self.images[0].device != fakes.device:  # e.g. just restored on CPU
            self.images = [image.to(fakes.device) for image in self.images]
        out = []
        for image in fakes.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                index = int(torch.randint(len(self.images), ()))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": torch.cat(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stored = state["images"]
        self.images = [image.unsqueeze(0) for image in stored] if stored.numel() else []
