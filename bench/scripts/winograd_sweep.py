"""The Winograd kernel's blocking, swept on this CPU.

The same as ``fastnn bench --table winograd [options]``; the table and its options are in
fastnn/bench/tables/winograd.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("winograd")
