"""Every convolution layer of a network against PyTorch CPU.

The same as ``fastnn bench --table model-convs [options]``; the table and its options are in
fastnn/bench/tables/model_convs.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("model-convs")
