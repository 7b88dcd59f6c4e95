"""Every public op over a grid of shapes against PyTorch, slowest first.

The same as ``fastnn bench --table sweep [options]``; the table and its options are in
fastnn/bench/tables/sweep.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("sweep")
