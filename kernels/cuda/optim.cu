// The optimizer updates, one fused kernel per optimizer: one thread per element of flat
// C-contiguous arrays (grid-stride), IN PLACE on the parameter and the state.
//
// The scalars are the fields of fastnn/ops/_optim_hyper.py's *Scalars tuples, in their
// order, as the element type T (so float math stays float): keep = 1 - dampening,
// rest = 1 - alpha or 1 - rho, rest1/rest2 = 1 - beta1/beta2, sign = -1 to maximize.
// The option flags are template arguments, so an option that is off costs no branch; the
// state array of an option that is off is a placeholder (the parameter) never touched.
// The formulas and their order of operations follow torch.optim, as the CPU and numba
// kernels do (see fastnn/ops/optim.py).
#include "common.cuh"

namespace fastnn {

__device__ __forceinline__ float root(float x) { return sqrtf(x); }
__device__ __forceinline__ double root(double x) { return sqrt(x); }

// start + weight * (end - start), from the nearer end as torch.lerp does.
template <typename T>
__device__ __forceinline__ T lerp(T start, T end, T weight, T one_minus_weight) {
    return weight < T(0.5) ? start + weight * (end - start)
                           : end - (end - start) * one_minus_weight;
}

// The gradient an update uses: negated to maximize, plus L2 weight decay.
template <typename T>
__device__ __forceinline__ T decayed_grad(T grad, T param, T weight_decay, T sign) {
    T g = sign * grad;
    if (weight_decay != T(0)) g = g + weight_decay * param;
    return g;
}

}  // namespace fastnn

template <typename T, bool MOMENTUM, bool NESTEROV, bool FIRST>
__global__ void sgd_update(T* __restrict__ param, const T* __restrict__ grad,
                           T* __restrict__ buf, fastnn::index_t n, T lr, T momentum, T keep,
                           T weight_decay, T sign) {
    FASTNN_GRID_STRIDE(i, n) {
        T g = fastnn::decayed_grad(grad[i], param[i], weight_decay, sign);
        if (MOMENTUM) {
            const T b = FIRST ? g : buf[i] * momentum + keep * g;
            buf[i] = b;
            g = NESTEROV ? g + momentum * b : b;
        }
        param[i] = param[i] - lr * g;
    }
}

template <typename T>
__global__ void adagrad_update(T* __restrict__ param, const T* __restrict__ grad,
                               T* __restrict__ state_sum, fastnn::index_t n, T lr,
                               T weight_decay, T eps, T sign) {
    FASTNN_GRID_STRIDE(i, n) {
        const T g = fastnn::decayed_grad(grad[i], param[i], weight_decay, sign);
        const T s = state_sum[i] + g * g;
        state_sum[i] = s;
        param[i] = param[i] - lr * (g / (fastnn::root(s) + eps));
    }
}

template <typename T, bool CENTERED, bool MOMENTUM>
__global__ void rmsprop_update(T* __restrict__ param, const T* __restrict__ grad,
                               T* __restrict__ square_avg, T* __restrict__ grad_avg,
                               T* __restrict__ buf, fastnn::index_t n, T lr, T alpha, T rest,
                               T eps, T weight_decay, T momentum, T sign) {
    FASTNN_GRID_STRIDE(i, n) {
        const T g = fastnn::decayed_grad(grad[i], param[i], weight_decay, sign);
        const T v = square_avg[i] * alpha + rest * (g * g);
        square_avg[i] = v;
        T avg;
        if (CENTERED) {
            const T m = fastnn::lerp(grad_avg[i], g, rest, alpha);
            grad_avg[i] = m;
            avg = fastnn::root(v - m * m) + eps;
        } else {
            avg = fastnn::root(v) + eps;
        }
        if (MOMENTUM) {
            const T b = buf[i] * momentum + g / avg;
            buf[i] = b;
            param[i] = param[i] - lr * b;
        } else {
            param[i] = param[i] - lr * (g / avg);
        }
    }
}

template <typename T>
__global__ void adadelta_update(T* __restrict__ param, const T* __restrict__ grad,
                                T* __restrict__ square_avg, T* __restrict__ acc_delta,
                                fastnn::index_t n, T lr, T rho, T rest, T eps, T weight_decay,
                                T sign) {
    FASTNN_GRID_STRIDE(i, n) {
        const T g = fastnn::decayed_grad(grad[i], param[i], weight_decay, sign);
        const T v = square_avg[i] * rho + rest * (g * g);
        square_avg[i] = v;
        const T delta = fastnn::root(acc_delta[i] + eps) / fastnn::root(v + eps) * g;
        acc_delta[i] = acc_delta[i] * rho + rest * (delta * delta);
        param[i] = param[i] - lr * delta;
    }
}

// DECOUPLED (AdamW) multiplies the parameter by shrink = 1 - lr * weight_decay instead of
// adding weight_decay * param to the gradient.
template <typename T, bool AMSGRAD, bool DECOUPLED>
__global__ void adam_update(T* __restrict__ param, const T* __restrict__ grad,
                            T* __restrict__ exp_avg, T* __restrict__ exp_avg_sq,
                            T* __restrict__ max_exp_avg_sq, fastnn::index_t n, T step_size,
                            T bias2_sqrt, T shrink, T beta1, T rest1, T beta2, T rest2, T eps,
                            T weight_decay, T sign) {
    FASTNN_GRID_STRIDE(i, n) {
        T g = sign * grad[i];
        T p = param[i];
        if (weight_decay != T(0)) {
            if (DECOUPLED) {
                p = p * shrink;
            } else {
                g = g + weight_decay * p;
            }
        }
        const T m = fastnn::lerp(exp_avg[i], g, rest1, beta1);
        exp_avg[i] = m;
        T v = exp_avg_sq[i] * beta2 + rest2 * (g * g);
        exp_avg_sq[i] = v;
        if (AMSGRAD) {
            if (max_exp_avg_sq[i] > v) v = max_exp_avg_sq[i];
            max_exp_avg_sq[i] = v;
        }
        param[i] = p - step_size * (m / (fastnn::root(v) / bias2_sqrt + eps));
    }
}
