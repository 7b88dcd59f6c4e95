"""Every optimizer step equals torch.optim's, for several steps and every option, on each
CPU backend; the update ops validate their in-place arguments."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
import fastnn.optim as optim
from fastnn.nn import Parameter
from tests.utils import import_torch, layouts, requires_torch

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-3, "maximize": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "eps": 1e-4}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1}),
    ("Adadelta", {"maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True, "betas": (0.3, 0.6)}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
]

TOL = {np.float64: 1e-12, np.float32: 2e-6}


def _case_id(case):
    name, options = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in options.items())


@requires_torch
@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_steps_match_torch(rng, case, dtype, backend):
    torch = import_torch()
    name, options = case
    shapes = [(3, 4), (5,), (2, 1, 3)]
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = [Parameter(v.copy()) for v in values]
    tensors = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    ours = getattr(optim, name)(params, **options)
    theirs = getattr(torch.optim, name)(tensors, **options)
    with fastnn.use_backend(backend):
        for step in range(6):
            for p, t in zip(params, tensors):
                grad = rng.standard_normal(p.shape).astype(dtype)
                p.grad = grad
                t.grad = torch.tensor(grad.copy())
            ours.step()
            theirs.step()
            for index, (p, t) in enumerate(zip(params, tensors)):
                np.testing.assert_allclose(
                    p.data,
                    t.detach().numpy(),
                    rtol=TOL[dtype],
                    atol=TOL[dtype],
                    err_msg=f"{name} step {step} param {index}",
                )
                assert p.data.dtype == dtype


@requires_torch
def test_param_groups_and_skipped_parameters(rng):
    torch = import_torch()
    values = [rng.standard_normal(4) for _ in range(3)]
    params = [Parameter(v.copy()) for v in values]
    tensors = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    ours = optim.SGD(
        [{"params": params[:2], "lr": 0.5}, {"params": params[2:]}], lr=0.1, momentum=0.9
    )
    theirs = torch.optim.SGD(
        [{"params": tensors[:2], "lr": 0.5}, {"params": tensors[2:]}], lr=0.1, momentum=0.9
    )
    for step in range(3):
        for index, (p, t) in enumerate(zip(params, tensors)):
            if index == 1 and step == 1:  # no gradient this step: skipped by both
                p.grad = t.grad = None
                continue
            grad = rng.standard_normal(4)
            p.grad, t.grad = grad, torch.tensor(grad)
        ours.step()
        theirs.step()
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)


def test_frozen_parameters_and_zero_grad(rng):
    frozen = Parameter(np.ones(3), requires_grad=False)
    free = Parameter(np.ones(3))
    opt = optim.Adam([frozen, free], lr=0.1)
    frozen.grad = free.grad = np.ones(3)
    opt.step()
    np.testing.assert_array_equal(frozen.data, np.ones(3))
    assert np.all(free.data < 1)
    opt.zero_grad()
    assert frozen.grad is None and free.grad is None


def test_updates_are_in_place_and_grad_layout_free(rng):
    for name, grad in layouts(rng.standard_normal((4, 5))):
        param = rng.standard_normal((4, 5))
        m, v = np.zeros_like(param), np.zeros_like(param)
        want_p, want_m, want_v = param.copy(), m.copy(), v.copy()
        optim.adam_update(
            want_p, np.ascontiguousarray(grad), want_m, want_v, step=1, backend="reference"
        )
        before = id(param)
        optim.adam_update(param, grad, m, v, step=1, backend="cpu")
        assert id(param) == before
        np.testing.assert_allclose(param, want_p, rtol=1e-14, err_msg=name)
        np.testing.assert_allclose(m, want_m, rtol=1e-14, err_msg=name)
        np.testing.assert_allclose(v, want_v, rtol=1e-14, err_msg=name)


def test_cpu_matches_reference_on_large_arrays(rng, dtype):
    """Large enough for the OpenMP path of the CPU kernels."""
    n = 100_003
    calls = {
        "sgd": lambda p, g, s, be: optim.sgd_update(
            p, g, s[0], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, backend=be
        ),
        "adagrad": lambda p, g, s, be: optim.adagrad_update(
            p, g, s[0], lr=0.1, step=3, lr_decay=0.1, backend=be
        ),
        "rmsprop": lambda p, g, s, be: optim.rmsprop_update(
            p, g, s[0], s[1], s[2], lr=0.01, momentum=0.9, centered=True, backend=be
        ),
        "adadelta": lambda p, g, s, be: optim.adadelta_update(p, g, s[0], s[1], backend=be),
        "adam": lambda p, g, s, be: optim.adam_update(
            p, g, s[0], s[1], s[2], step=2, amsgrad=True, weight_decay=0.1, backend=be
        ),
    }
    for name, call in calls.items():
        results = {}
        for backend in ("cpu", "reference"):
            local = np.random.default_rng(1)
            param = local.standard_normal(n).astype(dtype)
            states = [np.zeros(n, dtype) for _ in range(3)]
            for _ in range(3):
                call(param, local.standard_normal(n).astype(dtype), states, backend)
            results[backend] = [param, *states]
        tol = {np.float32: 1e-4, np.float64: 1e-12}[dtype]
        for got, want in zip(results["cpu"], results["reference"]):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)


def test_empty_parameters(rng):
    param = np.zeros((0, 3))
    optim.adam_update(param, np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), step=1)
    optim.sgd_update(param, param.copy(), lr=0.1)


def _adam_args(shape=(3, 4), dtype=np.float64):
    return [np.zeros(shape, dtype) for _ in range(4)]


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda a: a.__setitem__(0, np.zeros((4, 3)).T), ValueError, "C-contiguous"),
        (lambda a: a.__setitem__(2, np.zeros((4, 3)).T), ValueError, "C-contiguous"),
        (lambda a: a.__setitem__(1, np.zeros((3, 5))), ValueError, "shape"),
        (lambda a: a.__setitem__(3, np.zeros((3, 4), np.float32)), TypeError, "dtype"),
        (lambda a: a.__setitem__(1, np.zeros((3, 4), np.int64)), TypeError, "float32"),
        (lambda a: a.__setitem__(2, a[0]), ValueError, "share memory"),
        (lambda a: a.__setitem__(1, a[0][:, :]), ValueError, "share memory"),
        (lambda a: a[0].setflags(write=False), ValueError, "read-only"),
        (lambda a: a.__setitem__(0, [[0.0] * 4] * 3), TypeError, "array"),
    ],
)
def test_update_rejects_bad_arrays(mutate, error, match):
    arrays = _adam_args()
    mutate(arrays)
    with pytest.raises(error, match=match):
        optim.adam_update(*arrays, step=1)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda a: optim.adam_update(*a[:4], step=0), "step"),
        (lambda a: optim.adam_update(*a[:4], step=1, lr=-1), "lr"),
        (lambda a: optim.adam_update(*a[:4], step=1, beta1=1.0), "beta1"),
        (lambda a: optim.adam_update(*a[:4], step=1, eps=float("nan")), "eps"),
        (lambda a: optim.adam_update(*a[:4], step=1, amsgrad=True), "max_exp_avg_sq"),
        (lambda a: optim.sgd_update(*a[:2], lr=0.1, momentum=0.9), "momentum_buffer"),
        (lambda a: optim.sgd_update(*a[:3], lr=0.1, nesterov=True), "nesterov"),
        (lambda a: optim.rmsprop_update(*a[:3], lr=0.1, centered=True), "grad_avg"),
        (lambda a: optim.adadelta_update(*a[:4], rho=1.5), "rho"),
        (lambda a: optim.adagrad_update(*a[:3], lr=0.1, step=1, lr_decay=-1), "lr_decay"),
    ],
)
def test_update_rejects_bad_options(call, match):
    with pytest.raises(ValueError, match=match):
        call(_adam_args())


def test_update_rejects_bad_option_types():
    arrays = _adam_args()
    with pytest.raises(TypeError, match="step"):
        optim.adam_update(*arrays[:4], step=1.0)
    with pytest.raises(TypeError, match="amsgrad"):
        optim.adam_update(*arrays[:4], step=1, amsgrad="yes")
    with pytest.raises(TypeError, match="lr"):
        optim.sgd_update(*arrays[:2], lr="0.1")


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda p: optim.SGD([], lr=0.1), ValueError),
        (lambda p: optim.SGD([np.zeros(3)], lr=0.1), TypeError),
        (lambda p: optim.SGD([p, p], lr=0.1), ValueError),
        (lambda p: optim.SGD([p], lr=-0.1), ValueError),
        (lambda p: optim.SGD([p], lr=0.1, nesterov=True), ValueError),
        (lambda p: optim.SGD([{"params": [p], "lr": 0.1, "betas": (0.9, 0.9)}]), ValueError),
        (lambda p: optim.Adam([p], betas=(0.9,)), ValueError),
        (lambda p: optim.Adam([p], betas=(0.9, 1.0)), ValueError),
        (lambda p: optim.RMSprop([p], alpha=-1), ValueError),
        (lambda p: optim.Adadelta([p], rho=2), ValueError),
        (lambda p: optim.Adagrad([p], eps=-1), ValueError),
    ],
)
def test_optimizer_constructor_errors(make, error):
    with pytest.raises(error):
        make(Parameter(np.zeros(3)))


def test_optimizer_step_runs_closure_and_repr():
    param = Parameter(np.ones(2))

    def closure():
        param.grad = 2 * param.data
        return float(np.sum(param.data**2))

    opt = optim.SGD([param], lr=0.25)
    assert opt.step(closure) == 2.0
    np.testing.assert_allclose(param.data, [0.5, 0.5])
    assert "SGD" in repr(opt) and "lr=0.25" in repr(opt)


@pytest.mark.parametrize(
    "name, options",
    [
        ("SGD", {"lr": 0.1, "momentum": 0.9}),
        ("Adagrad", {"lr": 0.1}),
        ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
        ("Adadelta", {}),
        ("Adam", {"lr": 0.01, "amsgrad": True}),
    ],
)
def test_state_dict_resumes_training(rng, name, options):
    values = [rng.standard_normal(s) for s in ((3, 2), (4,))]
    grads = [[rng.standard_normal(v.shape) for v in values] for _ in range(5)]
    first = [Parameter(v.copy()) for v in values]
    opt = getattr(optim, name)(first, **options)
    for step in range(3):
        for p, g in zip(first, grads[step]):
            p.grad = g
        opt.step()
    saved = opt.state_dict()
    second = [Parameter(p.data.copy()) for p in first]
    resumed = getattr(optim, name)(second, lr=123.0)  # options come from the state dict
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for step in range(3, 5):
        for params, o in ((first, opt), (second, resumed)):
            for p, g in zip(params, grads[step]):
                p.grad = g
            o.step()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="parameters"):
        getattr(optim, name)(second[:1]).load_state_dict(saved)
