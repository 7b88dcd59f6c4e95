"""conv1d / conv2d for JAX: fastnn's kernels forward and backward, under jax.custom_vjp.

On the FFI route each pass (forward, input gradient, weight gradient) is settled at trace
time by fastnn's CPU backend (fastnn/_backends/cpu/conv_handoff.py: its memoised
algorithm choice, autotuned on first use, the instruction-set level and the blocking) and
handed to the C handler as an attribute, so the call runs C alone.  The handler runs
every CPU algorithm: the channel-blocked, Winograd and depthwise kernels itself, the
direct row kernel and im2col + BLAS through their Cython modules' C entry points.  A pass
the plan does not cover (im2col beside a BLAS whose threads C cannot hold at one, see
conv_handoff.blas_controls) takes the buffer_callback route instead.  The bias gradient
always runs in the handler when a pass does.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fastnn
from fastnn import _args, _geometry
from fastnn._op_checks import conv_algo
from fastnn.jax import _route
from fastnn.jax._common import arrays, check_floats, static, team_sizes, threads_attr
from fastnn.jax._kernel import Kernel

__all__ = ["conv1d", "conv2d"]

_FORWARD = {1: fastnn.conv1d, 2: fastnn.conv2d}
_BACKWARD = {1: fastnn.conv1d_backward, 2: fastnn.conv2d_backward}


@functools.lru_cache(maxsize=256)
def _conv(nd: int, has_bias: bool, stride, padding, dilation, groups, algo: str):
    """The custom_vjp function of one convolution configuration (arrays only)."""
    op = f"conv{nd}d"
    params = (stride, padding, dilation, groups)

    def geometry(x_shape, w_shape):
        return _geometry.conv_geometry(op, nd, x_shape, w_shape, *params)

    def plan(which: str, x_shape, w_shape, dtype) -> np.ndarray | None:
        """The pass's plans for every team size a call may run with, end to end (None:
        the handler does not run its algorithm)."""
        from fastnn._backends.cpu.conv_handoff import pass_plan

        geom = geometry(tuple(x_shape), tuple(w_shape))
        plans = [pass_plan(geom, dtype, which, algo, team) for team in team_sizes()]
        if plans[0] is None:
            return None
        return np.concatenate(plans)

    def forward_ffi(specs, x, w, *b):
        steps = plan("forward", x.shape, w.shape, x.dtype)
        if steps is None:
            return None
        bias = b[0] if has_bias else jnp.zeros((0,), x.dtype)
        call = jax.ffi.ffi_call("fastnn_conv_forward", specs)
        return call(
            x,
            w,
            bias,
            plan=steps,
            threads=threads_attr(),
            has_bias=np.int32(has_bias),
            act=np.int32(0),
        )

    forward = Kernel(
        lambda x, w, *b: (_FORWARD[nd](x, w, b[0] if b else None, *params, algo=algo),),
        lambda xs, ws, *bs: [(geometry(xs, ws).output_shape, 0)],
        ("lead", "fixed", "fixed")[: 2 + has_bias],
        ("lead",),
        ffi=forward_ffi,
    )
    mask = (True, True, has_bias)

    def backward_host(g, x, w):
        gi, gw, gb = _BACKWARD[nd](g, x, w, *params, algo=algo, output_mask=mask)
        return (gi, gw, gb) if has_bias else (gi, gw)

    def one_pass(which: str):
        """The host function of one backward pass (for a pass the handler does not run)."""
        only = (which == "input", which == "weight", False)
        index = 0 if which == "input" else 1

        def host(g, x, w):
            return (_BACKWARD[nd](g, x, w, *params, algo=algo, output_mask=only)[index],)

        return host

    def backward_ffi(specs, g, x, w):
        steps = {p: plan(p, x.shape, w.shape, x.dtype) for p in ("input", "weight")}
        if all(s is None for s in steps.values()):
            return None
        outs = []
        for which, target, args in (("input", "fastnn_conv_input_grad", (g, w)),
                                    ("weight", "fastnn_conv_weight_grad", (g, x))):  # fmt: skip
            spec = specs[len(outs)]
            if steps[which] is None:
                outs += _route.call(one_pass(which), [spec], g, x, w)
            elif which == "weight" and has_bias:  # both, as conv_backward runs them
                call = jax.ffi.ffi_call("fastnn_conv_weight_grad_and_bias", (spec, specs[2]))
                outs += list(call(*args, plan=steps[which], threads=threads_attr()))
            else:
                call = jax.ffi.ffi_call(target, spec)
                outs.append(call(*args, plan=steps[which], threads=threads_attr()))
        if has_bias and len(outs) < 3:
            call = jax.ffi.ffi_call("fastnn_conv_bias_grad", specs[2])
            outs.append(call(g, threads=threads_attr()))
        return outs

    backward = Kernel(
        backward_host,
        lambda gs, xs, ws: [(xs, 1), (ws, 2), ((ws[0],), 2)][: 2 + has_bias],
        ("lead", "lead", "fixed"),
        ("lead", "fixed", "fixed")[: 2 + has_bias],
        ffi=backward_ffi,
    )

    @jax.custom_vjp
    def conv(x, w, *b):
        return forward(x, w, *b)[0]

    def conv_fwd(x, w, *b):
        return forward(x, w, *b)[0], (x, w)

    def conv_bwd(saved, g):
        return backward(g, *saved)

    conv.defvjp(conv_fwd, conv_bwd)
    return conv


def _apply(nd, input, weight, bias, stride, padding, dilation, groups, algo):
    op = f"conv{nd}d"
    x, w, b = arrays(input, weight, bias)
    check_floats(op, {"input": x, "weight": w, "bias": b})
    params = static((stride, padding, dilation, groups))
    geom = _geometry.conv_geometry(op, nd, tuple(x.shape), tuple(w.shape), *params)
    if b is not None:
        _args.check_shape(op, "bias", b, (geom.out_channels,), "C_out")
    algo = conv_algo(op, algo, geom)
    fn = _conv(nd, b is not None, *params, algo)
    return fn(x, w) if b is None else fn(x, w, b)


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
) -> jax.Array:
    """:func:`fastnn.conv1d` on jax arrays: (N, C_in, L) input, (C_out, C_in // groups, kL)
    weight, optional (C_out,) bias; differentiable (custom_vjp), jit- and vmap-able."""
    return _apply(1, input, weight, bias, stride, padding, dilation, groups, algo)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
) -> jax.Array:
    """:func:`fastnn.conv2d` on jax arrays: NCHW input, OIHW weight, optional (C_out,)
    bias; differentiable (custom_vjp), jit- and vmap-able.  Argument errors are fastnn's,
    raised at trace time."""
    return _apply(2, input, weight, bias, stride, padding, dilation, groups, algo)
