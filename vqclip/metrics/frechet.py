"""The Fréchet distance between two Gaussians fitted to feature sets (FID/FVD), in float64.

Heusel et al. 2017 (FID) and Unterthiner et al. 2018 (FVD, paper 002's video metric):
d² = |mu1 - mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½), with the matrix square root from scipy.linalg.sqrtm.
"""

from __future__ import annotations

import numpy as np

from vqclip.errors import ConfigError, ModelError

__all__ = ["feature_stats", "frechet_distance", "frechet_distance_of"]


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of an (N, D) feature array in float64 (covariance with N-1, as numpy's cov)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ConfigError(f"features: shape {feats.shape} is not usable; need (N, D) with N >= 2 samples")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64."""
    try:
        import scipy.linalg
    except ImportError as exc:
        raise ModelError("FVD needs scipy (its matrix square root); install it with `pip install 'vqclip[metrics]'`") from exc

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ConfigError(f"frechet_distance: shapes do not match (mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape})")
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # singular product (few samples, D > N): nudge both diagonals, as the FID reference code does
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # round-off gives tiny imaginary parts; large ones mean the statistics are broken, not noisy
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, np.abs(covmean).max())):
            raise ValueError(f"frechet_distance: sqrt(S1 S2) has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)  # a set against itself can land at -1e-12 from round-off


def frechet_distance_of(features_a, features_b) -> float:
    """Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))
