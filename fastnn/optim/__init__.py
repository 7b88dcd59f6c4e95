"""fastnn.optim: optimizers whose every update is one fused kernel per parameter.

SGD (momentum, Nesterov), Adagrad, RMSprop, Adadelta, Adam (AMSGrad, AdamW) follow
``torch.optim``'s formulas and options; each step builds a parameter group's
hyperparameters once (``fastnn.AdamHyper``, ...) and calls the public update op
(``fastnn.adam_update``, ...) per parameter, which validates its arrays and dispatches to
the backend of the parameters' device, where it updates the parameter and its state IN
PLACE.  :mod:`fastnn.optim.functional` has the same updates with the hyperparameters as
keywords.  LBFGS runs SciPy's L-BFGS-B for small full-batch problems.

A training step::

    optimizer = fastnn.optim.Adam(model.parameters(), lr=1e-3)
    loss = criterion(model(x), y)
    model.backward(criterion.backward())
    optimizer.step()
    optimizer.zero_grad()
"""

from fastnn.optim import functional
from fastnn.optim.adadelta import Adadelta
from fastnn.optim.adagrad import Adagrad
from fastnn.optim.adam import Adam, AdamW
from fastnn.optim.functional import (
    adadelta_update,
    adagrad_update,
    adam_update,
    rmsprop_update,
    sgd_update,
)
from fastnn.optim.lbfgs import LBFGS
from fastnn.optim.optimizer import Optimizer
from fastnn.optim.rmsprop import RMSprop
from fastnn.optim.sgd import SGD

__all__ = [
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "adadelta_update",
    "adagrad_update",
    "adam_update",
    "functional",
    "rmsprop_update",
    "sgd_update",
]
