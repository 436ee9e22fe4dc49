"""``data.batch_size`` is the global batch: split evenly across the workers, refused with the
nearest valid values where it cannot be, and the same config trains the same first update
on 1 worker as on 2 (real gloo DDP processes, CycleGAN: instance norm, no batch statistics)."""

import pytest
import torch
from spawn_helpers import spawn_gloo
from tiny import TINY

from pipelines.config import ConfigError, load
from pipelines.config.batch import check_split, worker_batch
from pipelines.core.engine import Engine

GLOBAL = 2


def test_the_global_batch_is_split_evenly_or_refused_with_the_nearest_valid_values():
    assert worker_batch(64, 1) == 64 and worker_batch(64, 8) == 8
    with pytest.raises(
        ConfigError,
        match=r"data.batch_size=5 .* over 2 workers: use data.batch_size=4 or "
        r"data.batch_size=6, or train.workers=1 or train.workers=5",
    ):
        worker_batch(5, 2)
    with pytest.raises(ConfigError, match=r"use data.batch_size=2, or train.workers=1$"):
        worker_batch(1, 2)  # CycleGAN's reference batch on the default two workers
    check_split(12, range(1, 5))  # 1, 2, 3 and 4 workers all split 12
    with pytest.raises(ConfigError, match="over 3 workers"):
        check_split(8, range(1, 5))  # an elastic run may shrink to 3


@pytest.mark.parametrize(
    "workers, expected",
    [(2, (2, 2, False)), ("1-4", (1, 4, True)), ([2, 3], (2, 3, True)), ("2-2", (2, 2, False))],
)
def test_workers_are_a_count_or_an_elastic_range(workers, expected):
    train = load("lsgan", overrides=[f"train.workers={workers}"]).train
    assert (train.min_workers, train.max_workers, train.elastic) == expected


@pytest.mark.parametrize("workers", ["3-1", "0", "[1, 2, 3]", "two"])
def test_a_bad_worker_count_or_range_is_refused(workers):
    with pytest.raises(ConfigError, match="train.workers must be"):
        load("lsgan", overrides=[f"train.workers={workers}"])


def _global_batch():
    _, resolution, channels = TINY["cyclegan"]
    g = torch.Generator().manual_seed(7)
    return {d: torch.rand(GLOBAL, channels, resolution, resolution, generator=g) * 2 - 1 for d in ("A", "B")}


def _first_update(rank: int, world: int, out: str) -> None:
    overrides, resolution, channels = TINY["cyclegan"]
    cfg = load("cyclegan", overrides=[*overrides, f"data.batch_size={GLOBAL}", f"train.workers={world}"])
    torch.manual_seed(0)
    engine = Engine.for_config(cfg, resolution, channels, torch.device("cpu"))
    share = GLOBAL // world
    engine.train_step({d: images[rank * share : (rank + 1) * share] for d, images in _global_batch().items()})
    if rank == 0:  # each parameter's value after the step and its gradient (Adam's first m is (1 - beta1) g)
        after = {name: dict(net.named_parameters()) for name, net in engine.raw.items()}
        grads = {}
        for group in engine.groups.values():
            beta1 = group.optimizer.param_groups[0]["betas"][0]
            for name in group.nets:
                for key, p in after[name].items():
                    grads[f"{name}.{key}"] = group.optimizer.state[p]["exp_avg"] / (1 - beta1)
        weights = {f"{name}.{key}": p.detach() for name, params in after.items() for key, p in params.items()}
        torch.save({"weights": weights, "grads": grads}, out)


def test_one_and_two_workers_make_the_same_first_update(tmp_path):
    _first_update(0, 1, str(tmp_path / "one.pt"))
    spawn_gloo(_first_update, 2, tmp_path, str(tmp_path / "two.pt"))
    one, two = (torch.load(tmp_path / f, weights_only=True) for f in ("one.pt", "two.pt"))
    assert one["grads"].keys() == one["weights"].keys()  # every parameter was trained
    scale = max(g.abs().max().item() for g in one["grads"].values())
    for key, grad in one["grads"].items():
        # The same gradients up to float32 rounding (a 2-way all-reduce sums in another order).
        torch.testing.assert_close(two["grads"][key], grad, rtol=1e-4, atol=2e-5 * scale, msg=key)
        # Adam's first step moves each weight by lr * g / (|g| + eps): about lr wherever g is
        # not zero up to rounding. (Conv biases under instance norm have a gradient of exactly
        # zero in exact arithmetic, so Adam's first step turns their rounding noise into +-lr.)
        signal = grad.abs() > 1e-3 * scale
        torch.testing.assert_close(two["weights"][key][signal], one["weights"][key][signal], rtol=0, atol=1e-7)
        assert signal.any() or "bias" in key, key
