"""One LeNet-5 training step, fastnn.nn against PyTorch eager.

The same as ``fastnn bench --table lenet-step [options]``; the table and its options are in
fastnn/bench/tables/lenet_step.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("lenet-step")
