"""Sample-quality metrics in plain PyTorch and numpy."""

from gan_core.metrics.distances import feature_statistics, frechet_distance, kernel_distance
from gan_core.metrics.swd import sliced_wasserstein_distance

__all__ = ["feature_statistics", "frechet_distance", "kernel_distance", "sliced_wasserstein_distance"]
