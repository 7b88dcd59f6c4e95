"""conv1d / conv2d and their backward on the numba-cuda backend (simulator), both
algorithms, against the reference backend."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

import fastnn
from fastnn import _autotune
from fastnn._backends.numba_cuda import conv as conv_host
from tests.cudasim.devices import check, dev, device_layouts, host

pytestmark = pytest.mark.cudasim

F32 = np.float32
ALGOS = ["im2col", "direct"]


@dataclass(frozen=True)
class Case:
    """One convolution: input shape, out channels, kernel, and the parameters."""

    shape: tuple[int, ...]
    out_channels: int
    kernel: tuple[int, ...]
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1

    @property
    def nd(self) -> int:
        return len(self.kernel)

    @property
    def params(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)  # fmt: skip

    def arrays(self, rng, dtype=F32):
        x = rng.standard_normal(self.shape).astype(dtype)
        w_shape = (self.out_channels, self.shape[1] // self.groups, *self.kernel)
        w = rng.standard_normal(w_shape).astype(dtype)
        b = rng.standard_normal(self.out_channels).astype(dtype)
        return x, w, b


CASES = {
    "2d-pad": Case((2, 2, 4, 5), 3, (3, 2), padding=1),
    "2d-stride-dilation-groups": Case((1, 4, 6, 5), 2, (2, 3), (2, 1), (1, 0), (1, 2), 2),
    "2d-same-even-dilated": Case((1, 2, 5, 5), 2, (2, 2), padding="same", dilation=2),
    "2d-pointwise-groups": Case((2, 4, 3, 3), 4, (1, 1), groups=2),
    "2d-empty-batch": Case((0, 2, 4, 4), 3, (2, 2)),
    "1d-stride-pad": Case((2, 3, 9), 2, (3,), stride=2, padding=2),
    "1d-depthwise-same": Case((1, 3, 7), 3, (4,), padding="same", groups=3),
}


def _ops(nd):
    return getattr(fastnn, f"conv{nd}d"), getattr(fastnn, f"conv{nd}d_backward")


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_backward(rng, name, algo):
    case = CASES[name]
    forward, backward = _ops(case.nd)
    x, w, b = case.arrays(rng)
    want = forward(x, w, b, **case.params, backend="reference")
    check(forward(dev(x), dev(w), dev(b), **case.params, algo=algo), want, "forward")
    gy = rng.standard_normal(want.shape).astype(F32)
    want = backward(gy, x, w, **case.params, backend="reference")
    got = backward(dev(gy), dev(x), dev(w), **case.params, algo=algo)
    check(got, want, "backward")


@pytest.mark.parametrize("algo", ALGOS)
def test_strided_inputs_no_bias_and_untouched_inputs(rng, algo):
    case = CASES["2d-pad"]
    x, w, _ = case.arrays(rng)
    want = fastnn.conv2d(x, w, None, **case.params, backend="reference")
    for (layout, dx), (_, dw) in zip(device_layouts(x), device_layouts(w)):
        before = host(dx), host(dw)
        check(fastnn.conv2d(dx, dw, None, **case.params, algo=algo), want, layout)
        np.testing.assert_array_equal(host(dx), before[0])
        np.testing.assert_array_equal(host(dw), before[1])


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, False), (False, False, True)])
@pytest.mark.parametrize("algo", ALGOS)
def test_output_mask(rng, algo, mask):
    case = CASES["1d-stride-pad"]
    x, w, _ = case.arrays(rng)
    y = fastnn.conv1d(x, w, **case.params, backend="reference")
    gy = rng.standard_normal(y.shape).astype(F32)
    want = fastnn.conv1d_backward(gy, x, w, **case.params, output_mask=mask, backend="reference")
    got = fastnn.conv1d_backward(dev(gy), dev(x), dev(w), **case.params, algo=algo,
                                 output_mask=mask)  # fmt: skip
    check(got, want, str(mask))


def test_im2col_in_chunks_of_one_image(rng, monkeypatch):
    """A column budget too small for two images: one chunk per image, the weight
    gradient accumulated over the chunks."""
    monkeypatch.setattr(conv_host, "COLUMN_BUDGET", 1)
    case = Case((3, 2, 4, 5), 3, (2, 2), padding=1, groups=1)
    x, w, b = case.arrays(rng)
    want = fastnn.conv2d(x, w, b, **case.params, backend="reference")
    check(fastnn.conv2d(dev(x), dev(w), dev(b), **case.params, algo="im2col"), want, "forward")
    gy = rng.standard_normal(want.shape).astype(F32)
    want = fastnn.conv2d_backward(gy, x, w, **case.params, backend="reference")
    got = fastnn.conv2d_backward(dev(gy), dev(x), dev(w), **case.params, algo="im2col")
    check(got, want, "backward")


def test_auto_and_float64(rng):
    case = CASES["2d-stride-dilation-groups"]
    x, w, b = case.arrays(rng, np.float64)
    want = fastnn.conv2d(x, w, b, **case.params, backend="reference")
    check(fastnn.conv2d(dev(x), dev(w), dev(b), **case.params), want, "auto, float64")
    gy = rng.standard_normal(want.shape)
    want = fastnn.conv2d_backward(gy, x, w, **case.params, backend="reference")
    check(fastnn.conv2d_backward(dev(gy), dev(x), dev(w), **case.params), want, "backward")


def _numba_entries(cache) -> dict[str, str]:
    """The numba-cuda entries of an autotune cache file, without the machine context."""
    from fastnn import _machine

    prefix = _machine.context() + "|"
    entries = json.loads(cache.read_text())["entries"]
    assert all(k.startswith(prefix) for k in entries)
    return {
        k[len(prefix) :]: v
        for k, v in entries.items()
        if k[len(prefix) :].startswith("numba-cuda:")
    }


def test_auto_goes_through_the_autotune_cache(rng, tmp_path):
    """With autotuning on, "auto" times both algorithms once per pass (forward, input and
    weight gradients), stores the winner under a numba-cuda key and reuses it."""
    cache = tmp_path / "autotune.json"
    fastnn.autotune(True, cache=cache)
    case = CASES["2d-pad"]
    x, w, b = case.arrays(rng)
    want = fastnn.conv2d(x, w, b, **case.params, backend="reference")
    gy = rng.standard_normal(want.shape).astype(F32)
    want_grads = fastnn.conv2d_backward(gy, x, w, **case.params, backend="reference")
    with _autotune.recording() as first:
        check(fastnn.conv2d(dev(x), dev(w), dev(b), **case.params), want, "forward")
        got = fastnn.conv2d_backward(dev(gy), dev(x), dev(w), **case.params)
        check(got, want_grads, "backward")
    entries = _numba_entries(cache)
    passes = sorted(k.split("|")[1] for k in entries)
    assert passes == ["pass=forward", "pass=input", "pass=weight"]
    assert set(entries.values()) <= {"im2col", "direct"}
    for key in entries:
        assert key.startswith("numba-cuda:conv2d|")
        assert key.endswith("|dtype=float32|threads=0|device=sm52")  # the simulator's GPU
    assert sorted(first.timed) == sorted(entries) == sorted(first.choices)
    with _autotune.recording() as again:
        check(fastnn.conv2d(dev(x), dev(w), dev(b), **case.params), want, "forward again")
    assert again.timed == [] and list(again.choices) == [k for k in entries if "forward" in k]


def test_auto_with_autotuning_off_takes_the_prior(rng, tmp_path, monkeypatch):
    cache = tmp_path / "autotune.json"
    fastnn.autotune(False, cache=cache)
    ran = []
    monkeypatch.setattr(conv_host, "direct_forward", _counted(conv_host.direct_forward, ran))
    monkeypatch.setattr(conv_host, "im2col_forward", _counted(conv_host.im2col_forward, ran))
    case = CASES["1d-stride-pad"]  # K = 3 * 3 = 9 < DIRECT_BELOW: the prior says direct
    x, w, b = case.arrays(rng)
    want = fastnn.conv1d(x, w, b, **case.params, backend="reference")
    with _autotune.recording() as record:
        check(fastnn.conv1d(dev(x), dev(w), dev(b), **case.params), want, "forward")
    assert ran == ["direct_forward"] and record.choices == {} and not cache.exists()


def _counted(function, calls: list):
    def run(*args):
        calls.append(function.__name__)
        return function(*args)

    return run


@pytest.mark.parametrize("algo", ["winograd", "winograd2", "winograd4", "winograd6"])
def test_winograd_is_refused_with_value_error(rng, algo):
    x, w, _ = (dev(a) for a in Case((1, 2, 5, 5), 2, (3, 3)).arrays(rng))
    gy = dev(rng.standard_normal((1, 2, 3, 3)).astype(F32))
    message = rf"algo='{algo}' is implemented on the cpu backend only; use 'auto', 'im2col' or"
    with pytest.raises(ValueError, match=rf"^conv2d: {message} 'direct' on numba-cuda$"):
        fastnn.conv2d(x, w, algo=algo)
    with pytest.raises(ValueError, match=rf"^conv2d_backward: {message}"):
        fastnn.conv2d_backward(gy, x, w, algo=algo)


@pytest.mark.parametrize("activation", ["relu", "relu6"])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("name", ["2d-pad", "2d-pointwise-groups", "1d-stride-pad"])
def test_fused_activation(rng, name, algo, activation):
    """activation= fused in the direct kernel's store and in the GEMM epilogue (with the
    bias, and without): the reference convolution, then the activation; NaN stays NaN."""
    case = CASES[name]
    forward = _ops(case.nd)[0]
    x, w, b = case.arrays(rng)
    x, b = 3 * x, 3 * b  # outputs below 0 and above 6
    x.reshape(-1)[1] = np.nan
    for bias in (b, None):
        ref = forward(x, w, bias, **case.params, backend="reference").astype(np.float64)
        want = np.maximum(ref, 0) if activation == "relu" else np.minimum(np.maximum(ref, 0), 6)
        assert np.isnan(want).any() and (want == 0).any()
        got = forward(dev(x), dev(w), None if bias is None else dev(bias), **case.params,
                      algo=algo, activation=activation)  # fmt: skip
        check(got, want.astype(F32), f"{activation} bias={bias is not None}")
        np.testing.assert_array_equal(np.isnan(host(got)), np.isnan(want))
