"""The public optimizer update ops (fastnn.sgd_update ... with their hyperparameter
dataclasses): the dataclasses' checks and derived scalars, single steps against
torch.optim and the float64 reference on the CPU backends, and the argument errors."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import _dispatch
from tests.utils import import_torch, requires_torch

HYPERS = {
    "sgd_update": fastnn.SGDHyper,
    "adagrad_update": fastnn.AdagradHyper,
    "rmsprop_update": fastnn.RMSpropHyper,
    "adadelta_update": fastnn.AdadeltaHyper,
    "adam_update": fastnn.AdamHyper,
}

# (torch optimizer, its options, our op, our hyperparameters, state arrays the op takes)
CASES = [
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}, "sgd_update",
     fastnn.SGDHyper(lr=0.1, weight_decay=0.1), 0),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "maximize": True}, "sgd_update",
     fastnn.SGDHyper(lr=0.1, momentum=0.9, dampening=0.3, maximize=True), 1),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, "sgd_update",
     fastnn.SGDHyper(lr=0.1, momentum=0.9, nesterov=True), 1),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.2, "weight_decay": 0.1}, "adagrad_update",
     fastnn.AdagradHyper(lr=0.1, lr_decay=0.2, weight_decay=0.1), 1),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.5},
     "rmsprop_update", fastnn.RMSpropHyper(lr=0.01, alpha=0.9, centered=True, momentum=0.5), 3),
    ("RMSprop", {"lr": 0.01, "maximize": True}, "rmsprop_update",
     fastnn.RMSpropHyper(lr=0.01, maximize=True), 1),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}, "adadelta_update",
     fastnn.AdadeltaHyper(lr=0.5, rho=0.8, weight_decay=0.1), 2),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}, "adam_update",
     fastnn.AdamHyper(lr=0.01, beta1=0.8, beta2=0.99, weight_decay=0.1), 2),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True}, "adam_update",
     fastnn.AdamHyper(lr=0.01, amsgrad=True, maximize=True), 3),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}, "adam_update",
     fastnn.AdamHyper(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), 2),
]  # fmt: skip

SHAPES = [(7, 13), (1,), (3, 1, 5)]
TOL = {np.float64: 1e-12, np.float32: 2e-6}


def _run(op, hyper, param, grad, states, step, backend):
    """One update through the public op with the per-step arguments it takes."""
    extra = {}
    if op in ("adam_update", "adagrad_update"):
        extra["step"] = step
    if op == "sgd_update":
        extra["first_step"] = step == 1
    getattr(fastnn, op)(param, grad, *states, hyper=hyper, backend=backend, **extra)


def _case_id(case):
    return f"{case[0]}-" + "-".join(f"{k}={v}" for k, v in case[1].items())


@requires_torch
@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_steps_match_torch(rng, case, dtype, backend):
    torch = import_torch()
    name, options, op, hyper, count = case
    for shape in SHAPES:
        value = rng.standard_normal(shape).astype(dtype)
        param = value.copy()
        states = [np.zeros(shape, dtype) for _ in range(count)]
        tensor = torch.tensor(value.copy(), requires_grad=True)
        theirs = getattr(torch.optim, name)([tensor], **options)
        for step in range(1, 4):
            grad = rng.standard_normal(shape).astype(dtype)
            tensor.grad = torch.tensor(grad.copy())
            theirs.step()
            _run(op, hyper, param, grad, states, step, backend)
            np.testing.assert_allclose(
                param, tensor.detach().numpy(), rtol=TOL[dtype], atol=TOL[dtype],
                err_msg=f"{name} {shape} step {step}",
            )  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_cpu_matches_reference_with_strided_gradients(rng, case, dtype):
    """The CPU kernels against the float64 reference; the gradient is a reversed,
    transposed view (read through its strides, never written)."""
    _, _, op, hyper, count = case
    shape = (9, 5)
    start = rng.standard_normal(shape).astype(dtype)
    results = {}
    for backend in ("cpu", "reference"):
        local = np.random.default_rng(7)
        param = start.copy()
        states = [np.zeros(shape, dtype) for _ in range(count)]
        for step in range(1, 4):
            grad = local.standard_normal(shape[::-1]).astype(dtype)[::-1].T
            kept = grad.copy()
            _run(op, hyper, param, grad, states, step, backend)
            np.testing.assert_array_equal(grad, kept)
        results[backend] = [param, *states]
    tol = {np.float32: 1e-5, np.float64: 1e-13}[dtype]
    for got, want in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_hyper_defaults_are_torchs():
    assert fastnn.AdamHyper() == fastnn.AdamHyper(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
    assert fastnn.AdagradHyper().lr == 1e-2 and fastnn.AdagradHyper().eps == 1e-10
    assert fastnn.RMSpropHyper().alpha == 0.99 and fastnn.RMSpropHyper().lr == 1e-2
    assert fastnn.AdadeltaHyper() == fastnn.AdadeltaHyper(lr=1.0, rho=0.9, eps=1e-6)
    assert fastnn.SGDHyper().lr == 1e-3


def test_hyper_fields_are_stored_as_float_and_bool_and_frozen():
    hyper = fastnn.AdamHyper(lr=1, beta1=np.float32(0.5), amsgrad=np.bool_(True))
    assert type(hyper.lr) is float and type(hyper.beta1) is float
    assert hyper.amsgrad is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        hyper.lr = 0.5  # type: ignore[misc]
    assert hash(hyper) == hash(fastnn.AdamHyper(lr=1.0, beta1=0.5, amsgrad=True))


def test_derived_scalars():
    adam = fastnn.AdamHyper(lr=0.1, beta1=0.8, beta2=0.9, weight_decay=0.5, maximize=True)
    s = adam.scalars(3)
    assert s.step_size == pytest.approx(0.1 / (1 - 0.8**3), rel=1e-15)
    assert s.bias2_sqrt == pytest.approx(math.sqrt(1 - 0.9**3), rel=1e-15)
    assert (s.shrink, s.rest1, s.rest2, s.sign) == (1 - 0.05, 1 - 0.8, 1 - 0.9, -1.0)
    assert adam.scalars(1).step_size == pytest.approx(0.1 / 0.2)
    assert fastnn.AdagradHyper(lr=0.3, lr_decay=0.5).scalars(3).lr == pytest.approx(0.15)
    sgd = fastnn.SGDHyper(lr=0.2, momentum=0.9, dampening=0.25).scalars()
    assert (sgd.lr, sgd.momentum, sgd.keep, sgd.sign) == (0.2, 0.9, 0.75, 1.0)
    assert fastnn.RMSpropHyper(alpha=0.75).scalars().rest == 0.25
    assert fastnn.AdadeltaHyper(rho=0.75).scalars().rest == 0.25


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: fastnn.SGDHyper(lr=-0.1), ValueError, "SGDHyper: lr must be >= 0"),
        (lambda: fastnn.SGDHyper(lr="0.1"), TypeError, "lr"),
        (lambda: fastnn.SGDHyper(lr=True), TypeError, "lr"),
        (lambda: fastnn.SGDHyper(momentum=float("inf")), ValueError, "momentum must be finite"),
        (lambda: fastnn.SGDHyper(dampening=1.5), ValueError, "dampening"),
        (lambda: fastnn.SGDHyper(nesterov=True), ValueError, "nesterov"),
        (lambda: fastnn.SGDHyper(momentum=0.9, dampening=0.1, nesterov=True), ValueError,
         "nesterov"),
        (lambda: fastnn.SGDHyper(maximize=1), TypeError, "maximize"),
        (lambda: fastnn.AdagradHyper(lr_decay=-1), ValueError, "lr_decay"),
        (lambda: fastnn.AdagradHyper(eps=float("nan")), ValueError, "eps"),
        (lambda: fastnn.RMSpropHyper(alpha=-0.5), ValueError, "alpha"),
        (lambda: fastnn.RMSpropHyper(centered="yes"), TypeError, "centered"),
        (lambda: fastnn.AdadeltaHyper(rho=1.01), ValueError, "rho"),
        (lambda: fastnn.AdadeltaHyper(weight_decay=-1e-3), ValueError, "weight_decay"),
        (lambda: fastnn.AdamHyper(beta1=1.0), ValueError, "beta1"),
        (lambda: fastnn.AdamHyper(beta2=-0.1), ValueError, "beta2"),
        (lambda: fastnn.AdamHyper(eps=None), TypeError, "eps"),
        (lambda: fastnn.AdamHyper(decoupled_weight_decay=0), TypeError, "decoupled_weight_decay"),
    ],
)  # fmt: skip
def test_hyper_rejects_bad_fields(make, error, match):
    with pytest.raises(error, match=match):
        make()


def _arrays(count, shape=(3, 4), dtype=np.float64):
    return [np.zeros(shape, dtype) for _ in range(count)]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda a: fastnn.adam_update(*a[:4], hyper=fastnn.SGDHyper(), step=1), TypeError,
         "hyper must be a AdamHyper"),
        (lambda a: fastnn.adam_update(*a[:4], hyper={"lr": 0.1}, step=1), TypeError, "hyper"),
        (lambda a: fastnn.adam_update(*a[:4], hyper=fastnn.AdamHyper(), step=0), ValueError,
         "step must be >= 1"),
        (lambda a: fastnn.adagrad_update(*a[:3], hyper=fastnn.AdagradHyper(), step=1.0),
         TypeError, "step must be an int"),
        (lambda a: fastnn.adam_update(*a[:4], hyper=fastnn.AdamHyper(amsgrad=True), step=1),
         ValueError, "max_exp_avg_sq"),
        (lambda a: fastnn.sgd_update(*a[:2], hyper=fastnn.SGDHyper(momentum=0.5)), ValueError,
         "momentum_buffer"),
        (lambda a: fastnn.sgd_update(*a[:2], hyper=fastnn.SGDHyper(), first_step=1), TypeError,
         "first_step"),
        (lambda a: fastnn.rmsprop_update(*a[:3], hyper=fastnn.RMSpropHyper(centered=True)),
         ValueError, "grad_avg"),
        (lambda a: fastnn.adadelta_update(a[0], a[1].T, a[2], a[3][:, :3],
                                          hyper=fastnn.AdadeltaHyper()), ValueError, "shape"),
        (lambda a: fastnn.adadelta_update(np.asfortranarray(a[0]), *a[1:4],
                                          hyper=fastnn.AdadeltaHyper()), ValueError,
         "param is updated in place and must be C-contiguous"),
        (lambda a: fastnn.adagrad_update(a[0], a[1], a[2].astype(np.float32),
                                         hyper=fastnn.AdagradHyper(), step=1), TypeError, "dtype"),
        (lambda a: fastnn.sgd_update(a[0].astype(np.int32), a[1].astype(np.int32),
                                     hyper=fastnn.SGDHyper()), TypeError, "float32"),
        (lambda a: fastnn.adam_update(a[0], a[1], a[2], a[2], hyper=fastnn.AdamHyper(), step=1),
         ValueError, "share memory"),
    ],
)  # fmt: skip
def test_ops_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(_arrays(4))


def test_state_of_an_option_that_is_off_is_ignored(rng):
    param, grad = rng.standard_normal(5), rng.standard_normal(5)
    unused = np.full(5, 7.0)
    want = param.copy()
    fastnn.sgd_update(want, grad, hyper=fastnn.SGDHyper(lr=0.1))
    fastnn.sgd_update(param, grad, unused, hyper=fastnn.SGDHyper(lr=0.1))
    np.testing.assert_array_equal(param, want)
    np.testing.assert_array_equal(unused, 7.0)


def test_every_update_is_registered_on_the_cpu_backends_and_exported():
    assert fastnn.UPDATES == fastnn.ops.UPDATES == tuple(HYPERS)
    for op, hyper in HYPERS.items():
        assert {"cpu", "reference"} <= set(_dispatch.registered(op)), op
        assert op in fastnn.__all__ and hyper.__name__ in fastnn.__all__
        assert getattr(fastnn, hyper.__name__) is hyper


def test_updates_are_documented():
    text = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()
    for op, hyper in HYPERS.items():
        assert f"{op}(" in text and hyper.__name__ in text, op


def test_toolkit_uses_only_public_ops():
    folder = Path(fastnn.__file__).resolve().parent / "optim"
    for path in folder.glob("*.py"):
        text = path.read_text()
        assert "_dispatch" not in text and "fastnn._args" not in text, path.name


def test_optimizer_sees_options_changed_between_steps(rng):
    """The optimizers build a group's dataclass once and rebuild it when an option
    changes (a learning-rate schedule); a bad new value is refused at the next step."""
    from fastnn import optim
    from fastnn.nn import Parameter

    start, grads = rng.standard_normal(4), [rng.standard_normal(4) for _ in range(3)]
    param = Parameter(start.copy())
    opt = optim.Adam([param], lr=0.1)
    want, states = start.copy(), [np.zeros(4), np.zeros(4)]
    for step, (lr, grad) in enumerate(zip((0.1, 0.01, 0.5), grads), start=1):
        opt.param_groups[0]["lr"] = lr
        param.grad = grad
        opt.step()
        hyper = fastnn.AdamHyper(lr=lr)
        fastnn.adam_update(want, grad, *states, hyper=hyper, step=step, backend="reference")
        np.testing.assert_allclose(param.data, want, rtol=1e-13, err_msg=str(step))
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.step()


def test_functional_updates_check_options_at_every_call():
    """fastnn.optim's keyword functions cache the dataclass per option values; the cache
    must not let a bad value through (bools are not numbers, unhashable values are named)."""
    from fastnn import optim

    param, grad = np.zeros(3), np.ones(3)
    optim.sgd_update(param, grad, lr=1)
    with pytest.raises(TypeError, match="lr"):
        optim.sgd_update(param, grad, lr=True)
    with pytest.raises(TypeError, match="lr"):
        optim.sgd_update(param, grad, lr=[0.1])
    with pytest.raises(ValueError, match="lr"):
        optim.sgd_update(param, grad, lr=float("nan"))
    np.testing.assert_array_equal(param, -np.ones(3))
