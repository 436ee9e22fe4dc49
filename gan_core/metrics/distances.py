"""Distances between two sets of features: the Frechet distance (FID when the features are
Inception pool features) and the kernel inception distance (KID, Binkowski et al. 2018).

Both work in float64 numpy: FID on 2048-d features subtracts large, nearly equal traces,
and float32 loses the digits that separate good models."""

from __future__ import annotations

import numpy as np
import torch


def _as_numpy(features: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {features.shape}")
    return features


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance, the form in which FID reference statistics are stored."""
    x = _as_numpy(features)
    if x.shape[0] < 2:
        raise ValueError("feature statistics need at least 2 samples")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Tr((S1 S2)^(1/2)) is computed as Tr((S1^(1/2) S2 S1^(1/2))^(1/2)): the inner matrix is
    symmetric positive semi-definite, so its square root comes from an eigendecomposition
    and never turns complex the way a general ``sqrtm`` of S1 S2 can on rank-deficient
    covariances (fewer samples than dimensions)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two sets of statistics have different dimensions")
    root1 = _sqrtm_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def kernel_distance(
    real: torch.Tensor | np.ndarray,
    fake: torch.Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
    averaged over random subsets; returns (mean, std over subsets). Unbiased: its expected
    value is 0 for two samples of one distribution, so it can come out slightly negative."""
    x, y = _as_numpy(real), _as_numpy(fake)
    if x.shape[1] != y.shape[1]:
        raise ValueError("the two feature sets have different dimensions")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    estimates = np.empty(subsets)
    for i in range(subsets):
        a = x[rng.choice(x.shape[0], m, replace=False)]
        b = y[rng.choice(y.shape[0], m, replace=False)]
        k_aa = (a @ a.T / d + 1) ** 3
        k_bb = (b @ b.T / d + 1) ** 3
        k_ab = (a @ b.T / d + 1) ** 3
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        estimates[i] = within - 2 * k_ab.mean()
    return float(estimates.mean()), float(estimates.std())


def mean_pairwise_distance(features: torch.Tensor | np.ndarray, max_rows: int = 512) -> float:
    """The average Euclidean distance between two samples of a set: its spread. A generator
    that has collapsed onto a few modes has a far smaller spread than the data."""
    x = torch.as_tensor(_as_numpy(features)[:max_rows])
    if x.shape[0] < 2:
        raise ValueError("a spread needs at least 2 samples")
    distances = torch.cdist(x, x)
    n = x.shape[0]
    return float(distances.sum() / (n * (n - 1)))  # the diagonal is 0
