"""A physics-informed network (PINN) for the damped harmonic oscillator of the course notes.

The case: ``x'' + gamma x' + omega^2 x = 0`` on ``t`` in [0, 1] with ``x(0) = 1``,
``x'(0) = 0``, ``gamma = 4``, ``omega = 20`` (under-damped: about three periods, the
amplitude falling to e^-2).  Its exact solution is
``x(t) = exp(-gamma t / 2) (cos(w t) + gamma / (2 w) sin(w t))`` with
``w = sqrt(omega^2 - gamma^2 / 4)``.

The network ``x(t)``: an MLP 1 -> 32 -> 32 -> 32 -> 1 of tanh layers, run by fastnn's
kernels through :func:`fastnn.torch.linear` (``activation="tanh"``), or, with
``backend="torch"``, by ``torch.nn.functional`` (the same model and weights, to compare
the time per step).  ``x'`` and ``x''`` come from ``torch.autograd.grad(...,
create_graph=True)`` with respect to ``t``, so each step differentiates through the
layers three times (fastnn's backward functions must be twice differentiable).

The loss is the notes' ``L_cc + L_fisica`` in dimensionless form, as if time were
``t' = omega t``: the residual is divided by ``omega^2`` and the velocity by ``omega``.
Unweighted, the squared residual is up to ``omega^4`` times larger than the
initial-condition terms, which favours ``x = 0``: a solution of the equation that
ignores the initial conditions.  Weighted so::

    loss = (x(0) - x0)^2 + ((x'(0) - v0) / omega)^2 + mean_i (r(t_i) / omega^2)^2

over ``batch_size`` collocation points ``t_i`` evenly spaced on [0, 1].  Adam for
``epochs`` steps (full batch; lr decays tenfold over the run), then up to ``lbfgs``
L-BFGS iterations (default: as many as ``epochs``; fewer once the loss stops falling).
The time per step of both backends is measured at the end (fastnn.bench's timing).

``inverse=True``: ``gamma`` becomes a trained parameter (starting at 1), learned from 40
observations of the exact solution with Gaussian noise of 1% of ``max|x|``; the loss is
the mean squared misfit of the observations plus the residual term (no initial
conditions).  Targets: max |x - exact| <= 1e-2 on a 1001-point grid, and ``gamma``
within 5% for the inverse problem.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.examples._training import TrainConfig

NAME = "pinn"
HELP = (
    "a physics-informed MLP for the damped oscillator x'' + g x' + w^2 x = 0 "
    "(epochs: Adam steps, batch size: collocation points)"
)
DEFAULTS = {"epochs": 2000, "batch_size": 128, "lr": 1e-2}
#: the oscillator: x0, v0, gamma, omega
CASE = {"x0": 1.0, "v0": 0.0, "gamma": 4.0, "omega": 20.0}
WIDTHS = (1, 32, 32, 32, 1)
TARGET_ERROR = 1e-2
TARGET_GAMMA = 0.05  # relative error of the inverse problem's gamma
OBSERVATIONS = 40
NOISE = 0.01  # of max|x|
GRID = 1001
BACKENDS = ("fastnn", "torch")
#: dest name -> default of the options ``fastnn train pinn`` adds (see add_arguments)
OPTIONS = {"inverse": False, "backend": "fastnn", "lbfgs": None}


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise RuntimeError("the pinn example needs PyTorch: pip install 'fastnn[torch]'") from exc
    return torch


def exact(t: np.ndarray, x0: float, v0: float, gamma: float, omega: float) -> np.ndarray:
    """The under-damped oscillator's solution at times ``t`` (needs ``gamma < 2 omega``)."""
    if not 0 <= gamma < 2 * omega:
        raise ValueError(f"exact: needs 0 <= gamma < 2 omega, got gamma={gamma}, omega={omega}")
    w = math.sqrt(omega**2 - gamma**2 / 4)
    b = (v0 + gamma / 2 * x0) / w
    return np.exp(-gamma * t / 2) * (x0 * np.cos(w * t) + b * np.sin(w * t))


