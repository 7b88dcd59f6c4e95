"""The walk behind every backend's ``mlp_backward``: BP3/BP4 at each dense layer, then BP2
to step back one layer, from the last layer to the first.  A backend passes its own
``dense_grads`` and BP2 step; this module registers nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def walk_layers(
    inputs: Sequence[Any],
    preacts: Sequence[Any],
    weights: Sequence[Any],
    delta_out: Any,
    activations: Sequence[str | None],
    dense_grads: Callable[[Any, Any], tuple[Any, Any]],
    step_back: Callable[[Any, Any, Any, str | None], Any],
) -> list[tuple[Any, Any]]:
    """``[(grad_weight_i, grad_bias_i) for each layer]`` in forward order.

    ``dense_grads(delta, x)`` gives layer ``m``'s gradients from its sensitivity and input;
    ``step_back(delta, w, u, activation)`` gives ``f'(u) * (delta @ w)``, the sensitivity
    of the layer before.
    """
    grads: list[Any] = [None] * len(weights)
    delta = delta_out
    for m in range(len(weights) - 1, -1, -1):
        grads[m] = dense_grads(delta, inputs[m])
        if m > 0:
            delta = step_back(delta, weights[m], preacts[m - 1], activations[m - 1])
    return grads
