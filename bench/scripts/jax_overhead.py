"""Per-call overhead of fastnn.jax's routes: one jitted call of a small op by the XLA FFI
handler, ``buffer_callback`` and ``pure_callback``, against XLA's native op and against
fastnn's kernel called directly on a NumPy array (the kernel's own time plus fastnn's
Python dispatch).

``env -u OPENBLAS_CORETYPE .venv/bin/python bench/scripts/jax_overhead.py [--budget 0.5]``
prints microseconds per call (median of interleaved blocks, fastnn.bench.timing) and each
route's excess over the direct kernel call.  Where the FFI handler does not cover an op (a
convolution pass whose chosen algorithm it cannot run), its "ffi" column is the callback's.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import fastnn
import fastnn.jax as fj
from fastnn.bench.timing import TimingPlan, measure

#: op -> (fastnn.jax function, XLA's own, fastnn's NumPy op, input shapes)
OPS = {
    "relu (256,)": (fj.relu, jax.nn.relu, fastnn.relu, [(256,)]),
    "softmax (32, 10)": (fj.softmax, jax.nn.softmax, fastnn.softmax, [(32, 10)]),
    "linear 32x64 -> 32": (
        lambda x, w: fj.linear(x, w),
        lambda x, w: x @ w.T,
        lambda x, w: fastnn.linear(x, w),
        [(32, 64), (32, 64)],
    ),
    "max_pool2d 2x4x8x8": (
        lambda x: fj.max_pool2d(x, 2),
        lambda x: jax.lax.reduce_window(
            x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID"
        ),
        lambda x: fastnn.max_pool2d(x, 2),
        [(2, 4, 8, 8)],
    ),  # fmt: skip
    "max_pool2d grad 2x4x8x8": (
        jax.grad(lambda x: jnp.sum(fj.max_pool2d(x, 2))),
        jax.grad(
            lambda x: jnp.sum(
                jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            )
        ),
        lambda x: fastnn.max_pool2d_backward(np.ones((2, 4, 4, 4), np.float32), x, 2),
        [(2, 4, 8, 8)],
    ),  # fmt: skip
    "avg_pool2d 2x4x8x8": (
        lambda x: fj.avg_pool2d(x, 2),
        lambda x: (
            jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, 2, 2), (1, 1, 2, 2), "VALID") / 4
        ),
        lambda x: fastnn.avg_pool2d(x, 2),
        [(2, 4, 8, 8)],
    ),  # fmt: skip
    "conv2d 2x16x8x8 3x3 -> 16": (
        lambda x, w: fj.conv2d(x, w, None, 1, 1),
        lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)]),
        lambda x, w: fastnn.conv2d(x, w, None, 1, 1),
        [(2, 16, 8, 8), (16, 16, 3, 3)],
    ),
}
#: Convolutions pinned to the direct row kernel (fewer channels per group than the
#: channel-blocked kernel's lanes, in every pass) and to im2col + BLAS, forward and both
#: gradients: name -> (algo, input shape, weight shape).
_PINNED = {
    "conv2d rows 2x8x8x8 -> 4": ("direct", (2, 8, 8, 8), (4, 8, 3, 3)),
    "conv2d im2col 2x16x8x8": ("im2col", (2, 16, 8, 8), (16, 16, 3, 3)),
}


def _pinned(algo: str, x_shape: tuple, w_shape: tuple) -> dict[str, tuple]:
    """Forward and gradient (input and weight) cases of a 3x3, padding 1 convolution run
    by ``algo``: XLA's own convolution is the native peer."""
    conv = lambda x, w: fj.conv2d(x, w, None, 1, 1, algo=algo)  # noqa: E731
    native = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)])  # noqa: E731
    gy = np.ones((x_shape[0], w_shape[0], *x_shape[2:]), np.float32)
    return {
        "": (conv, native, lambda x, w: fastnn.conv2d(x, w, None, 1, 1, algo=algo),
             [x_shape, w_shape]),
        " grad": (
            jax.grad(lambda x, w: jnp.sum(conv(x, w)), (0, 1)),
            jax.grad(lambda x, w: jnp.sum(native(x, w)), (0, 1)),
            lambda x, w: fastnn.conv2d_backward(gy, x, w, 1, 1, algo=algo,
                                                output_mask=(True, True, False)),
            [x_shape, w_shape],
        ),
    }  # fmt: skip


for _name, (_algo, _xs, _ws) in _PINNED.items():
    OPS.update({_name + tail: op for tail, op in _pinned(_algo, _xs, _ws).items()})


def _traced(fn, args, route: str | None):
    """``fn`` jitted and compiled now, under ``route`` (None: the route does not matter)."""
    before = fj.get_route()
    try:
        if route is not None:
            fj.set_route(route)
        compiled = jax.jit(fn).lower(*args).compile()
    finally:
        fj.set_route(before)
    return lambda: jax.block_until_ready(compiled(*args))


def run(budget: float) -> list[tuple[str, dict[str, float]]]:
    """Median seconds per call of each way, per op."""
    rng = np.random.default_rng(0)
    rows = []
    for name, (ours, native, direct, shapes) in OPS.items():
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        args = [jnp.asarray(a) for a in arrays]
        calls = {
            "kernel (NumPy)": lambda d=direct, a=arrays: d(*a),
            "XLA native": _traced(native, args, None),
            "ffi": _traced(ours, args, "ffi"),
            "buffer_callback": _traced(ours, args, "buffer_callback"),
            "pure_callback": _traced(ours, args, "pure_callback"),
        }
        results = measure(calls, TimingPlan(budget=budget))
        rows.append((name, {k: m.median for k, m in results.items() if m.ok}))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per way and op")
    args = parser.parse_args(argv)
    rows = run(args.budget)
    ways = list(rows[0][1])
    print(f"{'op':30}" + "".join(f"{w:>17}" for w in ways) + "   (us per call)")
    for name, times in rows:
        cells = "".join(f"{times.get(w, float('nan')) * 1e6:17.1f}" for w in ways)
        print(f"{name:30}{cells}")
    print("excess over the direct kernel call (us):")
    for name, times in rows:
        base = times["kernel (NumPy)"]
        cells = ", ".join(
            f"{w} {(times[w] - base) * 1e6:+.1f}" for w in ("ffi", "buffer_callback",
                                                          "pure_callback") if w in times
        )  # fmt: skip
        print(f"  {name}: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
