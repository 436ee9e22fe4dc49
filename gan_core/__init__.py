"""Pure-PyTorch GAN components: the GAN interface and registry, networks, losses, metrics.

Nothing here imports Ray, MLflow or WebDataset, so models can be trained, sampled and
benchmarked with torch alone (the orchestration lives in ``pipelines``).
"""

from gan_core.interface import GAN, Phase, PhaseResult
from gan_core.registry import available, get, register

__all__ = ["GAN", "Phase", "PhaseResult", "available", "get", "register"]
