"""The GPU smoke test's fastnn.jax rows: a jitted conv -> relu -> max-pool step through
fastnn.jax on XLA's GPU buffers and stream (fastnn.jax._gpu), its value and input/weight
gradients against XLA's own ops (jax.lax) on the same GPU, both timed.

No rows when jax is not installed or has no GPU backend, or fastnn.jax has no device
backend (CuPy or numba-cuda) to run on there; the reason is returned instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.bench.timing import TimingPlan, measure

__all__ = ["jax_rows"]

#: (batch, channels in, size, channels out) of the step, per smoke size.
SHAPES = {"tiny": (2, 3, 8, 4), "quick": (8, 16, 32, 32), "full": (32, 64, 56, 64)}


def _steps(jax: Any, fj: Any) -> tuple[Any, Any]:
    """Jitted (value, (grad x, grad w)) of the step, through fastnn.jax and through XLA."""
    jnp, lax = jax.numpy, jax.lax

    def ours(x, w):
        return fj.max_pool2d(fj.relu(fj.conv2d(x, w, padding=1)), 2).sum()

    def xla(x, w):
        y = jax.nn.relu(lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)]))
        window = (1, 1, 2, 2)
        return lax.reduce_window(y, -jnp.inf, lax.max, window, window, "VALID").sum()

    def step(f):
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

    return step(ours), step(xla)


def jax_rows(size: str, plan: TimingPlan, row_type: Any, error_of: Any) -> tuple[list, str]:
    """(rows, reason): rows of ``row_type`` (gpu_smoke.Row) for the jax step, or no rows
    and why not.  ``error_of(got, want)`` is the table's relative error."""
    try:
        import jax

        import fastnn.jax as fj
        from fastnn.jax import _gpu
    except ImportError as exc:
        return [], f"fastnn.jax not installed ({exc})"
    if jax.default_backend() not in _gpu.GPU_PLATFORMS:
        return [], f"jax runs on {jax.default_backend()!r}, not a GPU"
    try:
        backend = _gpu.device_backend()
    except RuntimeError as exc:
        return [], str(exc)
    n, c, hw, k = SHAPES[size]
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.standard_normal((n, c, hw, hw), dtype=np.float32))
    w = jax.device_put((rng.standard_normal((k, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32))
    ours, xla = _steps(jax, fj)
    label = f"jax conv+relu+pool {n}x{c}x{hw}x{hw}->{k}"

    def flat(result):
        value, grads = result
        return [np.asarray(value), *(np.asarray(g) for g in grads)]

    try:
        got = flat(ours(x, w))
    except Exception as exc:  # a broken bridge is a failed row, not a crash
        return [row_type(label, f"jax/{backend}", np.inf, False, note=f"{exc!r}")], ""
    want = flat(xla(x, w))
    error = error_of(got, want)

    def timed(f):
        return lambda: jax.block_until_ready(f(x, w))

    measured = measure({"fastnn.jax": timed(ours), "xla": timed(xla)}, plan)
    row = row_type(label, f"jax/{backend}", error, error <= 1e-3)
    if measured["fastnn.jax"].ok:
        row.seconds = measured["fastnn.jax"].median
    if measured["xla"].ok:
        row.baseline, row.baseline_seconds = "xla", measured["xla"].median
    return [row], ""
