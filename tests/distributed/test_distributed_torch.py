"""PyTorch users: models patched onto fastnn (fastnn.torch.patch) train under
torch.distributed's DistributedDataParallel with the gloo backend, world size 2 on the
CPU, and end equal to one process trained on the whole batch (float64)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

WORKER = Path(__file__).with_name("torch_ddp_worker.py")


def test_ddp_gloo_with_patched_model(tmp_path):
    out = tmp_path / "params.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ranks = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), "2", str(tmp_path / "init"), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for rank in range(2)
    ]
    logs = []
    for process in ranks:
        try:
            logs.append(process.communicate(timeout=180)[0])
        except subprocess.TimeoutExpired:
            for other in ranks:
                other.kill()
            raise
    assert all(p.returncode == 0 for p in ranks), "\n".join(logs)
    with np.load(out) as saved:
        ranks_params, reference = saved["ranks"], saved["reference"]
    np.testing.assert_array_equal(ranks_params[0], ranks_params[1])
    np.testing.assert_allclose(ranks_params[0], reference, rtol=1e-10, atol=1e-12)
