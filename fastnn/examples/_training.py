"""The training loop, progress display and learning-curve plot shared by the examples.

Each example builds its data, model, loss and optimizer, then calls :func:`fit`, which
runs mini-batch epochs (a tqdm progress bar per epoch when stderr is a terminal, and one
summary line per epoch always), evaluates on the held-out split after each epoch, and
returns the history that :func:`plot_history` draws.  tqdm and matplotlib come with
``pip install 'fastnn[train]'``; without them the examples still train (no bar, no
figure) and say what is missing.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastnn import nn
from fastnn.nn._array import namespace, to_device, to_numpy

__all__ = ["Split", "TrainConfig", "fit", "plot_history", "predict", "write_outputs"]


@dataclass
class TrainConfig:
    """The options every example takes (``fastnn train NAME --help``)."""

    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    device: str = "cpu"
    out: Path = Path("fastnn-train")
    subset: int | None = None
    progress: bool = True
    log: Callable[[str], None] = print
    #: data parallelism across MPI ranks (fastnn.distributed.training.DataParallel)
    parallel: Any = None

    def rng(self, stream: int = 0) -> np.random.Generator:
        """A generator for one purpose (data, weights, shuffling...), derived from the seed."""
        return np.random.default_rng([self.seed, stream])


@dataclass
class Split:
    """Inputs and targets of one split, on the training device."""

    x: Any
    y: Any

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: np.ndarray) -> Split:
        if namespace(self.x) is not np:
            index = namespace(self.x).asarray(index)
        return Split(self.x[index], self.y[index])

    def to(self, device: str) -> Split:
        return Split(to_device(self.x, device), to_device(self.y, device))


@dataclass
class History:
    """Per-epoch losses and metric values of both splits."""

    metric: str
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    test_metric: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _interactive(stream: Any = None) -> bool:
    """Whether ``stream`` (default: stderr, where tqdm draws) is a terminal.  A bar redraws
    its line with carriage returns: in a log file or a pipe that makes one line of many
    kilobytes, so there the per-epoch summary lines are the only progress shown."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _progress(iterable: Iterable, total: int, description: str, enabled: bool):
    # in Jupyter, tqdm.auto draws a widget, not carriage returns
    if not enabled or not (_interactive() or "ipykernel" in sys.modules):
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=description, leave=False, unit="batch")


def predict(model: nn.Module, x: Any, batch_size: int) -> Any:
    """The model's outputs for ``x`` in eval mode, batch by batch."""
    model.eval()
    parts = [model(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
    return namespace(x).concatenate(parts) if parts else model(x)


def fit(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: Any,
    train: Split,
    test: Split,
    config: TrainConfig,
    metric: tuple[str, Callable[[Any, Any], float]],
    cosine: bool = False,
    augment: Callable[[Any, np.random.Generator], Any] | None = None,
) -> History:
    """Train for ``config.epochs`` epochs of shuffled mini-batches and log one line per
    epoch: the training loss and metric are averaged over the epoch's batches (as they
    were computed, in training mode), the test ones computed after the epoch in eval
    mode.  With ``cosine`` the learning rate follows a half cosine from its initial value
    towards zero over the run (set per epoch), which settles the final weights.
    ``augment(x, rng)`` (optional) transforms each training batch's inputs."""
    metric_name, metric_fn = metric
    history = History(metric=metric_name)
    shuffle = config.rng(stream=2)
    batches = math.ceil(len(train) / config.batch_size)
    if config.progress and _interactive() and "tqdm" not in sys.modules:  # say why no bar
        try:
            import tqdm  # noqa: F401
        except ImportError:
            config.log("(no progress bar: tqdm is not installed; pip install 'fastnn[train]')")
    base_rates = [group["lr"] for group in getattr(optimizer, "param_groups", [])]
    parallel = config.parallel
    if parallel is not None:
        parallel.prepare(model)
    for epoch in range(1, config.epochs + 1):
        if cosine:
            factor = 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / config.epochs))
            for group, rate in zip(optimizer.param_groups, base_rates):
                group["lr"] = rate * factor
        start = time.perf_counter()
        model.train()
        order = shuffle.permutation(len(train))
        bar = _progress(range(batches), batches, f"epoch {epoch}/{config.epochs}", config.progress)
        loss_sum = metric_sum = 0.0
        for index in bar:
            rows = order[index * config.batch_size : (index + 1) * config.batch_size]
            batch = train.take(rows if parallel is None else parallel.shard(rows))
            inputs = batch.x if augment is None else augment(batch.x, shuffle)
            outputs = model(inputs)
            loss = criterion(outputs, batch.y)
            model.backward(criterion.backward(), need_input_grad=False)
            if parallel is not None:
                parallel.reduce(model)
            optimizer.step()
            optimizer.zero_grad()
            loss_sum += float(to_numpy(loss)) * len(batch)
            metric_sum += metric_fn(to_numpy(outputs), to_numpy(batch.y)) * len(batch)
            if hasattr(bar, "set_postfix"):
                seen = min((index + 1) * config.batch_size, len(train))
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        if hasattr(bar, "close"):
            bar.close()
        if parallel is not None:
            loss_sum, metric_sum = parallel.sum(loss_sum, metric_sum)
        seconds = time.perf_counter() - start
        test_loss, test_metric = _evaluate(model, criterion, test, config, metric_fn)
        history.epochs.append(epoch)
        history.train_loss.append(loss_sum / len(train))
        history.test_loss.append(test_loss)
        history.train_metric.append(metric_sum / len(train))
        history.test_metric.append(test_metric)
        history.seconds.append(seconds)
        config.log(
            f"epoch {epoch:3d}/{config.epochs}  loss {history.train_loss[-1]:.4f} / "
            f"{test_loss:.4f}  {metric_name} {history.train_metric[-1]:.4f} / "
            f"{test_metric:.4f}  (train / test, {seconds:.1f} s)"
        )
    return history


