"""``fastnn.tune``: measure and persist the algorithm choices of a whole model ahead of time,
and ``fastnn tune NAME``'s pre-warming from the shape tables of fastnn.net_shapes.

With autotuning on (the default), each convolution shape pays for its measurement on its
first call, in every process until the cache file holds it.  :func:`tune` makes that
first call deliberately -- one forward (and backward) pass of a model on example inputs
-- so that the real run, and every later process, pays nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastnn import _autotune

__all__ = ["TuneReport", "tune", "tune_network"]


@dataclass
class TuneReport:
    """What :func:`tune` did: ``choices`` maps every decision key met to its choice,
    ``measured`` counts the keys that were timed now (the rest were already cached),
    ``seconds`` is the wall time of the whole run and ``tuning_seconds`` the part spent
    measuring; ``result`` is what the callable returned."""

    choices: dict[str, str] = field(default_factory=dict)
    measured: int = 0
    seconds: float = 0.0
    tuning_seconds: float = 0.0
    result: Any = None

    def __str__(self) -> str:
        return (
            f"fastnn.tune: {len(self.choices)} choices ({self.measured} measured now, "
            f"{len(self.choices) - self.measured} from the cache) in {self.seconds:.2f} s"
        )


def tune(fn: Callable[..., Any], *example_inputs: Any, backward: bool = True) -> TuneReport:
    """Run ``fn(*example_inputs)`` once with autotuning on and persist what it chose.

    ``fn`` is any callable that runs fastnn ops: a function, a ``fastnn.nn`` model or a
    torch module patched by ``fastnn.torch.patch``.  With ``backward`` (the default), a
    model is also run backward once with a gradient of ones, so that the gradient passes
    are tuned too; the parameters' gradients are left as they were.  The choices go to
    the autotune cache (``fastnn.autotune``'s ``cache``), so a later process pays nothing.
    """
    if not callable(fn):
        raise TypeError(f"tune: fn must be callable, got {type(fn).__name__}")
    was_enabled = _autotune.autotune_enabled()
    start = time.perf_counter()
    _autotune._state["enabled"] = True
    try:
        with _autotune.recording() as record:
            result = fn(*example_inputs)
            if backward:
                _run_backward(fn, result)
    finally:
        _autotune._state["enabled"] = was_enabled
    return TuneReport(
        choices=dict(record.choices),
        measured=len(record.timed),
        seconds=time.perf_counter() - start,
        tuning_seconds=record.seconds,
        result=result,
    )


def _run_backward(model: Any, output: Any) -> None:
    """One backward pass of a fastnn.nn or torch model with a gradient of ones, leaving
    its parameters' gradients as they were; nothing for other callables."""
    from fastnn.nn.module import Module

    if isinstance(model, Module):
        saved = [(p, None if p.grad is None else p.grad.copy()) for p in model.parameters()]
        model.backward(np.ones_like(output))
        for p, grad in saved:
            p.grad = grad
        return
    torch_module = _torch_module_type()
    if torch_module is not None and isinstance(model, torch_module):
        if getattr(output, "requires_grad", False):
            params = list(model.parameters())
            saved = [None if p.grad is None else p.grad.clone() for p in params]
            output.backward(output.new_ones(output.shape))
            for p, grad in zip(params, saved):
                p.grad = grad


def _torch_module_type():
    import sys

    torch = sys.modules.get("torch")  # only if the caller uses torch: never import it here
    return None if torch is None else torch.nn.Module


def tune_network(
    name: str,
    batch: int | None = None,
    dtype: Any = np.float32,
    progress: Callable[[str, dict[str, str], float], None] | None = None,
) -> TuneReport:
    """Tune every convolution layer of a shipped shape table (fastnn.net_shapes: resnet18,
    resnet50, vgg11, mobilenet_v2, squeezenet1_1, lenet): the forward pass and both gradients,
    at ``batch`` (default: the table's usual batch) and ``dtype``.  ``progress(layer,
    choices, seconds)`` is called after each layer."""
    import fastnn
    from fastnn import net_shapes

    layers = net_shapes.layers(name)
    batch = net_shapes.DEFAULT_BATCH[name] if batch is None else batch
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"tune: batch must be a positive int, got {batch!r}")
    rng = np.random.default_rng(0)
    report = TuneReport()
    start = time.perf_counter()
    for layer in layers:
        x = rng.standard_normal(layer.input_shape(batch)).astype(dtype)
        w = (rng.standard_normal(layer.weight_shape) / math.sqrt(layer.c * 9)).astype(dtype)
        gy = rng.standard_normal((batch, layer.k, *layer.out_hw)).astype(dtype)
        args = (layer.stride, layer.pad, 1, layer.groups)

        def step(x=x, w=w, gy=gy, args=args):
            fastnn.conv2d(x, w, None, *args)
            fastnn.conv2d_backward(gy, x, w, *args, output_mask=(True, True, False))

        began = time.perf_counter()
        part = tune(step, backward=False)
        report.choices.update(part.choices)
        report.measured += part.measured
        report.tuning_seconds += part.tuning_seconds
        if progress is not None:
            progress(layer.name, part.choices, time.perf_counter() - began)
    report.seconds = time.perf_counter() - start
    return report
