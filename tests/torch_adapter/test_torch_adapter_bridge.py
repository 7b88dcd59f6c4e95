"""fastnn.torch's tensor bridge: zero-copy in both directions (strides kept), dtype and
device errors, and torch staying optional for ``import fastnn``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.utils import import_torch

torch = pytest.importorskip("torch")
import_torch()

from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402

import fastnn.torch as ft  # noqa: E402
from fastnn.torch import _bridge, _conv  # noqa: E402


def _pointer(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(3, 4),
        lambda: torch.randn(4, 3).t(),  # transposed
        lambda: torch.randn(5, 8)[1:4, ::2],  # offset and strided
        lambda: torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last),
        lambda: torch.randn(3, 1).expand(3, 4),  # stride 0
        lambda: torch.randn(0, 4),
        lambda: torch.randn(3, 4, dtype=torch.float64, requires_grad=True),
        lambda: torch.nn.Parameter(torch.randn(2, 3)),
    ],
)
def test_tensor_to_array_is_a_view(make):
    t = make()
    a = _bridge.to_array("op", "x", t)
    assert isinstance(a, np.ndarray)
    assert a.shape == tuple(t.shape) and a.dtype == t.detach().numpy().dtype
    if t.numel():  # (an empty array's strides are not meaningful)
        assert a.strides == tuple(s * t.element_size() for s in t.stride())
        assert _pointer(a) == t.data_ptr()
        assert np.shares_memory(a, t.detach().numpy())
        np.testing.assert_array_equal(a, t.detach().numpy())


def test_array_to_tensor_is_a_view():
    a = np.arange(12.0).reshape(3, 4)
    t = _bridge.to_tensor(a)
    assert t.data_ptr() == _pointer(a) and t.shape == (3, 4) and t.dtype == torch.float64
    a[1, 2] = -1.0
    assert t[1, 2].item() == -1.0
    assert _bridge.to_tensor(np.float32(2.5)).shape == ()  # numpy scalar: a 0-d tensor


def test_read_only_array_is_copied():
    a = np.ones(4, dtype=np.float32)
    a.flags.writeable = False
    t = _bridge.to_tensor(a)
    assert t.data_ptr() != _pointer(a)
    t += 1  # must not write into read-only memory
    assert a.sum() == 4


def test_ops_see_views_and_return_views(monkeypatch):
    """conv2d hands fastnn views of the tensors (a strided one included) and returns a
    view of fastnn's result."""
    seen = {}
    real = _conv._FORWARD[2]

    def spy(x, w, b, *args, **kwargs):
        seen.update(x=x, w=w, b=b)
        seen["y"] = real(x, w, b, *args, **kwargs)
        return seen["y"]

    monkeypatch.setitem(_conv._FORWARD, 2, spy)
    x = torch.randn(2, 3, 6, 5).transpose(2, 3)  # non-contiguous
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(4)
    y = ft.conv2d(x, w, b)
    for name, t in (("x", x), ("w", w), ("b", b)):
        assert _pointer(seen[name]) == t.data_ptr(), name
        assert np.shares_memory(seen[name], t.detach().numpy()), name
    assert not seen["x"].flags.c_contiguous
    assert y.data_ptr() == _pointer(seen["y"])


def test_dtype_and_device_checks():
    assert _bridge.runs_here(torch.ones(2)) and _bridge.runs_here(torch.ones(2).double())
    assert not _bridge.runs_here(torch.ones(2, dtype=torch.float16))
    assert not _bridge.runs_here(torch.ones(2, device="meta"))
    with pytest.raises(TypeError, match="op: x must be a float32 or float64 tensor"):
        _bridge.to_array("op", "x", torch.ones(2, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="op: t must be an integer"):
        _bridge.to_array("op", "t", torch.ones(2), indices=True)
    assert _bridge.to_array("op", "t", torch.arange(3), indices=True).dtype == np.int64


def test_cuda_tensor_without_cupy_raises_runtime_error(monkeypatch):
    """A CUDA tensor (a fake one: no GPU needed) without CuPy: a clear RuntimeError, and
    the drop-in modules would fall back to torch."""
    monkeypatch.setattr(_bridge, "has_cupy", lambda: False)
    with FakeTensorMode():
        x = torch.empty(2, 3, device="cuda")
    assert not _bridge.runs_here(x)
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        _bridge.to_array("op", "x", x)


def test_import_fastnn_does_not_import_torch():
    code = (
        "import sys, fastnn, fastnn.nn, fastnn.optim; fastnn.backends(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_adapter_uses_the_real_torch():
    """Inside fastnn/torch/, ``import torch`` is PyTorch, not the package itself."""
    assert _bridge.torch is torch
    assert Path(torch.__file__).parent.name == "torch"
    assert "fastnn" not in Path(torch.__file__).parts


@pytest.mark.parametrize("nd", [1, 2])
def test_eager_layers_hand_fastnn_memoisable_parameters(nd, monkeypatch):
    """Conv and pooling through the adapter pass their integer parameters as tuples, so
    fastnn's geometry memo serves every call after the first (a list cannot key it: each
    call would validate afresh); forward and backward, with ints, tuples and lists given."""
    from fastnn._geometry import _memo

    unkeyed = []
    real = _memo.memoised

    def spy(memo, build, args):
        if _memo.memo_key(args) is None:
            unkeyed.append((build.__name__, args))
        return real(memo, build, args)

    monkeypatch.setattr(_memo, "memoised", spy)
    size = (9,) * nd
    x = torch.randn(2, 3, *size, requires_grad=True)
    w = torch.randn(4, 3, *(3,) * nd, requires_grad=True)
    conv = getattr(ft, f"conv{nd}d")
    max_pool, avg_pool = getattr(ft, f"max_pool{nd}d"), getattr(ft, f"avg_pool{nd}d")
    for stride in (2, (2,) * nd, [2] * nd):
        y = conv(x, w, None, stride, [1] * nd, (1,) * nd)
        y = max_pool(y, [2] * nd, None, 0) + avg_pool(y, 2, [2] * nd, (0,) * nd)
        y.sum().backward()
    assert unkeyed == []
    assert _memo.memo_key(([1],)) is None  # what the spy would have caught
