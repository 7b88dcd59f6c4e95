"""Data for the examples: scikit-learn's bundled digits, and generated data sets.

Everything is offline.  The digits (1797 8x8 images, 10 classes) ship with scikit-learn,
imported only here and only when a digits example runs.  The others are generated from a
seeded numpy Generator: the XOR clusters of the course notes' two-class MLP, two Gaussian
classes for logistic regression, and synthetic vis-NIR soil spectra.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

__all__ = [
    "digits",
    "gaussian_classes",
    "soil_spectra",
    "split",
    "standardize",
    "xor_clusters",
]


_MISSING_SKLEARN = (
    "the digits examples need scikit-learn's bundled digits, and scikit-learn is not "
    "installed: pip install 'fastnn[train]' (or pip install scikit-learn)"
)


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) images with values 0..16 and their labels, from scikit-learn.

    The CSV file that scikit-learn ships is read directly when it is where scikit-learn
    keeps it (importing scikit-learn itself takes seconds); otherwise
    ``sklearn.datasets.load_digits`` provides it.
    """
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise RuntimeError(_MISSING_SKLEARN)
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
        return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RuntimeError(_MISSING_SKLEARN) from None
    data = load_digits()
    return data.images, data.target


def digits(size: int, border: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (N, 1, size, size) float32 images in [0, 1] and int64 labels.

    The 8x8 images are enlarged by bilinear interpolation to ``size - 2 * border`` pixels
    (a multiple of 8) and framed by ``border`` zero pixels: LeNet-5 takes
    ``digits(32, border=4)``, 24x24 digits in a 32x32 frame, as it took MNIST's 28x28
    digits with a 2-pixel border.
    """
    from scipy import ndimage

    inner = size - 2 * border
    if inner < 8 or inner % 8:
        raise ValueError(f"digits: size - 2 * border must be a multiple of 8, got {inner}")
    images, labels = _load_digits()
    images = images / 16.0
    if inner > 8:
        zoom = inner // 8
        images = ndimage.zoom(images, (1, zoom, zoom), order=1, mode="nearest")
    images = np.pad(np.clip(images, 0.0, 1.0), ((0, 0), (border, border), (border, border)))
    return images[:, None].astype(np.float32), labels


def split(
    x: np.ndarray,
    y: np.ndarray,
    test_fraction: float,
    rng: np.random.Generator,
    limit: int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A shuffled train/test split; classes (integer ``y``) keep their proportions.  With
    ``limit``, each part keeps only its first ``limit`` rows (quick smoke runs)."""
    if y.dtype.kind in "iu":
        test = np.concatenate(
            [
                rng.permutation(np.flatnonzero(y == label))[
                    : round(test_fraction * np.sum(y == label))
                ]
                for label in np.unique(y)
            ]
        )
    else:
        test = rng.permutation(len(y))[: round(test_fraction * len(y))]
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    train_index = rng.permutation(np.flatnonzero(~is_test))
    test_index = rng.permutation(test)[:limit]
    train_index = train_index[:limit]
    return (x[train_index], y[train_index]), (x[test_index], y[test_index])


def standardize(train: np.ndarray, *others: np.ndarray, axis=0) -> list[np.ndarray]:
    """Centre and scale by the training split's mean and standard deviation."""
    mean = train.mean(axis=axis, keepdims=True)
    std = train.std(axis=axis, keepdims=True) + 1e-8
    return [((a - mean) / std).astype(a.dtype) for a in (train, *others)]


def xor_clusters(n: int, rng: np.random.Generator, noise: float = 0.15):
    """Points around the four corners of the unit square; class 1 where exactly one
    coordinate is near 1 (XOR).  Returns (N, 2) float32 inputs and (N, 1) float32 targets."""
    corners = rng.integers(0, 2, size=(n, 2))
    x = corners + noise * rng.standard_normal((n, 2))
    t = (corners[:, 0] ^ corners[:, 1]).astype(np.float32)[:, None]
    return x.astype(np.float32), t


def gaussian_classes(n: int, rng: np.random.Generator):
    """Two classes in 2-D with the same covariance: the setting where logistic regression
    is exactly right.  Returns (x, t, (w, b)) where ``(w, b)`` are the optimal (Bayes)
    logistic-regression weights ``w = S^-1 (mu1 - mu0)`` and
    ``b = (mu0' S^-1 mu0 - mu1' S^-1 mu1) / 2`` for equal priors."""
    mu0, mu1 = np.array([-1.0, 0.5]), np.array([1.0, -0.5])
    cov = np.array([[1.0, 0.6], [0.6, 1.5]])
    labels = rng.integers(0, 2, n)
    noise = rng.multivariate_normal(np.zeros(2), cov, n)
    x = np.where(labels[:, None] == 1, mu1, mu0) + noise
    inverse = np.linalg.inv(cov)
    w = inverse @ (mu1 - mu0)
    b = 0.5 * (mu0 @ inverse @ mu0 - mu1 @ inverse @ mu1)
    return x.astype(np.float32), labels.astype(np.float32)[:, None], (w, b)


def _band(wavelength: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((wavelength - centre) / width) ** 2)


def soil_spectra(n: int, rng: np.random.Generator, points: int = 256, noise: float = 0.003):
    """Synthetic vis-NIR absorbance spectra of soils and their organic carbon content.

    Each soil has organic carbon (SOC, %, log-normal), clay, moisture and iron oxides.
    Its reflectance is a bright soil curve rising through the visible, darkened by organic
    matter (saturating with SOC, most in the visible, and less under a water film), with
    absorption bands of water (1450, 1940 nm, shifting from soil to soil), clay (Al-OH at
    2205 nm), organic matter (C-H at 1725, 2310, 2350 nm, growing like sqrt(SOC)) and iron
    oxides (480, 900 nm).  The absorbance ``log10(1 / R)`` then gets what measurements
    add: multiplicative, wavelength-dependent scatter, a baseline drift (offset, slope,
    curvature) and white noise.  The saturation, the interactions and the scatter make the
    carbon a nonlinear function of the spectrum.

    Returns (wavelengths (L,), spectra (N, 1, L) float32, SOC (N, 1) float32).
    """
    wavelength = np.linspace(400.0, 2500.0, points)
    soc = np.clip(rng.lognormal(np.log(1.5), 0.5, (n, 1)), 0.1, 8.0)
    clay = rng.uniform(5.0, 60.0, (n, 1))
    moisture = rng.uniform(0.0, 25.0, (n, 1))
    iron = rng.uniform(0.5, 6.0, (n, 1))
    base = 0.12 + 0.38 / (1.0 + np.exp(-(wavelength - 700.0) / 150.0))
    relative = (wavelength - 400.0) / 2100.0
    darkening = (1.0 - 0.6 * (1.0 - np.exp(-soc / 1.5)) * (1.1 - 0.6 * relative)) ** (
        1.0 - moisture / 40.0
    )
    shift = rng.normal(0.0, 12.0, (n, 1))
    water = _band(wavelength, 1450 + shift, 40) + 1.6 * _band(wavelength, 1940 + shift, 50)
    absorption = (
        0.010 * moisture * water
        + 0.004 * clay * (_band(wavelength, 2205, 25) + 0.5 * _band(wavelength, 1410, 20))
        + 0.12 * np.sqrt(soc) * (_band(wavelength, 1725, 30) + _band(wavelength, 2310, 35))
        + 0.06 * np.sqrt(soc) * _band(wavelength, 2350, 30)
        + 0.030 * iron * (_band(wavelength, 480, 60) + _band(wavelength, 900, 90))
    )
    absorbance = -np.log10(base * darkening * np.exp(-absorption))
    centred = relative - 0.5
    scatter = rng.normal(1.0, 0.08, (n, 1)) * (wavelength / 1450.0) ** rng.normal(0.0, 0.15, (n, 1))
    drift = (
        rng.normal(0.0, 0.05, (n, 1))
        + rng.normal(0.0, 0.05, (n, 1)) * centred
        + rng.normal(0.0, 0.03, (n, 1)) * centred**2
    )
    spectra = absorbance * scatter + drift + rng.normal(0.0, noise, (n, points))
    return wavelength, spectra[:, None, :].astype(np.float32), soc.astype(np.float32)
