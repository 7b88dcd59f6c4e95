"""The ``pinn`` and ``spectrogram`` examples: their pieces checked against independent
computations, tiny end-to-end runs (files written, values sane) and their CLI options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastnn.__main__ import main
from fastnn.examples import pinn, spectrogram
from fastnn.examples._training import TrainConfig

torch = pytest.importorskip("torch")


def _config(tmp_path, epochs=2, batch_size=16, subset=None):
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=1e-3,
        out=tmp_path,
        subset=subset,
        progress=False,
        log=lambda _: None,
    )


# ---------------------------------------------------------------------------- pinn


def test_exact_solution_solves_the_oscillator():
    case = pinn.CASE
    t = np.linspace(0.0, 1.0, 20001)
    h = t[1] - t[0]
    x = pinn.exact(t, **case)
    dx = np.gradient(x, h, edge_order=2)
    ddx = np.gradient(dx, h, edge_order=2)
    residual = ddx + case["gamma"] * dx + case["omega"] ** 2 * x
    assert np.max(np.abs(residual[5:-5])) < 1e-2 * case["omega"] ** 2
    assert x[0] == pytest.approx(case["x0"])
    assert dx[0] == pytest.approx(case["v0"], abs=1e-3)
    with pytest.raises(ValueError, match="gamma < 2 omega"):
        pinn.exact(t, 1.0, 0.0, 50.0, 20.0)


@pytest.mark.parametrize("inverse", [False, True])
def test_pinn_gradients_equal_plain_torch(inverse):
    """The loss's parameter gradients (third derivatives through linear + tanh) agree
    between the fastnn.torch backend and torch.nn.functional in float64."""
    grads = {}
    for backend in pinn.BACKENDS:
        model = pinn.build_model(3, np.float64, backend)
        t = torch.rand(37, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        problem = pinn.Problem(model, t.requires_grad_(True), 20.0, 4.0)
        if inverse:
            problem.log_gamma = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
            t_obs = torch.linspace(0, 1, 9, dtype=torch.float64).reshape(-1, 1)
            problem.observations = (t_obs, torch.cos(5 * t_obs))
        problem.loss().backward()
        params = list(model.parameters()) + ([problem.log_gamma] if inverse else [])
        grads[backend] = [p.grad.clone() for p in params]
    for ours, theirs in zip(grads["fastnn"], grads["torch"]):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_pinn_forward_run_writes_files(tmp_path):
    summary = pinn.run(_config(tmp_path, epochs=30), lbfgs=5)
    assert summary["problem"] == "forward" and summary["backend"] == "fastnn"
    for key in ("figure", "weights", "history"):
        assert (tmp_path / summary[key].split("/")[-1]).stat().st_size > 0, key
    record = json.loads((tmp_path / "pinn_history.json").read_text())
    history = record["history"]
    assert history["epochs"][0] == 1 and history["epochs"][-1] == 30
    assert 1 <= len(history["lbfgs"]["epochs"]) and history["lbfgs"]["epochs"][0] > 30
    error = record["summary"]["max_abs_error"]
    assert 0 < error < 3 and error == pytest.approx(history["lbfgs"]["max_abs_error"][-1], 1e-4)
    assert history["train_loss"][-1] < history["train_loss"][0]  # Adam lowered the loss
    steps = record["summary"]["seconds_per_step"]
    assert set(steps) == {"fastnn", "torch"} and all(0 < v < 10 for v in steps.values())
    reloaded = pinn.build_model(0).load(tmp_path / "pinn.npz")
    grid = torch.linspace(0, 1, 11, dtype=torch.float64).reshape(-1, 1)
    assert torch.isfinite(reloaded(grid)).all()


def test_pinn_inverse_run_reports_gamma(tmp_path):
    summary = pinn.run(_config(tmp_path, epochs=40), inverse=True, backend="torch", lbfgs=0)
    record = json.loads((tmp_path / "pinn_history.json").read_text())
    estimate = record["summary"]["gamma_estimate"]
    assert estimate == summary["gamma_estimate"] and np.isfinite(estimate) and estimate > 0
    assert estimate != 1.0  # it was trained (it starts at 1)
    assert record["summary"]["gamma_relative_error"] == pytest.approx(abs(estimate - 4) / 4, 1e-3)
    assert record["history"]["gamma"][-1] == pytest.approx(estimate, 1e-4)
    assert record["history"]["lbfgs"]["epochs"] == []
    assert "train_data" in record["history"] and "train_initial" not in record["history"]


def test_pinn_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="backend"):
        pinn.run(_config(tmp_path), backend="jax")
    with pytest.raises(ValueError, match="lbfgs"):
        pinn.run(_config(tmp_path), lbfgs=-1)
    config = _config(tmp_path)
    config.device = "cuda"
    with pytest.raises(RuntimeError, match="CPU only"):
        pinn.run(config)


# --------------------------------------------------------------------- spectrogram


def test_spectrograms_match_a_direct_fft():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 100)).astype(np.float32)
    segment, overlap = 20, 0.5
    images = spectrogram.spectrograms(x, "hamming", segment, overlap)
    hop = segment - round(overlap * segment)
    frames = (100 - segment) // hop + 1
    assert images.shape == (3, 1, segment // 2 + 1, frames)
    assert spectrogram.image_shape(segment, overlap, 100) == images.shape[2:]
    window = np.hamming(segment + 1)[:-1]  # scipy's periodic Hamming window
    for n in (0, 2):
        for f in (0, frames - 1):
            piece = x[n, 0, f * hop : f * hop + segment].astype(np.float64)
            magnitude = np.abs(np.fft.rfft(piece * window)) / window.sum()
            np.testing.assert_allclose(images[n, 0, :, f], np.log10(magnitude + 1e-6), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"segment": 2}, ValueError, "segment"),
        ({"segment": 300}, ValueError, "segment"),
        ({"segment": 16.0}, TypeError, "segment"),
        ({"overlap": 1.0}, ValueError, "overlap"),
        ({"overlap": -0.1}, ValueError, "overlap"),
        ({"window": "no-such-window"}, ValueError, "window"),
        ({"window": 3}, TypeError, "window"),
    ],
)
def test_spectrograms_validate_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        spectrogram.spectrograms(np.zeros((2, 1, 256), np.float32), **kwargs)


def test_spectrograms_reject_bad_input():
    with pytest.raises(ValueError, match=r"\(N, 1, L\)"):
        spectrogram.spectrograms(np.zeros((2, 256), np.float32))


def test_spectrogram_run_reports_all_three_models(tmp_path):
    options = {"window": "hamming", "segment": 16, "overlap": 0.5}
    summary = spectrogram.run(_config(tmp_path, subset=40), **options)
    record = json.loads((tmp_path / "spectrogram_history.json").read_text())
    shape = tuple(record["summary"]["spectrogram"]["shape"])
    assert shape == (9, 31) and record["summary"]["spectrogram"]["window"] == "hamming"
    for key in ("test_r2", "cnn1d_baseline_r2", "ridge_baseline_r2"):
        assert np.isfinite(summary[key]) and summary[key] <= 1, key
    scores = {
        "cnn2d": summary["test_r2"],
        "cnn1d": summary["cnn1d_baseline_r2"],
        "ridge": summary["ridge_baseline_r2"],
    }
    assert summary["best_model"] == max(scores, key=scores.get)
    versus = summary["cnn2d_vs_cnn1d"]
    assert versus["r2_difference"] == pytest.approx(scores["cnn2d"] - scores["cnn1d"], abs=2e-4)
    ratio = summary["test_rmse_percent_carbon"] / summary["cnn1d_baseline_rmse"]
    assert versus["rmse_ratio"] == pytest.approx(ratio, rel=1e-2)
    assert record["history"]["epochs"] == [1, 2] == record["history_cnn1d"]["epochs"]
    for key in ("figure", "examples_figure", "weights"):
        assert (tmp_path / summary[key].split("/")[-1]).stat().st_size > 0, key
    spectrogram.build_model(0, shape=shape).load(tmp_path / "spectrogram.npz")


# ---------------------------------------------------------------------------- CLI


def test_cli_pinn_options(tmp_path, capsys):
    argv = ["train", "pinn", "--epochs", "5", "--batch-size", "16", "--lbfgs", "0"]
    argv += ["--backend", "torch", "--inverse", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    output = capsys.readouterr().out
    assert "gamma_estimate" in output and "inverse problem" in output
    assert (tmp_path / "pinn_curves.png").exists()


def test_cli_rejects_options_of_another_example(tmp_path, capsys):
    assert main(["train", "mlp", "--inverse", "--out", str(tmp_path)]) == 2
    assert "--inverse is an option of pinn" in capsys.readouterr().err
    assert main(["train", "pinn", "--window", "hann", "--out", str(tmp_path)]) == 2
    assert "--window is an option of spectrogram" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "pinn", "--lbfgs", "-1"])
    with pytest.raises(SystemExit):
        main(["train", "pinn", "--backend", "jax"])


@pytest.mark.parametrize(
    "option, value", [("--window", "nope"), ("--segment", "2"), ("--overlap", "1.5")]
)
def test_cli_checks_spectrogram_options(option, value, capsys):
    with pytest.raises(SystemExit):
        main(["train", "spectrogram", option, value])
    assert option.lstrip("-") in capsys.readouterr().err
