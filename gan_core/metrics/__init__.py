"""Sample-quality metrics in plain PyTorch and numpy."""

from gan_core.metrics.distances import feature_statistics, frechet_distance, kernel_distance
from gan_core.metrics.suite import MetricSuite, PixelFeatures, make_suite
from gan_core.metrics.swd import sliced_wasserstein_distance

__all__ = [
    "MetricSuite",
    "PixelFeatures",
    "feature_statistics",
    "frechet_distance",
    "kernel_distance",
    "make_suite",
    "sliced_wasserstein_distance",
]
