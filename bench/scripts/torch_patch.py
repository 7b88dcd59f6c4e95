"""Whole torch models with and without fastnn.torch.patch.

The same as ``fastnn bench --table torch-patch [options]``; the table and its options are in
fastnn/bench/tables/torch_patch.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("torch-patch")