def _count(text: str) -> int:
    import argparse

    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def add_arguments(group: Any) -> None:
    """The pinn options of ``fastnn train`` (an argparse group; defaults None = unset)."""
    group.add_argument(
        "--inverse",
        action="store_true",
        default=None,
        help="estimate gamma from 40 noisy observations (history.json gamma_estimate)",
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        help="run the MLP on fastnn.torch functions or plain torch (default fastnn)",
    )
    group.add_argument(
        "--lbfgs",
        type=_count,
        metavar="STEPS",
        help="L-BFGS iterations after Adam, 0 for none (default: as many as --epochs)",
    )


def build_model(rng: Any = None, dtype: Any = np.float64, backend: str = "fastnn") -> Any:
    """The MLP ``x(t)`` (a torch module; Xavier-initialised from ``rng``)."""
    return _network_class()(WIDTHS, np.random.default_rng(rng), dtype, backend)


def _network_class() -> type:
    torch = _torch()

    class OscillatorNet(torch.nn.Module):
        """MLP of tanh layers on ``2 t - 1``; ``backend`` picks fastnn.torch or torch."""

        def __init__(self, widths, rng, dtype, backend):
            super().__init__()
            if backend not in BACKENDS:
                raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
            self.backend = backend
            torch_dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
            self.weights = torch.nn.ParameterList()
            self.biases = torch.nn.ParameterList()
            for fan_in, fan_out in zip(widths[:-1], widths[1:]):
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                w = rng.uniform(-bound, bound, (fan_out, fan_in))
                self.weights.append(torch.nn.Parameter(torch.tensor(w, dtype=torch_dtype)))
                self.biases.append(torch.nn.Parameter(torch.zeros(fan_out, dtype=torch_dtype)))

        def forward(self, t):
            h = 2.0 * t - 1.0
            last = len(self.weights) - 1
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                activation = "tanh" if i < last else None
                h = _linear(self.backend)(h, w, b, activation)
            return h

        def save(self, path: str | Path) -> None:
            """Write the weights to an ``.npz`` file."""
            arrays = {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}
            with open(path, "wb") as handle:
                np.savez(handle, **arrays)

        def load(self, path: str | Path) -> Any:
            """Read weights written by :meth:`save`."""
            with np.load(path, allow_pickle=False) as data:
                state = {k: torch.from_numpy(data[k]) for k in data.files}
            self.load_state_dict(state)
            return self

    return OscillatorNet


def _linear(backend: str) -> Callable[..., Any]:
    torch = _torch()
    if backend == "fastnn":
        import fastnn.torch

        def fastnn_linear(h, w, b, activation):
            return fastnn.torch.linear(h, w, b, activation=activation)

        return fastnn_linear

    def torch_linear(h, w, b, activation):
        y = torch.nn.functional.linear(h, w, b)
        return torch.tanh(y) if activation == "tanh" else y

    return torch_linear


def derivatives(model: Any, t: Any) -> tuple[Any, Any, Any]:
    """``x, x', x''`` at ``t`` (which must require grad), kept differentiable."""
    torch = _torch()
    x = model(t)
    (dx,) = torch.autograd.grad(x, t, torch.ones_like(x), create_graph=True)
    (ddx,) = torch.autograd.grad(dx, t, torch.ones_like(dx), create_graph=True)
    return x, dx, ddx


@dataclass
class Problem:
    """The loss of the forward or inverse problem, and the tensors it uses."""

    model: Any
    collocation: Any
    omega: float
    gamma: float
    x0: float = 1.0
    v0: float = 0.0
    observations: tuple[Any, Any] | None = None
    log_gamma: Any = None  # the inverse problem's trained log(gamma): gamma stays positive
    parts: dict[str, float] = field(default_factory=dict)

    def current_gamma(self) -> Any:
        """gamma: the given float, or exp(log_gamma) (a tensor) in the inverse problem."""
        return self.gamma if self.log_gamma is None else _torch().exp(self.log_gamma)

    def gamma_value(self) -> float:
        """gamma as a float."""
        return float(self.gamma if self.log_gamma is None else np.exp(self.log_gamma.item()))

    def loss(self) -> Any:
        """The total loss; its parts (as floats) are left in :attr:`parts`."""
        torch = _torch()
        x, dx, ddx = derivatives(self.model, self.collocation)
        residual = (ddx + self.current_gamma() * dx + self.omega**2 * x) / self.omega**2
        physics = torch.mean(residual**2)
        if self.observations is None:
            t0 = torch.zeros((1, 1), dtype=x.dtype, requires_grad=True)
            x_start, v_start, _ = derivatives(self.model, t0)
            start = (x_start - self.x0) ** 2 + ((v_start - self.v0) / self.omega) ** 2
            data = start.sum()
            name = "initial"
        else:
            t_obs, x_obs = self.observations
            data = torch.mean((self.model(t_obs) - x_obs) ** 2)
            name = "data"
        total = data + physics
        self.parts = {
            "loss": float(total.detach()),
            name: float(data.detach()),
            "physics": float(physics.detach()),
        }
        return total


