"""Finite-difference gradients, to check every backward op against its own forward.

For a forward ``y = f(x_1, ..., x_k)`` and a fixed "upstream" gradient ``g`` of the same
shape as ``y``, the backward ops return the vector-Jacobian products
``d/dx_i sum(g * f(x))``.  :func:`numerical_vjp` estimates them without any calculus,
element by element, with the central difference

    (s(x + h e_j) - s(x - h e_j)) / (2 h),   s(x) = sum(g * f(x)),

whose error is O(h^2) (about 1e-10 relative in float64 with h = 1e-6 for smooth f).

Why not the complex step: it would be exact to rounding, but fastnn's public ops reject
complex arrays (``TypeError``), and the reference backend is reached only through them.

Keep shapes tiny: the estimate costs two forward calls per input element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Step of the central difference: the error is ~ h^2 |f'''| + eps |f| / h, smallest near
#: eps^(1/3) ~ 6e-6 for float64.
STEP = 1e-6


def numerical_vjp(
    forward: Callable[..., np.ndarray],
    arrays: Sequence[np.ndarray],
    grad_output: np.ndarray | None = None,
    wrt: Sequence[int] | None = None,
    step: float = STEP,
) -> list[np.ndarray | None]:
    """Central-difference estimate of ``d/d arrays[i] sum(grad_output * forward(*arrays))``.

    ``arrays`` must be float64.  ``grad_output`` defaults to ones (the gradient of a sum;
    use it for a 0-d loss too).  ``wrt`` lists the positions of ``arrays`` to
    differentiate (default: all); the others get None.  Returns one array per input.
    """
    originals = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    positions = range(len(originals)) if wrt is None else wrt

    def objective(values: list[np.ndarray]) -> float:
        out = np.asarray(forward(*values), dtype=np.float64)
        weights = np.ones_like(out) if grad_output is None else grad_output
        return float(np.sum(weights * out))

    grads: list[np.ndarray | None] = [None] * len(originals)
    for i in positions:
        grad = np.zeros_like(originals[i])
        for j in np.ndindex(originals[i].shape):
            values = [a.copy() for a in originals]
            values[i][j] = originals[i][j] + step
            upper = objective(values)
            values[i][j] = originals[i][j] - step
            lower = objective(values)
            grad[j] = (upper - lower) / (2.0 * step)
        grads[i] = grad
    return grads


def assert_grad_close(analytic: np.ndarray, numeric: np.ndarray, what: str, rtol=1e-6) -> None:
    """The analytic gradient agrees with the finite-difference one to ``rtol`` relative to
    the largest entry (the difference quotient carries an absolute error, not a relative
    one, so entries near zero are compared on the scale of the whole gradient)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    assert analytic.shape == numeric.shape, f"{what}: shape {analytic.shape} != {numeric.shape}"
    scale = max(1.0, float(np.max(np.abs(numeric)))) if numeric.size else 1.0
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=rtol * scale, err_msg=what)
