"""Sample-quality metrics in plain PyTorch."""

from gan_core.metrics.swd import sliced_wasserstein_distance

__all__ = ["sliced_wasserstein_distance"]
