"""Evaluation: metrics against a held-out reference whose features are cached, the same
value from two gloo ranks as from one process, the loop calling it, and `ganforge evaluate`
with paired L1/PSNR for translation."""

import pytest
import torch
from spawn_helpers import spawn_gloo
from tiny import tiny_engine

from gan_core.metrics import PixelFeatures
from gan_core.metrics.suite import MetricSuite
from pipelines.data.loader import read_images
from pipelines.data.manifest import read_dataset
from pipelines.data.shard import ShardOptions, write_shards
from pipelines.eval.evaluator import Evaluator
from pipelines.eval.reference import cache_path


def _evaluator(name, shards, domains, samples=200, batch_size=32):
    engine = tiny_engine(name)  # 16 px, like the shards
    return engine, Evaluator(
        engine.gan, read_dataset(shards), domains, MetricSuite(PixelFeatures()), samples, batch_size
    )


def test_unconditional_metrics_use_the_holdout_and_cache_its_features(held_out_digits, monkeypatch):
    torch.manual_seed(0)
    engine, evaluator = _evaluator("lsgan", held_out_digits, {"image": "image"})
    result = evaluator(engine.sampling_nets())
    assert {"eval/swd", "eval/kid_pixels", "eval/kid_pixels_std", "eval/seconds"} <= set(result)
    assert evaluator.reference("image").split == "holdout" and len(evaluator.reference("image").images) == 200
    cached = cache_path(read_dataset(held_out_digits), evaluator.suite, "holdout", "image", 200)
    assert cached.is_file()
    assert all(net.training for net in engine.raw.values())  # modes restored

    _, again = _evaluator("lsgan", held_out_digits, {"image": "image"})
    # 200 fakes in 7 batches of 32: only those may pass through the extractor this time
    monkeypatch.setattr(PixelFeatures, "forward", _only_fakes(PixelFeatures.forward, 7 * 32))
    second = again(engine.sampling_nets())  # reference features come from the cache
    assert second["eval/swd"] == pytest.approx(result["eval/swd"]) and second["eval/kid_pixels"] == pytest.approx(
        result["eval/kid_pixels"]
    )


def _only_fakes(forward, fakes):
    calls = []

    def guarded(self, images):
        calls.append(len(images))
        assert sum(calls) <= fakes, "reference features were recomputed instead of read from the cache"
        return forward(self, images)

    return guarded


def test_an_untrained_generator_scores_worse_than_real_images(held_out_digits):
    torch.manual_seed(0)
    engine, evaluator = _evaluator("lsgan", held_out_digits, {"image": "image"})
    untrained = evaluator(engine.sampling_nets())
    real = evaluator.reference("image")
    images, _ = read_images(read_dataset(held_out_digits).domain("image"), 200, 16, 1)  # training split
    as_real = evaluator.suite.compare(
        real.features,
        evaluator.suite.features(images.float() / 127.5 - 1),
        real.images.float() / 127.5 - 1,
        images.float() / 127.5 - 1,
    )
    assert as_real["swd"] < untrained["eval/swd"] and as_real["kid_pixels"] < untrained["eval/kid_pixels"]


SPLIT_SAMPLES = 72  # 4.5 global batches of 16: ranks get unequal shares and the last one wraps


def _rank(rank, world, name, shards, domains, out):
    torch.manual_seed(0)  # identical nets on both ranks (as DDP keeps them)
    engine, evaluator = _evaluator(name, shards, domains, samples=SPLIT_SAMPLES, batch_size=16)
    result = evaluator(engine.sampling_nets())
    torch.save(result, f"{out}-{rank}.pt")


@pytest.mark.parametrize("name", ["lsgan", "cyclegan"])
def test_two_ranks_give_the_single_process_value(name, held_out_digits, inverted_photo_shards, tmp_path):
    shards, domains = (
        (held_out_digits, {"image": "image"}) if name == "lsgan" else (inverted_photo_shards, {"A": "A", "B": "B"})
    )
    spawn_gloo(_rank, 2, tmp_path, name, str(shards), domains, str(tmp_path / "r"))
    ranks = [torch.load(tmp_path / f"r-{r}.pt", weights_only=True) for r in (0, 1)]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    engine, evaluator = _evaluator(name, shards, domains, samples=SPLIT_SAMPLES, batch_size=16)
    single = evaluator(engine.sampling_nets())
    metrics = [k for k in single if k != "eval/seconds"]
    assert len(metrics) >= 3 and ranks[0].keys() == ranks[1].keys() == single.keys()
    for key in metrics:
        assert ranks[0][key] == ranks[1][key] == pytest.approx(single[key], rel=1e-6), key


def test_the_loop_evaluates_every_k_steps_and_at_the_end(held_out_digits):
    from tiny import TINY

    from pipelines.config import load
    from pipelines.core import loop
    from pipelines.data.batches import Batches
    from pipelines.data.loader import StreamSpec

    torch.manual_seed(0)
    engine, evaluator = _evaluator("lsgan", held_out_digits, {"image": "image"}, samples=64)
    cfg = load("lsgan", overrides=[*TINY["lsgan"][0], "data.batch_size=4", "train.steps=5", "eval.every=2"])
    data = Batches(read_dataset(held_out_digits), {"image": "image"}, StreamSpec(loader_workers=0), 4)
    hooks = loop.CollectingHooks()
    last = loop.run(cfg, engine, data, hooks, evaluator=evaluator)
    assert [step for step, _ in hooks.evals] == [2, 4, 5]
    assert last["eval/swd"] == hooks.evals[-1][1]["eval/swd"] > 0


@pytest.fixture(scope="module")
def paired_inverted(tmp_path_factory):
    """Paired two-domain shards: B holds the colour inverse of the A image of the same name."""
    import numpy as np
    from PIL import Image

    from pipelines.data.demo import photo_crops

    root = tmp_path_factory.mktemp("paired")
    crops = photo_crops(60, 16, seed=5)
    for domain, images in (("A", crops), ("B", 255 - crops)):
        (root / domain).mkdir()
        for i, image in enumerate(images):
            Image.fromarray(np.ascontiguousarray(image)).save(root / domain / f"{i:03d}.png")
    write_shards(
        {"A": root / "A", "B": root / "B"},
        root / "shards",
        ShardOptions(size=16, shard_size=20, holdout=20, progress=False),
    )
    return root / "shards"


def test_evaluate_pairs_translations_with_their_counterparts_by_name(paired_inverted):
    from pipelines.eval.offline import evaluate_trained
    from pipelines.inference.model import Trained

    engine = tiny_engine("cyclegan")
    trained = Trained(engine.gan, engine.sampling_nets(), torch.device("cpu"), "test")
    engine.gan.translate = lambda nets, images, direction: -images  # a perfect inverter
    perfect = evaluate_trained(trained, read_dataset(paired_inverted), n=100)
    assert perfect["evaluate/paired_pairs"] == 20 and perfect["evaluate/reference_images"] == 20
    assert perfect["evaluate/AtoB/paired_l1"] < 0.005 and perfect["evaluate/BtoA/paired_psnr"] > 45
    engine.gan.translate = lambda nets, images, direction: images  # leaves images untranslated
    identity = evaluate_trained(trained, read_dataset(paired_inverted), n=100)
    assert identity["evaluate/AtoB/paired_l1"] > 0.2 and identity["evaluate/AtoB/paired_psnr"] < 15
    assert {"evaluate/AtoB/swd", "evaluate/BtoA/kid_pixels", "evaluate/swd"} <= set(identity)
