"""Which metrics a run reports, named by the extractor behind them so no number is ever
mislabelled: with the FID Inception weights, ``fid_inception``, ``kid_inception`` and ``swd``;
without them, ``swd`` and ``kid_pixels`` (KID on downsampled pixels, which needs no
weights), after one warning that says so. Every suite also reports ``diversity``: the spread
of the generated features over that of the real ones (mode collapse drives it towards 0)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.metrics.distances import feature_statistics, frechet_distance, kernel_distance, mean_pairwise_distance
from gan_core.metrics.inception import WEIGHTS_ENV, load_fid_inception
from gan_core.metrics.swd import sliced_wasserstein_distance

_warned = False


class PixelFeatures(nn.Module):
    """Weights-free features: each channel average-pooled to 8 x 8 (coarse layout and colour)."""

    name = "pixels"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images.float(), 8).flatten(1)


@dataclass
class MetricSuite:
    extractor: nn.Module
    batch_size: int = 64

    @property
    def name(self) -> str:
        return str(self.extractor.name)  # each extractor names itself (a class attribute)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.extractor.parameters(), torch.empty(0)).device
        chunks = [
            self.extractor(images[i : i + self.batch_size].to(device)).cpu()
            for i in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(chunks).double()

    def compare(
        self,
        real_features: torch.Tensor,
        fake_features: torch.Tensor,
        real_images: torch.Tensor,
        fake_images: torch.Tensor,
    ) -> dict[str, float]:
        """All metrics of this suite between two sets (features from ``features``)."""
        results = {}
        if real_images.shape[-1] >= 16:  # smaller images have no room for a patch pyramid
            results["swd"] = sliced_wasserstein_distance(real_images, fake_images)["swd"]
        kid, kid_std = kernel_distance(
            real_features, fake_features, subsets=50, subset_size=min(1000, len(real_features), len(fake_features))
        )
        results[f"kid_{self.name}"], results[f"kid_{self.name}_std"] = kid, kid_std
        # Spread of the samples relative to the data's: about 1 when healthy, near 0 on mode collapse.
        results["diversity"] = mean_pairwise_distance(fake_features) / max(mean_pairwise_distance(real_features), 1e-12)
        if self.name == "inception":  # FID is only comparable to published numbers on Inception
            results["fid_inception"] = frechet_distance(
                *feature_statistics(real_features), *feature_statistics(fake_features)
            )
        return results


def make_suite(weights: str | None = None, device: str | torch.device = "cpu") -> MetricSuite:
    """The Inception suite when its weights are found, else the weights-free one."""
    global _warned
    inception = load_fid_inception(weights, device)
    if inception is not None:
        return MetricSuite(inception)
    if not _warned:
        warnings.warn(
            f"no FID Inception weights (give a path or set {WEIGHTS_ENV}): reporting swd and "
            "kid_pixels instead of fid_inception / kid_inception",
            stacklevel=2,
        )
        _warned = True
    return MetricSuite(PixelFeatures())