def _evaluate(model, criterion, split: Split, config: TrainConfig, metric_fn):
    outputs = predict(model, split.x, max(config.batch_size, 256))
    loss = float(to_numpy(criterion(outputs, split.y)))
    return loss, float(metric_fn(to_numpy(outputs), to_numpy(split.y)))


def random_shift(limit: int) -> Callable[[Any, np.random.Generator], Any]:
    """An ``augment`` for images in an empty frame: roll the batch by up to ``limit``
    pixels along H and W (one random shift per batch, cheap on any device)."""

    def shift(x: Any, rng: np.random.Generator) -> Any:
        dy, dx = (int(v) for v in rng.integers(-limit, limit + 1, 2))
        return namespace(x).roll(x, (dy, dx), axis=(2, 3)) if dy or dx else x

    return shift


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest logit is the label."""
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else math.nan


def digit_splits(config: TrainConfig, size: int, border: int = 0) -> tuple[Split, Split]:
    """The training and test splits (80 / 20) of scikit-learn's digits at ``size`` x
    ``size`` (``border`` pixels of frame, :func:`datasets.digits`), standardised by the
    training images, on ``config.device``; logs their sizes."""
    from fastnn.examples import datasets

    images, labels = datasets.digits(size, border=border)
    (x_train, y_train), (x_test, y_test) = datasets.split(
        images, labels, 0.2, config.rng(1), config.subset
    )
    x_train, x_test = datasets.standardize(x_train, x_test, axis=None)
    config.log(
        f"digits: {len(x_train)} training and {len(x_test)} test images, 1 x {size} x {size}"
    )
    return Split(x_train, y_train).to(config.device), Split(x_test, y_test).to(config.device)


def fit_classifier(
    model: nn.Module, optimizer: Any, train: Split, test: Split, config: TrainConfig, **options
) -> History:
    """:func:`fit` with the cross-entropy loss and accuracy as the metric; ``options``:
    fit's ``cosine`` and ``augment``."""
    return fit(
        model, nn.CrossEntropyLoss(), optimizer, train, test, config, ("accuracy", accuracy),
        **options,
    )  # fmt: skip


def accuracy_summary(name: str, final: float, target: float, **extra: Any) -> dict[str, Any]:
    """An example's summary: its name, the final test accuracy, ``extra`` entries, and
    whether the accuracy reached ``target``."""
    return {
        "example": name,
        "test_accuracy": round(final, 4),
        **extra,
        "target": f"test accuracy >= {target}",
        "reached": bool(final >= target),
    }


def plot_history(history: History, path: Path, title: str, log: Callable[[str], None]) -> bool:
    """Loss and metric per epoch, train and test, as a PNG; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("(no figure: matplotlib is not installed; pip install 'fastnn[train]')")
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    size = 5 if len(history.epochs) <= 20 else 0  # markers only when they can be told apart
    for axis, key, label in ((left, "loss", "loss"), (right, "metric", history.metric)):
        train, test = getattr(history, f"train_{key}"), getattr(history, f"test_{key}")
        axis.plot(history.epochs, train, "o-", markersize=size, label="train")
        axis.plot(history.epochs, test, "s-", markersize=size, label="test")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    left.set_yscale("log")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write_outputs(
    name: str,
    model: nn.Module,
    history: History,
    summary: dict[str, Any],
    config: TrainConfig,
    title: str,
) -> dict[str, Any]:
    """Save the learning curves (PNG), the history and summary (JSON) and the trained
    weights (.npz) under ``config.out``; returns the summary with the file paths.  In a
    data-parallel run only rank 0 writes (the other ranks return the summary as is)."""
    if config.parallel is not None and not config.parallel.is_main:
        return dict(summary)
    config.out.mkdir(parents=True, exist_ok=True)
    figure = config.out / f"{name}_curves.png"
    weights = config.out / f"{name}.npz"
    record = config.out / f"{name}_history.json"
    summary = dict(summary)
    if plot_history(history, figure, title, config.log):
        summary["figure"] = str(figure)
    model.save(weights)
    summary["weights"] = str(weights)
    summary["train_seconds"] = round(sum(history.seconds), 2)
    record.write_text(json.dumps({"summary": summary, "history": history.as_dict()}, indent=1))
    summary["history"] = str(record)
    return summary
