"""Conv-heavy steps, forward + backward, fastnn.jax against XLA CPU (jax.lax): LeNet-5 at
batch 128 (fastnn/examples/jax_lenet.py) and a ResNet basic block (conv 3x3 - batch norm -
relu - conv 3x3 - batch norm - residual add - relu) at 16x64x56x56, each one jitted
value-and-gradient function, at fastnn thread counts 1 and all (XLA keeps its own pool:
this shows whether the two oversubscribe the cores).

``env -u OPENBLAS_CORETYPE .venv/bin/python bench/scripts/jax_steps.py [--budget 3]``
prints the median ms per step (interleaved blocks, fastnn.bench.timing) and the ratio.
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import fastnn
import fastnn.jax as fj
from fastnn.bench.timing import TimingPlan, measure
from fastnn.examples import jax_lenet


def _bn(x):
    mean = x.mean((0, 2, 3), keepdims=True)
    return (x - mean) * lax.rsqrt(x.var((0, 2, 3), keepdims=True) + 1e-5)


def _block(conv, norm, relu):
    def block(x, w1, w2):
        y = relu(norm(conv(x, w1)))
        return relu(norm(conv(y, w2)) + x)

    return block


FASTNN_BLOCK = _block(
    lambda x, w: fj.conv2d(x, w, None, 1, 1),
    lambda x: fj.batch_norm(x, training=True)[0],
    fj.relu,
)
LAX_BLOCK = _block(
    lambda x, w: lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)]), _bn, jax.nn.relu
)


def resnet_calls(batch: int = 16, channels: int = 64, size: int = 56):
    """Zero-argument callables, one jitted forward + backward step of each block."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, channels, size, size)).astype(np.float32))
    w1, w2 = (
        jnp.asarray(rng.standard_normal((channels, channels, 3, 3)).astype(np.float32) * 0.05)
        for _ in range(2)
    )
    calls = {}
    for name, block in (("fastnn.jax", FASTNN_BLOCK), ("jax.lax", LAX_BLOCK)):
        step = jax.jit(jax.value_and_grad(lambda *a, b=block: jnp.sum(b(*a)), (0, 1, 2)))
        calls[name] = lambda s=step: jax.block_until_ready(s(x, w1, w2))
    return calls


def lenet_calls(batch: int = 128):
    """Zero-argument callables, one jitted LeNet-5 SGD step of each op set."""
    x, y = next(jax_lenet.batches(batch, 1, "float32"))
    calls = {}
    for name, ops in (("fastnn.jax", jax_lenet.FASTNN_OPS), ("jax.lax", jax_lenet.LAX_OPS)):
        step, params = jax_lenet.make_step(ops, 0.05), jax_lenet.init_params(0)
        calls[name] = lambda s=step, p=params: jax.block_until_ready(s(p, x, y))
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3.0, help="timing seconds per side")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    for threads in sorted({1, cores}):
        fastnn.set_num_threads(threads)
        jax.clear_caches()  # the FFI linear reads the thread count at trace time
        for name, calls in (("LeNet-5 b128", lenet_calls()), ("ResNet block", resnet_calls())):
            t = {k: m.median for k, m in measure(calls, TimingPlan(budget=args.budget)).items()}
            print(f"{name}, fastnn threads {threads}: fastnn.jax {t['fastnn.jax'] * 1e3:.1f} ms,"
                  f" jax.lax {t['jax.lax'] * 1e3:.1f} ms,"
                  f" {t['jax.lax'] / t['fastnn.jax']:.2f}x XLA CPU")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
