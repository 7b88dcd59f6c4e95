"""Batch normalisation: statistics, the normalising pass, the whole forward with running
statistics (``torch.nn.functional.batch_norm`` semantics) and its backward.

Inputs are (N, C, *) with any number of trailing dims; every statistic is per channel C,
over N and the trailing dims.  An optional ``activation`` ("relu" or "relu6") is fused
into the normalising pass, and its gradient into the backward's passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import _args
from fastnn._dispatch import resolve
from fastnn._op_checks import bn_channels as _input
from fastnn._op_checks import bn_eps as _eps
from fastnn._op_checks import bn_momentum as _momentum
from fastnn._op_checks import check_per_channel as _per_channel
from fastnn._op_checks import check_training_count as _check_training_count
from fastnn._op_checks import values_per_channel as _values_per_channel

__all__ = ["batch_norm", "batch_norm_backward", "batch_norm_elemt", "batch_norm_stats"]

#: The activations that can follow batch normalisation in the same pass.
BN_ACTIVATIONS = (None, "relu", "relu6")


def batch_norm_stats(input: Any, eps: float = 1e-5, *, backend: str | None = None) -> Any:
    """Per-channel batch mean and ``1 / sqrt(biased variance + eps)`` of an (N, C, *)
    input: two (C,) arrays of the input's dtype, accurate to the dtype's rounding even for
    data far from zero (no ``E[x^2] - E[x]^2`` in the input's precision)."""
    op = "batch_norm_stats"
    kind = _args.float_array(op, "input", input)
    _input(op, input)
    e = _eps(op, eps)
    return resolve(op, kind, backend)(input, e)


def batch_norm_elemt(
    input: Any,
    mean: Any,
    invstd: Any,
    weight: Any = None,
    bias: Any = None,
    *,
    activation: str | None = None,
    backend: str | None = None,
) -> Any:
    """``act((x - mean) * invstd * weight + bias)`` per channel, in one pass (``weight``
    None means 1, ``bias`` None means 0; ``activation`` None, "relu" or "relu6")."""
    op = "batch_norm_elemt"
    act = _args.activation_name(op, activation, BN_ACTIVATIONS)
    arrays = {"input": input, "mean": mean, "invstd": invstd, "weight": weight, "bias": bias}
    kind, _ = _args.float_arrays(op, arrays, optional=("weight", "bias"))
    channels = _input(op, input)
    _per_channel(op, channels, {"mean": mean, "invstd": invstd, "weight": weight, "bias": bias})
    return resolve(op, kind, backend)(input, mean, invstd, weight, bias, act)


def _updatable(op: str, arrays: dict[str, Any]) -> None:
    """GPU running statistics are updated in place by the kernels: they must be
    contiguous (a strided view would be copied, and the update lost)."""
    for name, value in arrays.items():
        if value is None:
            continue
        strides = getattr(value, "strides", None)
        if strides is None and hasattr(value, "__cuda_array_interface__"):
            strides = value.__cuda_array_interface__.get("strides")
        if strides is not None and tuple(strides) != (value.dtype.itemsize,):
            raise ValueError(
                f"{op}: {name} must be contiguous on the GPU (it is updated in place), got "
                f"strides {tuple(strides)}"
            )


def _increment(op: str, counter: Any, kind: str) -> int:
    """``counter += 1`` in place (a () or (1,) int64 array on the input's device);
    returns the new count."""
    _args.index_array(op, "num_batches_tracked", counter, kind)
    if np.dtype(counter.dtype) != np.int64 or tuple(counter.shape) not in ((), (1,)):
        raise ValueError(
            f"{op}: num_batches_tracked must be an int64 array of shape () or (1,), got "
            f"dtype {counter.dtype} and shape {tuple(counter.shape)}"
        )
    if kind == "numpy":
        counter += 1
        return int(counter.reshape(-1)[0])
    if hasattr(counter, "get"):  # cupy
        counter += 1
        return int(counter.get().reshape(-1)[0])
    from numba import cuda  # a numba device array or another CUDA array

    device = counter if hasattr(counter, "copy_to_host") else cuda.as_cuda_array(counter)
    host = device.copy_to_host()
    host += 1
    device.copy_to_device(host)
    return int(host.reshape(-1)[0])


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    *,
    activation: str | None = None,
    num_batches_tracked: Any = None,
    return_stats: bool = False,
    backend: str | None = None,
) -> Any:
    """``torch.nn.functional.batch_norm``: normalise each channel of the (N, C, *) input.

    Training: with the batch's statistics, and ``running_mean`` / ``running_var`` (None
    together for no running statistics) move in place towards them,
    ``running = (1 - m) running + m batch``, the variance unbiased.  ``momentum=None``
    takes the cumulative average ``m = 1 / num_batches_tracked`` (then required: an int64
    () or (1,) array, incremented in place).  Eval: with the running statistics.
    ``activation`` ("relu", "relu6") is applied in the same pass.  ``return_stats=True``
    returns ``(output, mean, invstd)``: the statistics used, for
    :func:`batch_norm_backward`.
    """
    op = "batch_norm"
    act = _args.activation_name(op, activation, BN_ACTIVATIONS)
    train = _args.check_bool(op, "training", training)
    stats = _args.check_bool(op, "return_stats", return_stats)
    m = _momentum(op, momentum)
    e = _eps(op, eps)
    arrays = {
        "input": input,
        "running_mean": running_mean,
        "running_var": running_var,
        "weight": weight,
        "bias": bias,
    }
    kind, _ = _args.float_arrays(
        op, arrays, optional=("running_mean", "running_var", "weight", "bias")
    )
    channels = _input(op, input)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must be given together or both None")
    if running_mean is None and not train:
        raise ValueError(f"{op}: running_mean and running_var are required when training=False")
    _per_channel(
        op,
        channels,
        {"running_mean": running_mean, "running_var": running_var, "weight": weight, "bias": bias},
    )
    if kind != "numpy":
        _updatable(op, {"running_mean": running_mean, "running_var": running_var})
    factor = 0.0
    if train:
        _check_training_count(op, input)
        if running_mean is not None and _values_per_channel(input) > 0:
            if m is None:
                if num_batches_tracked is None:
                    raise ValueError(
                        f"{op}: momentum=None (cumulative average) needs num_batches_tracked"
                    )
                factor = 1.0 / _increment(op, num_batches_tracked, kind)
            else:
                if num_batches_tracked is not None:
                    _increment(op, num_batches_tracked, kind)
                factor = m
    impl = resolve(op, kind, backend)
    y, mean, invstd = impl(input, running_mean, running_var, weight, bias, train, factor, e, act)
    return (y, mean, invstd) if stats else y


