"""Evaluate a generator during training, split across DDP ranks (torch only, no Ray).

The ``eval.samples`` images are cut into global batches that ranks take in turn; batch j
always uses the same latents (seeded by j) or the same reference inputs, so the result does
not depend on the number of ranks. Each rank generates (or translates) its batches with the
sampling nets (EMA where there is one), quantises them to 8 bits like saved images and
extracts their features; images and features are gathered, and rank 0 compares them with
the reference. The result is broadcast, so every rank returns the same metrics.
Unconditional GANs report ``eval/<metric>``; translation GANs report ``eval/AtoB/<metric>``
and ``eval/BtoA/<metric>`` and their mean as ``eval/<metric>``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from gan_core.interface import GAN
from gan_core.metrics import MetricSuite, make_suite
from gan_core.nets.modes import eval_mode
from pipelines.config.schema import GanforgeConfig
from pipelines.core.distributed import world_size
from pipelines.core.tensors import to_uint8
from pipelines.data.manifest import Dataset
from pipelines.eval.reference import Reference, add_features, load_reference, to_float

Produce = Callable[[int, int], torch.Tensor]  # (start, count) -> float images in [-1, 1]


def _distributed() -> bool:
    return world_size() > 1


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's rows, rank 0's first (all ranks hold the same number of rows)."""
    if not _distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def broadcast(result: dict[str, float]) -> dict[str, float]:
    if not _distributed():
        return result
    box = [result]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def quantise(images: torch.Tensor) -> torch.Tensor:
    return to_uint8(images)


class Evaluator:
    def __init__(
        self,
        gan: GAN,
        dataset: Dataset,
        domains: dict[str, str],
        suite: MetricSuite,
        samples: int,
        batch_size: int,
        seed: int = 0,
    ):
        self.gan, self.dataset, self.domains, self.suite = gan, dataset, domains, suite
        self.samples, self.batch_size, self.seed = samples, batch_size, seed
        self.rank = dist.get_rank() if _distributed() else 0
        self.world = world_size()
        self._refs: dict[str, Reference] = {}

    def reference(self, key: str) -> Reference:
        """Images on every rank (translation inputs); features only where compared (rank 0)."""
        if key not in self._refs:
            self._refs[key] = load_reference(self.dataset, self.domains[key], self.samples)
        return self._refs[key]

    @torch.no_grad()
    def __call__(self, nets: dict[str, nn.Module]) -> dict[str, float]:
        start = time.perf_counter()
        with eval_mode(nets):
            result = self._unconditional(nets) if self.gan.domains == ("image",) else self._translation(nets)
        result = broadcast(result)
        result["eval/seconds"] = time.perf_counter() - start
        return result

    def _unconditional(self, nets: dict[str, nn.Module]) -> dict[str, float]:
        def produce(start: int, count: int) -> torch.Tensor:  # the same latents at every evaluation
            return self.gan.generate(nets, count, torch.Generator().manual_seed(self.seed * 1_000_003 + start))

        fake = self._gathered(produce, self.samples)
        return {f"eval/{k}": v for k, v in self._compare("image", *fake).items()}

    def _translation(self, nets: dict[str, nn.Module]) -> dict[str, float]:
        result: dict[str, float] = {}
        for direction, src, dst in (("AtoB", "A", "B"), ("BtoA", "B", "A")):
            inputs = self.reference(src).images
            device = next(next(iter(nets.values())).parameters()).device

            def produce(start: int, count: int, inputs=inputs, direction=direction, device=device) -> torch.Tensor:
                index = torch.arange(start, start + count) % len(inputs)  # the last share wraps around
                return self.gan.translate(nets, to_float(inputs[index]).to(device), direction)

            fake = self._gathered(produce, len(inputs))
            for key, value in self._compare(dst, *fake).items():
                result[f"eval/{direction}/{key}"] = value
        for key in {k.split("/", 2)[2] for k in result}:
            result[f"eval/{key}"] = (result[f"eval/AtoB/{key}"] + result[f"eval/BtoA/{key}"]) / 2
        return result

    def _gathered(self, produce: Produce, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``total`` images in global batches, rank r taking batches r, r + world, ...; then
        every rank's, back in batch order: (uint8 images, features)."""
        size = self.batch_size
        n_batches = math.ceil(total / size)
        per_rank = math.ceil(n_batches / self.world)
        images, features = [], []
        for i in range(per_rank):
            j = (i * self.world + self.rank) % n_batches  # past the end: a repeat, dropped below
            batch = quantise(produce(j * size, size))
            images.append(batch)
            features.append(self.suite.features(to_float(batch)).to(batch.device))
        return self._in_batch_order(torch.cat(images), per_rank, total), self._in_batch_order(
            torch.cat(features), per_rank, total
        )

    def _in_batch_order(self, local: torch.Tensor, per_rank: int, total: int) -> torch.Tensor:
        rows = gather_rows(local).cpu()  # rank-major: rank 0's batches first
        rows = rows.view(self.world, per_rank, self.batch_size, *rows.shape[1:]).transpose(0, 1)
        return rows.reshape(-1, *rows.shape[3:])[:total]

    def _compare(self, key: str, fake_images: torch.Tensor, fake_features: torch.Tensor) -> dict[str, float]:
        if self.rank != 0:  # only rank 0 reads the reference it is compared with
            return {}
        ref = add_features(self.reference(key), self.dataset, self.suite)
        assert ref.features is not None  # add_features computed or loaded them
        return self.suite.compare(ref.features, fake_features, to_float(ref.images), to_float(fake_images))


def make_evaluator(
    cfg: GanforgeConfig, gan: GAN, dataset: Dataset, domains: dict[str, str], device: torch.device
) -> Evaluator:
    """The evaluator a run's config asks for; Inception when its weights are found."""
    suite = make_suite(cfg.eval.inception_weights or None, device)
    suite.batch_size = cfg.eval.batch_size
    return Evaluator(gan, dataset, domains, suite, cfg.eval.samples, cfg.eval.batch_size, cfg.train.seed)
