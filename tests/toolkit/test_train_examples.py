"""Each ``fastnn train`` example runs a tiny configuration end to end (one epoch on a
subset), writes its figure, history and weights, and the CLI reports errors clearly."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from fastnn import examples
from fastnn.__main__ import main
from fastnn.examples import datasets
from fastnn.examples._training import TrainConfig


def _config(tmp_path, name, **overrides):
    defaults = dict(examples.load(name).DEFAULTS)
    defaults.update(epochs=1, batch_size=16)
    defaults.update(overrides)
    return TrainConfig(**defaults, out=tmp_path, subset=48, progress=False, log=lambda _: None)


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_example_smoke_run(tmp_path, name):
    summary = examples.load(name).run(_config(tmp_path, name))
    assert summary["example"] == name
    assert isinstance(summary["reached"], bool)
    for key in ("figure", "weights", "history"):
        assert (tmp_path / summary[key].split("/")[-1]).stat().st_size > 0, key
    record = json.loads((tmp_path / f"{name}_history.json").read_text())
    assert record["history"]["epochs"] == [1]
    assert np.isfinite(record["history"]["train_loss"][0])
    model = examples.load(name).build_model(0)
    model.load(tmp_path / f"{name}.npz")  # the saved weights fit the architecture


def test_mlp_backprop_by_hand_agrees():
    from fastnn.examples import mlp

    model = mlp.build_model(1)
    x, t = datasets.xor_clusters(4, np.random.default_rng(0))
    for sample, target in zip(x, t):
        assert mlp.check_backprop(model, sample, target) < 1e-12


def test_logreg_reaches_the_bayes_classifier(tmp_path):
    from fastnn.examples import logreg

    config = _config(tmp_path, "logreg", epochs=3, batch_size=32)
    config.subset = None
    summary = logreg.run(config)
    assert summary["reached"], summary
    np.testing.assert_allclose(summary["weights_lbfgs"], summary["weights_bayes"], atol=0.35)


def test_datasets_shapes_and_splits():
    images, labels = datasets.digits(32, border=4)
    assert images.shape == (1797, 1, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and labels.max() == 9
    assert not images[:, :, :4].any() and not images[:, :, :, -4:].any()  # the padding
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = datasets.split(images, labels, 0.2, rng)
    assert len(x_train) + len(x_test) == 1797
    for label in range(10):  # stratified
        assert abs(np.mean(y_test == label) - np.mean(labels == label)) < 0.01
    wavelength, spectra, carbon = datasets.soil_spectra(50, rng, points=64)
    assert spectra.shape == (50, 1, 64) and carbon.shape == (50, 1)
    assert datasets.digits(16)[0].shape == (1797, 1, 16, 16)
    with pytest.raises(ValueError, match="multiple of 8"):
        datasets.digits(30)
    assert wavelength[0] == 400 and wavelength[-1] == 2500 and np.all(carbon > 0)


def test_cli_trains_and_writes_files(tmp_path, capsys):
    code = main(
        ["train", "mlp", "--epochs", "1", "--subset", "32", "--out", str(tmp_path), "--no-progress"]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    assert "epoch   1/1" in output and "test_accuracy" in output
    assert (tmp_path / "mlp_curves.png").exists()


def test_cli_cuda_without_gpu_fails_clearly(tmp_path, capsys):
    import fastnn

    if fastnn.backends()["cupy"][0]:
        pytest.skip("a GPU with CuPy is available here")
    code = main(["train", "logreg", "--device", "cuda", "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "cannot use device 'cuda'" in capsys.readouterr().err


def test_cli_without_scikit_learn_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes "import sklearn" fail
    code = main(["train", "lenet", "--epochs", "1", "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "scikit-learn" in capsys.readouterr().err


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["train", "vgg"])
    with pytest.raises(SystemExit):
        main(["train", "mlp", "--epochs", "0"])