@dataclass
class Record:
    """The loss (and its parts), the error on the grid and gamma, every few steps."""

    steps: list[int] = field(default_factory=list)
    optimizer: list[str] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    max_abs_error: list[float] = field(default_factory=list)
    gamma: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def phase(self, name: str) -> dict[str, list]:
        """The entries of one optimizer ("adam" or "lbfgs") as lists: ``epochs`` (steps,
        counted on from Adam's for L-BFGS), ``train_loss`` and the loss's parts,
        ``max_abs_error``, ``gamma`` and ``seconds`` since the start."""
        rows = [i for i, optimizer in enumerate(self.optimizer) if optimizer == name]
        columns = {"epochs": self.steps, "max_abs_error": self.max_abs_error}
        columns.update({f"train_{key}": values for key, values in self.parts.items()})
        columns.update({"gamma": self.gamma, "seconds": self.seconds})
        return {key: [values[i] for i in rows] for key, values in columns.items()}

    def add(self, step: int, optimizer: str, problem: Problem, error: float, seconds: float):
        self.steps.append(step)
        self.optimizer.append(optimizer)
        for key, value in problem.parts.items():
            self.parts.setdefault(key, []).append(value)
        self.max_abs_error.append(error)
        self.gamma.append(problem.gamma_value())
        self.seconds.append(seconds)


def _grid_error(model: Any, grid: Any, truth: np.ndarray) -> float:
    torch = _torch()
    with torch.no_grad():
        return float(np.max(np.abs(model(grid).numpy().ravel() - truth)))


