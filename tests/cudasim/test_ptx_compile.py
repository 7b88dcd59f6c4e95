"""Every numba-cuda kernel compiles for a real GPU (tests/cudasim/ptx_check.py).

The simulator runs kernels as Python; this check compiles each kernel, with the argument
types the host code passes, through numba's CUDA target (nopython mode, libNVVM) to PTX
for sm_80, in a subprocess without the simulator, and fails on a compile error or on
float64 arithmetic in a float32 kernel.  It needs a CUDA toolkit (libNVVM, libdevice),
not a GPU, and takes a minute or two of NVVM time, so it is opt-in:
``FASTNN_PTX_CHECK=1 NUMBA_ENABLE_CUDASIM=1 pytest tests/cudasim/test_ptx_compile.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cudasim.ptx_check import find_cuda_home, run_on_cuda_target

pytestmark = [pytest.mark.cudasim, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("ptx_check.py")


@pytest.mark.skipif(
    os.environ.get("FASTNN_PTX_CHECK") != "1",
    reason="opt-in (a minute or two of NVVM compiles): set FASTNN_PTX_CHECK=1",
)
def test_every_kernel_compiles_to_ptx():
    if find_cuda_home() is None:
        pytest.skip("no CUDA toolkit with libNVVM and libdevice (set CUDA_HOME)")
    result = run_on_cuda_target([str(SCRIPT), "--cc", "8.0"], timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "kernel specialisations" in result.stdout