def batch_norm_backward(
    grad_output: Any,
    input: Any,
    weight: Any,
    mean: Any,
    invstd: Any,
    *,
    training: bool = True,
    output: Any = None,
    activation: str | None = None,
    output_mask: Any = (True, True, True),
    backend: str | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients ``(grad_input, grad_weight, grad_bias)`` of :func:`batch_norm` from the
    statistics it used (None where ``output_mask`` is False; ``weight`` None means 1).

    With ``activation`` the gradient first passes it, through the forward ``output``
    (required then): relu where y > 0, relu6 where 0 < y < 6.  ``training=False`` treats
    mean and invstd as constants: ``grad_input = g * weight * invstd``."""
    op = "batch_norm_backward"
    act = _args.activation_name(op, activation, BN_ACTIVATIONS)
    train = _args.check_bool(op, "training", training)
    mask = _args.output_mask(op, output_mask)
    arrays = {
        "grad_output": grad_output,
        "input": input,
        "weight": weight,
        "mean": mean,
        "invstd": invstd,
        "output": output,
    }
    kind, _ = _args.float_arrays(op, arrays, optional=("weight", "output"))
    channels = _input(op, input)
    _args.check_same_shape(op, "grad_output", grad_output, "input", input)
    if output is not None:
        _args.check_same_shape(op, "output", output, "input", input)
    elif act is not None:
        raise ValueError(f"{op}: output (the forward output) is required with activation={act!r}")
    _per_channel(op, channels, {"weight": weight, "mean": mean, "invstd": invstd})
    impl = resolve(op, kind, backend)
    return impl(grad_output, input, weight, mean, invstd, train, output, act, mask)