def _train(problem: Problem, params: list, config: TrainConfig, lbfgs: int, grid, truth):
    """Adam for ``config.epochs`` steps, then ``lbfgs`` L-BFGS iterations; the Record."""
    torch = _torch()
    record = Record()
    every = max(1, config.epochs // 20)
    start = time.perf_counter()
    adam = torch.optim.Adam(params, lr=config.lr)
    decay = torch.optim.lr_scheduler.ExponentialLR(adam, 0.1 ** (1.0 / max(config.epochs, 1)))

    def log(step: int, name: str) -> None:
        error = _grid_error(problem.model, grid, truth)
        record.add(step, name, problem, error, time.perf_counter() - start)
        gamma = f"  gamma {problem.gamma_value():.4f}" if problem.observations else ""
        config.log(
            f"{name} step {step:5d}  loss {problem.parts['loss']:.3e}  "
            f"max |x - exact| {error:.2e}{gamma}  ({record.seconds[-1]:.1f} s)"
        )

    for step in range(1, config.epochs + 1):
        adam.zero_grad()
        problem.loss().backward()
        adam.step()
        decay.step()
        if step == 1 or step % every == 0 or step == config.epochs:
            log(step, "adam")
    if lbfgs > 0:
        _lbfgs(problem, params, lbfgs, lambda done: log(config.epochs + done, "lbfgs"))
    return record


def _lbfgs(problem: Problem, params: list, iterations: int, log: Callable[[int], None]):
    """Up to ``iterations`` L-BFGS iterations (strong Wolfe line search) in 10 rounds,
    logging after each; stops early when L-BFGS stops (its tolerances met) or a round
    lowers the loss by less than 0.1%."""
    torch = _torch()
    chunk = max(1, math.ceil(iterations / 10))
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=chunk,
        history_size=50,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = problem.loss()
        loss.backward()
        return loss

    done = 0
    before = problem.loss().item()
    while done < iterations:
        group = optimizer.param_groups[0]
        group["max_iter"] = min(chunk, iterations - done)
        group["max_eval"] = 25 * group["max_iter"]  # the line search's most: never binds
        optimizer.step(closure)
        iterations_run = optimizer.state[optimizer._params[0]]["n_iter"] - done
        done += iterations_run
        problem.loss()  # the parts at the current weights
        log(done)
        after = problem.parts["loss"]
        if iterations_run < group["max_iter"] or after > (1 - 1e-3) * before:  # converged
            break
        before = after


def step_times(model: Any, problem: Problem, params: list) -> dict[str, float | None]:
    """Median seconds per training step (loss, three-fold backward) on each backend, timed
    alternately by fastnn.bench (same weights, same collocation points); None for a
    backend that failed (fastnn.torch without double backward)."""
    from fastnn.bench.timing import TimingPlan, measure

    original = model.backend

    def step(backend: str) -> Callable[[], None]:
        def run() -> None:
            model.backend = backend
            for p in params:
                p.grad = None
            problem.loss().backward()

        return run

    try:
        results = measure(
            {name: step(name) for name in BACKENDS},
            TimingPlan(budget=0.5, repeats=9, min_runs=3),
        )
    finally:
        model.backend = original
        for p in params:
            p.grad = None
    return {name: (result.median if result.ok else None) for name, result in results.items()}


def run(
    config: TrainConfig,
    inverse: bool = False,
    backend: str = "fastnn",
    lbfgs: int | None = None,
) -> dict[str, Any]:
    """Train the PINN (forward problem, or ``inverse``: estimate gamma), write the figures
    and history.json into ``config.out``; returns the summary."""
    torch = _torch()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    lbfgs = config.epochs if lbfgs is None else lbfgs
    if isinstance(lbfgs, bool) or not isinstance(lbfgs, int) or lbfgs < 0:
        raise ValueError(f"lbfgs must be a non-negative integer, got {lbfgs!r}")
    if config.device != "cpu":
        raise RuntimeError("the pinn example runs on the CPU only (--device cpu)")
    if getattr(config, "parallel", None) is not None:
        raise RuntimeError("the pinn example runs in one process (no --nproc)")
    if backend == "fastnn":
        _check_double_backward()
    # tensors of 128 x 32: torch's intra-op threads add only synchronisation, and under
    # load from other processes their spinning makes a step ten times slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _solve(config, inverse, backend, lbfgs)
    finally:
        torch.set_num_threads(threads)


def _solve(config: TrainConfig, inverse: bool, backend: str, lbfgs: int) -> dict[str, Any]:
    torch = _torch()
    torch.manual_seed(config.seed)
    x0, v0, gamma, omega = (CASE[key] for key in ("x0", "v0", "gamma", "omega"))
    dtype = torch.float64
    model = build_model(config.rng(0), np.float64, backend)
    n = config.batch_size
    collocation = torch.linspace(0.0, 1.0, n, dtype=dtype).reshape(-1, 1).requires_grad_(True)
    grid_np = np.linspace(0.0, 1.0, GRID)
    truth = exact(grid_np, x0, v0, gamma, omega)
    grid = torch.tensor(grid_np, dtype=dtype).reshape(-1, 1)
    params = list(model.parameters())
    problem = Problem(model, collocation, omega, gamma, x0, v0)
    observations = None
    if inverse:
        rng = config.rng(4)
        t_obs = np.sort(rng.uniform(0.0, 1.0, OBSERVATIONS))
        sigma = NOISE * float(np.max(np.abs(truth)))
        x_obs = exact(t_obs, x0, v0, gamma, omega) + rng.normal(0.0, sigma, OBSERVATIONS)
        observations = (t_obs, x_obs)
        problem.log_gamma = torch.nn.Parameter(torch.zeros((), dtype=dtype))  # gamma = 1
        params.append(problem.log_gamma)
        problem.observations = tuple(
            torch.tensor(a, dtype=dtype).reshape(-1, 1) for a in observations
        )
    what = f"inverse problem: gamma from {OBSERVATIONS} observations" if inverse else "forward"
    config.log(
        f"damped oscillator x0={x0:g} v0={v0:g} gamma={gamma:g} omega={omega:g} on [0, 1], "
        f"{what}; MLP {'-'.join(map(str, WIDTHS))} tanh on {backend}, {n} collocation points"
    )
    record = _train(problem, params, config, lbfgs, grid, truth)
    with torch.no_grad():
        prediction = model(grid).numpy().ravel()
    error = float(np.max(np.abs(prediction - truth)))
    times = step_times(model, problem, params)
    config.log(
        "time per training step: "
        + ", ".join(
            f"{name} " + ("failed" if value is None else f"{value * 1e3:.2f} ms")
            for name, value in times.items()
        )
    )
    summary: dict[str, Any] = {
        "example": NAME,
        "problem": "inverse" if inverse else "forward",
        "case": dict(CASE),
        "backend": backend,
        "max_abs_error": round(error, 6),
        "seconds_per_step": {
            name: None if value is None else round(value, 6) for name, value in times.items()
        },
    }
    if inverse:
        estimate = problem.gamma_value()
        relative = abs(estimate - gamma) / gamma
        summary["gamma_estimate"] = round(estimate, 5)
        summary["gamma_relative_error"] = round(relative, 5)
        summary["target"] = f"gamma within {TARGET_GAMMA:.0%} of {gamma:g}"
        summary["reached"] = bool(relative <= TARGET_GAMMA)
    else:
        summary["target"] = f"max |x - exact| <= {TARGET_ERROR:g} on {GRID} points"
        summary["reached"] = bool(error <= TARGET_ERROR)
    return _write(model, record, summary, config, grid_np, truth, prediction, observations)


def _check_double_backward() -> None:
    """RuntimeError unless fastnn.torch's linear + tanh can be differentiated twice."""
    torch = _torch()
    import fastnn.torch

    t = torch.zeros((2, 1), dtype=torch.float64, requires_grad=True)
    w = torch.ones((2, 1), dtype=torch.float64)
    y = fastnn.torch.linear(t, w, None, activation="tanh").sum()
    try:
        (dy,) = torch.autograd.grad(y, t, create_graph=True)
        torch.autograd.grad(dy.sum(), t)
    except RuntimeError as exc:
        raise RuntimeError(
            "the fastnn backend needs fastnn.torch functions that are twice "
            f"differentiable, and these are not ({exc}); run with --backend torch"
        ) from exc


def _write(model, record, summary, config, grid, truth, prediction, observations):
    config.out.mkdir(parents=True, exist_ok=True)
    weights = config.out / f"{NAME}.npz"
    model.save(weights)
    summary["weights"] = str(weights)
    figure = config.out / f"{NAME}_curves.png"
    if _plot(record, summary, figure, grid, truth, prediction, model, observations, config):
        summary["figure"] = str(figure)
    summary["train_seconds"] = round(record.seconds[-1], 2) if record.seconds else 0.0
    history = record.phase("adam")
    history["lbfgs"] = record.phase("lbfgs")
    path = config.out / f"{NAME}_history.json"
    path.write_text(json.dumps({"summary": summary, "history": history}, indent=1))
    summary["history"] = str(path)
    return summary


def _plot(record, summary, path, grid, truth, prediction, model, observations, config) -> bool:
    """Prediction against the exact solution (with the collocation points and any
    observations) and the loss history, side by side; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        config.log("(no figure: matplotlib is not installed; pip install 'fastnn[train]')")
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(grid, truth, "k-", lw=2, alpha=0.4, label="exact")
    left.plot(grid, prediction, "C0--", label="PINN")
    t_col = np.linspace(0.0, 1.0, config.batch_size)
    left.plot(t_col, np.full_like(t_col, float(truth.min()) * 1.15), "|", color="C2", ms=6)
    left.plot([], [], "|", color="C2", label="collocation points")
    if observations is not None:
        left.plot(*observations, "o", color="C3", ms=4, label="observations")
    left.set_xlabel("t")
    left.set_ylabel("x(t)")
    title = f"max |x - exact| = {summary['max_abs_error']:.2e}"
    if "gamma_estimate" in summary:
        title += f", gamma = {summary['gamma_estimate']:.4f} (true {CASE['gamma']:g})"
    left.set_title(title)
    left.legend(fontsize=8)
    for key, values in record.parts.items():
        right.plot(record.steps, values, label=key)
    right.plot(record.steps, record.max_abs_error, "k:", label="max |x - exact|")
    if "lbfgs" in record.optimizer:
        switch = record.steps[record.optimizer.index("lbfgs") - 1]
        right.axvline(switch, color="grey", lw=0.8, ls="--", label="Adam -> L-BFGS")
    right.set_yscale("log")
    right.set_xlabel("step (Adam, then L-BFGS iterations)")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    figure.suptitle(f"PINN, damped oscillator ({summary['problem']} problem)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
