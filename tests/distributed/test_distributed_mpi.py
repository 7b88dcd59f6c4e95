"""fastnn.distributed under ``mpiexec -n 2`` (the mpich wheel's, on localhost).

Each test starts one short job of tests/distributed/distributed_worker.py (about two seconds) and
reads rank 0's JSON line: two processes on half of every global batch against one
process on the whole batch (float64, SGD with momentum and Adam, with and without
SyncBatchNorm, synchronous and overlapped allreduce), identical parameters on every rank,
the sampler's partition, and a raising rank ending the job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastnn.distributed import _world

WORKER = Path(__file__).with_name("distributed_worker.py")
MPIEXEC = Path(sys.executable).with_name("mpiexec")
if not MPIEXEC.exists():
    MPIEXEC = Path(shutil.which("mpiexec") or MPIEXEC)

pytestmark = pytest.mark.skipif(
    _world.launched_by_mpi(), reason="starts its own mpiexec (not from inside an MPI job)"
)


def mpiexec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _world.LAUNCHER_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    command = [str(MPIEXEC), "-n", "2", sys.executable, str(WORKER), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def results(*args: str) -> dict:
    out = mpiexec(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def equivalence() -> dict:
    return results("equivalence")


CASES = [
    f"{opt}-{bn}-{mode}"
    for opt in ("sgd", "adam")
    for bn in ("plain", "syncbn")
    for mode in ("sync", "overlap")
]


@pytest.mark.parametrize("case", CASES)
def test_two_halves_equal_the_whole_batch(equivalence, case):
    result = equivalence[case]
    assert equivalence["world_size"] == 2
    assert result["relative_difference"] <= 1e-10, result
    assert result["ranks_identical"], result
    assert result["grads_in_buckets"], result
    if case.endswith("overlap"):  # small buckets: several, started from the hooks
        assert result["buckets"] > 1
        assert result["started_in_backward"] == result["buckets"]
    else:
        assert result["buckets"] == 1 and result["started_in_backward"] == 0


def test_plain_batchnorm_keeps_per_rank_statistics(equivalence):
    assert equivalence["plain-batchnorm-differs"] > 1e-3


def test_sampler_partitions_across_ranks():
    shares = results("sampler")
    for key, epochs in shares.items():
        if key == "world_size":
            continue
        n, drop_last = int(key.split("-")[0]), key.endswith("True")
        for ranks in epochs:
            every = [i for share in ranks for i in share]
            if drop_last:
                assert sorted(every) == sorted(set(every)) and len(every) == n - n % 2
            else:
                assert set(every) == set(range(n)) and len(every) == n + n % 2
        if n > 2:
            assert epochs[0] != epochs[1]


def test_nccl_path_on_stand_ins():
    result = results("nccl")
    assert result["transport"] == "NcclTransport" and result["grad_kind"] == "_DeviceArray"
    assert result["ranks_identical"] and result["averaged"] and result["one_unique_id"]


def test_a_raising_rank_ends_the_job():
    start = time.monotonic()
    out = mpiexec("raise", timeout=60)
    assert time.monotonic() - start < 30
    assert out.returncode != 0
    assert "[rank 1]" in out.stderr and "rank 1 fails on purpose" in out.stderr
    assert "MPI_Abort" in out.stderr + out.stdout


def test_collective_timeout_aborts():
    start = time.monotonic()
    out = mpiexec("hang", "1", timeout=60)
    assert time.monotonic() - start < 30
    assert out.returncode != 0
    assert "collective timeout of 1 s" in out.stderr


def test_fastnn_train_nproc(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in _world.LAUNCHER_VARIABLES}
    command = [sys.executable, "-m", "fastnn", "train", "lenet", "--nproc", "2"]
    command += ["--epochs", "1", "--subset", "96", "--out", str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "mpiexec -n 2" in text and "(OMP_NUM_THREADS=" in text
    assert text.count("fastnn train lenet: 1 epochs") == 1  # logged by rank 0 only
    assert "2 processes" in text and text.count("epoch   1/1") == 1
    assert "processes: 2" in text and "samples_per_s_total" in text
    assert (tmp_path / "lenet.npz").exists()


def test_benchmark_script_runs(tmp_path):
    script = Path(__file__).parents[2] / "bench" / "scripts" / "distributed_step.py"
    env = {k: v for k, v in os.environ.items() if k not in _world.LAUNCHER_VARIABLES}
    command = [sys.executable, str(script), "--blocks", "1", "--rounds", "1"]
    command += ["--global-batch", "8"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout
    assert "lenet" in lines and "resnet" in lines and "processes / threads" in lines
    assert "bucketed / raw throughput" in lines and "of the communication hidden" in lines
