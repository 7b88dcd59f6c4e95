# Fused optimizer updates, float32 and float64 through fused types: one pass over the
# parameter reads the gradient and the state and writes the new parameter and state, IN
# PLACE (the one family of kernels that writes into its arguments).
#
# Every array is a flat C-contiguous buffer of one length; the Python side
# (fastnn/_backends/cpu/optim.py, after fastnn/ops/optim.py validated everything) makes them
# so.  The scalars are the fields of fastnn/ops/_optim_hyper.py's *Scalars tuples (keep:
# 1 - dampening, rest: 1 - alpha or 1 - rho, sign: -1 to maximize), typed `floating` so
# that the Python float is rounded once, on the call, to the element type.  Optional state (a momentum buffer, AMSGrad's maximum) is passed as an
# empty array with its flag off and is then never read.  The formulas and the order of
# operations follow torch.optim's single-tensor code, so float32 results agree closely.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf

from work_split cimport fnn_scaled_min, fnn_set_parallel_scale

# Below this many elements an OpenMP region costs more than it saves (a prior, scaled by
# the measured break-even: parallel_scale.h).
cdef Py_ssize_t PARALLEL_MIN = 1 << 15


cdef inline int _threads(Py_ssize_t n, int num_threads) noexcept nogil:
    return num_threads if n >= fnn_scaled_min(PARALLEL_MIN) else 1


cdef inline floating _sqrt(floating v) noexcept nogil:
    if floating is float:
        return sqrtf(v)
    else:
        return sqrt(v)


cdef inline floating _lerp(floating start, floating end, floating weight) noexcept nogil:
    # start + weight * (end - start), evaluated from the nearer end as torch.lerp does
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1 - weight)


cdef inline floating _coupled(floating g, floating wd, floating p) noexcept nogil:
    # the gradient with L2 weight decay folded in (torch's g + weight_decay * p)
    if wd != 0:
        return g + wd * p
    return g


cdef inline floating _ema_sq(floating avg, floating decay, floating rest,
                             floating g) noexcept nogil:
    # running mean of g^2: avg * decay + (1 - decay) * g^2, in torch's order
    return avg * decay + rest * (g * g)


def sgd(floating[::1] param, const floating[::1] grad, floating[::1] buf,
        floating lr, floating momentum, floating keep, floating weight_decay, floating sign,
        bint use_momentum, bint nesterov, bint first_step, int num_threads):
    """param -= lr * d with d the (momentum / Nesterov) direction; buf updated in place."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, b
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        g = _coupled(sign * grad[i], weight_decay, param[i])
        if use_momentum:
            if first_step:
                b = g
            else:
                b = buf[i] * momentum + keep * g
            buf[i] = b
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        param[i] = param[i] - lr * g


def adagrad(floating[::1] param, const floating[::1] grad, floating[::1] state_sum,
            floating lr, floating weight_decay, floating eps, floating sign, int num_threads):
    """state_sum += g^2; param -= lr * g / (sqrt(state_sum) + eps)."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, s
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        g = _coupled(sign * grad[i], weight_decay, param[i])
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = param[i] - lr * (g / (_sqrt(s) + eps))


def rmsprop(floating[::1] param, const floating[::1] grad, floating[::1] square_avg,
            floating[::1] grad_avg, floating[::1] buf,
            floating lr, floating alpha, floating rest, floating eps, floating weight_decay,
            floating momentum, floating sign, bint centered, bint use_momentum,
            int num_threads):
    """Running mean of g^2 (and of g when centred) scales the step; optional momentum."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, v, m, avg, b
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        g = _coupled(sign * grad[i], weight_decay, param[i])
        v = _ema_sq(square_avg[i], alpha, rest, g)
        square_avg[i] = v
        if centered:
            m = _lerp(grad_avg[i], g, rest)
            grad_avg[i] = m
            avg = _sqrt(v - m * m) + eps
        else:
            avg = _sqrt(v) + eps
        if use_momentum:
            b = buf[i] * momentum + g / avg
            buf[i] = b
            param[i] = param[i] - lr * b
        else:
            param[i] = param[i] - lr * (g / avg)


def adadelta(floating[::1] param, const floating[::1] grad, floating[::1] square_avg,
             floating[::1] acc_delta, floating lr, floating rho, floating rest, floating eps,
             floating weight_decay, floating sign, int num_threads):
    """The step is g scaled by RMS(past updates) / RMS(gradients)."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, v, delta
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        g = _coupled(sign * grad[i], weight_decay, param[i])
        v = _ema_sq(square_avg[i], rho, rest, g)
        square_avg[i] = v
        delta = _sqrt(acc_delta[i] + eps) / _sqrt(v + eps) * g
        acc_delta[i] = _ema_sq(acc_delta[i], rho, rest, delta)
        param[i] = param[i] - lr * delta


def adam(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
         floating[::1] exp_avg_sq, floating[::1] max_exp_avg_sq,
         floating step_size, floating bias2_sqrt, floating shrink, floating rest1,
         floating beta2, floating rest2, floating eps, floating weight_decay, floating sign,
         bint amsgrad, bint decoupled, int num_threads):
    """Adam / AdamW / AMSGrad; step_size = lr / (1 - beta1^t), bias2_sqrt =
    sqrt(1 - beta2^t) and shrink = 1 - lr * weight_decay (AdamW) come from the caller."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, p, m, v, denom
    for i in prange(n, nogil=True, schedule="static", num_threads=_threads(n, num_threads)):
        g = sign * grad[i]
        p = param[i]
        if weight_decay != 0:
            if decoupled:
                p = p * shrink
            else:
                g = g + weight_decay * p
        m = _lerp(exp_avg[i], g, rest1)
        exp_avg[i] = m
        v = _ema_sq(exp_avg_sq[i], beta2, rest2, g)
        exp_avg_sq[i] = v
        if amsgrad:
            if max_exp_avg_sq[i] > v:
                v = max_exp_avg_sq[i]
            max_exp_avg_sq[i] = v
        denom = _sqrt(v) / bias2_sqrt + eps
        param[i] = p - step_size * (m / denom)


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    fnn_set_parallel_scale(scale)
