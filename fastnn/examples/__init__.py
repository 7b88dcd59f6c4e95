"""Example training runs behind ``fastnn train NAME``.

Each module defines ``NAME``, ``HELP``, ``DEFAULTS`` (epochs, batch size, learning rate),
``build_model(rng, dtype)`` and ``run(config) -> summary``, and writes its learning curves
(PNG), history (JSON) and trained weights (.npz) into ``config.out``:

- ``lenet``: LeNet-5 on scikit-learn's digits, 32x32 (>= 97% test accuracy);
- ``mlp``: the course notes' two-class XOR perceptron, backprop checked by hand;
- ``logreg``: logistic regression with binary cross-entropy, SGD and L-BFGS;
- ``spectra``: a 1-D CNN regressing soil carbon from synthetic vis-NIR spectra;
- ``resnet``: a small ResNet with batch norm on the digits;
- ``pinn``: a physics-informed MLP solving the damped oscillator (fastnn.torch, double
  backward), and with ``inverse=True`` estimating its damping;
- ``spectrogram``: a 2-D CNN on spectrograms of the same spectra, against the 1-D CNN.

An example may take options of its own: ``OPTIONS`` (keyword arguments of ``run`` and
their defaults) and ``add_arguments(group)``, which adds them to ``fastnn train``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: example name -> module
EXAMPLES = {
    "lenet": "fastnn.examples.lenet",
    "mlp": "fastnn.examples.mlp",
    "logreg": "fastnn.examples.logreg",
    "spectra": "fastnn.examples.spectra",
    "resnet": "fastnn.examples.resnet",
    "pinn": "fastnn.examples.pinn",
    "spectrogram": "fastnn.examples.spectrogram",
}


def load(name: str) -> ModuleType:
    """The example module called ``name``."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    return importlib.import_module(EXAMPLES[name])
