"""Metrics: FID agrees with the reference sqrtm formula, KID is unbiased, and SWD and KID
order real-vs-real < real-vs-blurred < real-vs-noise on real images."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from gan_core.metrics import (
    PixelFeatures,
    feature_statistics,
    frechet_distance,
    kernel_distance,
    sliced_wasserstein_distance,
)
from pipelines.core.tensors import from_uint8
from pipelines.data.loader import RankBatches, StreamSpec
from pipelines.data.manifest import read_dataset


def _gaussian(n, d, seed, shift=0.0, scale=1.0):
    """n samples of one correlated Gaussian per (d, shift, scale); ``seed`` picks the sample."""
    mix = np.random.default_rng(1234).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mix * scale + shift


def _scipy_fid(mu1, s1, mu2, s2):
    """The formula as pytorch-fid / the TTUR code compute it."""
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_of_a_set_with_itself_is_zero():
    stats = feature_statistics(_gaussian(500, 32, 0))
    assert abs(frechet_distance(*stats, *stats)) < 1e-6


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.3, 1.0), (0.0, 1.5), (0.5, 0.7)])
def test_fid_matches_the_scipy_sqrtm_formula(shift, scale):
    a = feature_statistics(_gaussian(800, 48, 1))
    b = feature_statistics(_gaussian(800, 48, 2, shift, scale))
    assert frechet_distance(*a, *b) == pytest.approx(_scipy_fid(*a, *b), rel=1e-6, abs=1e-8)


def test_fid_of_a_mean_shift_is_its_squared_length():
    x = _gaussian(400, 16, 3)
    mu, sigma = feature_statistics(x)
    assert frechet_distance(mu, sigma, mu + 0.5, sigma) == pytest.approx(16 * 0.25)


def test_kid_is_unbiased_and_detects_a_difference():
    same_mean, same_std = kernel_distance(_gaussian(2000, 32, 4), _gaussian(2000, 32, 5), subsets=50, subset_size=500)
    assert abs(same_mean) < 3 * same_std / np.sqrt(50) + 1e-4  # zero within its standard error
    diff_mean, _ = kernel_distance(
        _gaussian(2000, 32, 4), _gaussian(2000, 32, 6, shift=0.5), subsets=50, subset_size=500
    )
    assert diff_mean > 100 * abs(same_mean) and diff_mean > 0.01


def test_distances_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="different dimensions"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_swd_and_kid_rank_real_below_blurred_below_noise(digit_shards):
    ds = read_dataset(digit_shards)
    images = from_uint8(
        next(
            iter(
                RankBatches(
                    ds.domain("image"), StreamSpec(mode="exact", loader_workers=0), ds.resolution, ds.channels, 1600
                ).epoch(0)
            )
        )["images"]
    )
    real_a, real_b = images[:800], images[800:]
    blurred = F.avg_pool2d(F.pad(real_b, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    noise = torch.rand_like(real_b) * 2 - 1
    others = [("real", real_b), ("blurred", blurred), ("noise", noise)]
    swd = {name: sliced_wasserstein_distance(real_a, other)["swd"] for name, other in others}
    assert swd["real"] < swd["blurred"] < swd["noise"], swd
    features = PixelFeatures()
    kid = {
        name: kernel_distance(features(real_a).double(), features(other).double(), subsets=50, subset_size=500)[0]
        for name, other in others
    }
    assert kid["real"] < kid["blurred"] < kid["noise"], kid


def _digit_images(digit_shards, n=600):
    ds = read_dataset(digit_shards)
    batch = next(
        iter(
            RankBatches(
                ds.domain("image"), StreamSpec(mode="exact", loader_workers=0), ds.resolution, ds.channels, n
            ).epoch(0)
        )
    )
    return from_uint8(batch["images"])


def test_without_weights_the_suite_reports_weights_free_metrics_under_their_own_names(digit_shards, monkeypatch):
    import gan_core.metrics.suite as suite_module
    from gan_core.metrics.inception import WEIGHTS_ENV

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(suite_module, "_warned", False)
    with pytest.warns(UserWarning, match="no FID Inception weights"):
        suite = suite_module.make_suite()
    images = _digit_images(digit_shards)
    real, other = images[:300], images[300:]
    noise = torch.rand_like(other) * 2 - 1
    same = suite.compare(suite.features(real), suite.features(other), real, other)
    far = suite.compare(suite.features(real), suite.features(noise), real, noise)
    assert set(same) == {"swd", "kid_pixels", "kid_pixels_std", "diversity"}  # no fid_* without Inception
    assert same["kid_pixels"] < far["kid_pixels"] and same["swd"] < far["swd"]
    collapsed = other[:1].expand_as(other)  # one image, over and over: mode collapse
    spread = suite.compare(suite.features(real), suite.features(collapsed), real, collapsed)["diversity"]
    assert 0.8 < same["diversity"] < 1.25 and spread < 1e-6


def test_with_weights_the_suite_reports_fid_and_kid_on_inception(tmp_path):
    from gan_core.metrics.inception import FIDInceptionV3
    from gan_core.metrics.suite import make_suite

    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), tmp_path / "w.pth")
    suite = make_suite(str(tmp_path / "w.pth"))
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    result = suite.compare(suite.features(images), suite.features(images), images, images)
    assert {"fid_inception", "kid_inception", "swd"} <= set(result)
    assert abs(result["fid_inception"]) < 1e-3  # a set against itself
