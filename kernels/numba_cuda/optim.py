"""Fused optimizer updates as ``@cuda.jit`` kernels: one element per thread and
grid-stride step, IN PLACE.

Every array is 1-d and C-contiguous, of the parameter's length and dtype; every scalar
arrives already converted to that dtype (so float32 math stays float32: no Python
literals appear in the arithmetic), in the order of fastnn/ops/_optim_hyper.py's
``*Scalars`` tuples.  Optional state is passed with its flag off and is then never
touched.  The formulas follow torch.optim (see fastnn/ops/optim.py).  The host side
(launch sizes, placeholders) is fastnn/_backends/numba_cuda/optim.py.
"""

from __future__ import annotations

import math

from numba import cuda

#: Threads per block of every update kernel.
THREADS = 256


@cuda.jit(device=True, inline=True)
def _lerp(start, end, weight, one_minus_weight):
    # start + weight * (end - start), from the nearer end as torch.lerp does
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * one_minus_weight


@cuda.jit(device=True, inline=True)
def _with_decay(g, weight_decay, param, i):
    # the gradient with L2 weight decay folded in (torch's g + weight_decay * p); param[i]
    # is read only when there is decay
    if weight_decay != 0:
        return g + weight_decay * param[i]
    return g


@cuda.jit(device=True, inline=True)
def _ema_sq(avg, decay, rest, g):
    # running mean of g^2: avg * decay + (1 - decay) * g^2, in torch's order
    return avg * decay + rest * (g * g)


@cuda.jit
def sgd(param, grad, buf, lr, momentum, keep, weight_decay, sign, use_momentum, nesterov, first):
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        g = _with_decay(sign * grad[i], weight_decay, param, i)
        if use_momentum:
            if first:
                b = g
            else:
                b = buf[i] * momentum + keep * g
            buf[i] = b
            if nesterov:
                g = g + momentum * b
            else:
                g = b
        param[i] = param[i] - lr * g


@cuda.jit
def adagrad(param, grad, state_sum, lr, weight_decay, eps, sign):
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        g = _with_decay(sign * grad[i], weight_decay, param, i)
        s = state_sum[i] + g * g
        state_sum[i] = s
        param[i] = param[i] - lr * (g / (math.sqrt(s) + eps))


@cuda.jit
def rmsprop(param, grad, square_avg, grad_avg, buf, lr, alpha, rest, eps, weight_decay,
            momentum, sign, centered, use_momentum):  # fmt: skip
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        g = _with_decay(sign * grad[i], weight_decay, param, i)
        v = _ema_sq(square_avg[i], alpha, rest, g)
        square_avg[i] = v
        if centered:
            m = _lerp(grad_avg[i], g, rest, alpha)
            grad_avg[i] = m
            avg = math.sqrt(v - m * m) + eps
        else:
            avg = math.sqrt(v) + eps
        if use_momentum:
            b = buf[i] * momentum + g / avg
            buf[i] = b
            param[i] = param[i] - lr * b
        else:
            param[i] = param[i] - lr * (g / avg)


@cuda.jit
def adadelta(param, grad, square_avg, acc_delta, lr, rho, rest, eps, weight_decay, sign):
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        g = _with_decay(sign * grad[i], weight_decay, param, i)
        v = _ema_sq(square_avg[i], rho, rest, g)
        square_avg[i] = v
        delta = math.sqrt(acc_delta[i] + eps) / math.sqrt(v + eps) * g
        acc_delta[i] = _ema_sq(acc_delta[i], rho, rest, delta)
        param[i] = param[i] - lr * delta


@cuda.jit
def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, bias2_sqrt, shrink,
         beta1, rest1, beta2, rest2, eps, weight_decay, sign, amsgrad, decoupled):  # fmt: skip
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        g = sign * grad[i]
        p = param[i]
        if weight_decay != 0:
            if decoupled:
                p = p * shrink
            else:
                g = g + weight_decay * p
        m = _lerp(exp_avg[i], g, rest1, beta1)
        exp_avg[i] = m
        v = _ema_sq(exp_avg_sq[i], beta2, rest2, g)
        exp_avg_sq[i] = v
        if amsgrad:
            if max_exp_avg_sq[i] > v:
                v = max_exp_avg_sq[i]
            max_exp_avg_sq[i] = v
        denom = math.sqrt(v) / bias2_sqrt + eps
        param[i] = p - step_size * (m / denom)
