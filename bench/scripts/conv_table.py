"""Convolution timing table: fastnn's CPU algorithms against PyTorch CPU.

The same as ``fastnn bench --table conv [options]``; the table and its options are in
fastnn/bench/tables/conv.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("conv")
