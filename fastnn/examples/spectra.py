"""A 1-D CNN regressing soil organic carbon from synthetic vis-NIR spectra.

The spectra (400-2500 nm, 256 bands; fastnn/examples/datasets.py) carry the carbon in a
broad darkening and in small C-H absorption bands, mixed with water, clay and iron
features, multiplicative scatter, baseline drift and noise: the situation of the course
notes' soil-spectroscopy CNNs.  Three convolution blocks (conv, batch norm, ReLU,
average pooling, which keeps band depths that max pooling would distort) extract
features, two dense layers regress; MSE on the standardised target, Adam.  Reports R^2
and RMSE (in % carbon) on a held-out 20%, next to ridge regression on the same spectra,
the linear model chemometrics starts from.

Target: test R^2 >= 0.9.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import init, nn, optim
from fastnn.examples import datasets
from fastnn.examples._training import (
    Split,
    TrainConfig,
    fit,
    predict,
    write_outputs,
)
from fastnn.nn._array import to_numpy

NAME = "spectra"
HELP = "a 1-D CNN regressing soil carbon from synthetic vis-NIR spectra (R^2, RMSE)"
DEFAULTS = {"epochs": 30, "batch_size": 32, "lr": 1e-3}
TARGET = 0.9
POINTS = 256


def build_model(rng: init.RngLike = None, dtype: Any = np.float32) -> nn.Sequential:
    """Three conv blocks on (N, 1, 256) spectra, then 1024 -> 64 -> 1."""
    rng = init.as_generator(rng)

    def block(c_in: int, c_out: int, k: int) -> list[nn.Module]:
        return [
            nn.Conv1d(c_in, c_out, k, padding=k // 2, bias=False, rng=rng, dtype=dtype),
            nn.BatchNorm1d(c_out, dtype=dtype),
            nn.ReLU(),
            nn.AvgPool1d(2),
        ]

    return nn.Sequential(
        *block(1, 8, 9),  # 8 x 128
        *block(8, 16, 7),  # 16 x 64
        *block(16, 32, 5),  # 32 x 32
        nn.Flatten(),
        nn.Linear(32 * (POINTS // 8), 64, activation="relu", rng=rng, dtype=dtype),
        nn.Linear(64, 1, rng=rng, dtype=dtype),
    )


def r2(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``."""
    residual = float(np.sum((targets - outputs) ** 2))
    total = float(np.sum((targets - targets.mean()) ** 2))
    return 1.0 - residual / total if total > 0 else np.nan


def ridge_baseline(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, penalty: float = 1.0
) -> np.ndarray:
    """Predictions of ridge regression on the (standardised) spectra: the linear model a
    chemometrician would try first, for comparison."""
    a = x_train.reshape(len(x_train), -1).astype(np.float64)
    mean = float(y_train.mean())
    weights = np.linalg.solve(a.T @ a + penalty * np.eye(a.shape[1]), a.T @ (y_train - mean))
    return x_test.reshape(len(x_test), -1) @ weights + mean


def train_regressor(
    model: nn.Module, x_train, z_train, x_test, z_test, config: TrainConfig
) -> tuple[Any, np.ndarray]:
    """Fit ``model`` (on ``config.device``) to the standardised targets: MSE, Adam with a
    cosine schedule, R^2 per epoch.  Returns the history and the test outputs (numpy)."""
    test = Split(x_test, z_test).to(config.device)
    history = fit(
        model,
        nn.MSELoss(),
        optim.Adam(model.parameters(), lr=config.lr),
        Split(x_train, z_train).to(config.device),
        test,
        config,
        ("R^2", r2),
        cosine=True,
    )
    return history, to_numpy(predict(model, test.x, 256))


def run(config: TrainConfig) -> dict[str, Any]:
    """Generate spectra, train, report R^2 and RMSE on the held-out split."""
    _, spectra, carbon = datasets.soil_spectra(2000, config.rng(1), points=POINTS)
    (x_train, y_train), (x_test, y_test) = datasets.split(
        spectra, carbon, 0.2, config.rng(3), config.subset
    )
    x_train, x_test = datasets.standardize(x_train, x_test)  # per wavelength
    mean, std = float(y_train.mean()), float(y_train.std())
    z_train, z_test = ((y - mean) / std for y in (y_train, y_test))
    config.log(
        f"synthetic vis-NIR spectra: {len(x_train)} training and {len(x_test)} test soils, "
        f"{POINTS} bands; organic carbon {y_train.min():.2f}-{y_train.max():.2f} %"
    )
    model = build_model(config.rng(0)).to(config.device)
    history, outputs = train_regressor(model, x_train, z_train, x_test, z_test, config)
    predicted = outputs * std + mean
    rmse = float(np.sqrt(np.mean((predicted - y_test) ** 2)))
    score = r2(predicted, y_test)
    baseline = ridge_baseline(x_train, y_train, x_test)
    baseline_rmse = float(np.sqrt(np.mean((baseline - y_test) ** 2)))
    config.log(f"held-out soils: R^2 = {score:.4f}, RMSE = {rmse:.3f} % organic carbon")
    config.log(
        f"ridge regression on the same spectra: R^2 = {r2(baseline, y_test):.4f}, "
        f"RMSE = {baseline_rmse:.3f} %"
    )
    summary = {
        "example": NAME,
        "test_r2": round(score, 4),
        "test_rmse_percent_carbon": round(rmse, 4),
        "ridge_baseline_r2": round(r2(baseline, y_test), 4),
        "ridge_baseline_rmse": round(baseline_rmse, 4),
        "target": f"test R^2 >= {TARGET}",
        "reached": bool(score >= TARGET),
    }
    return write_outputs(NAME, model, history, summary, config, "1-D CNN on vis-NIR spectra")
