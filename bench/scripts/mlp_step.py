"""The course notes' MLP training steps, fastnn.nn against PyTorch eager.

The same as ``fastnn bench --table mlp-step [options]``; the table and its options are in
fastnn/bench/tables/mlp_step.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("mlp-step")
