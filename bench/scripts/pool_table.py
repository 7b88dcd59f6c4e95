"""Pooling on the CPU: fastnn's Cython kernels against PyTorch.

The same as ``fastnn bench --table pool [options]``; the table and its options are in
fastnn/bench/tables/pool.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("pool")
