"""The CPU dense family (gemm, linear, sensitivity, elementwise, overhead)
against numpy / OpenBLAS.

The same as ``fastnn bench --table dense [options]``; the table and its options are in
fastnn/bench/tables/dense.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("dense")
