"""A training step beside another job on the same cores.

The same as ``fastnn bench --table co-tenancy [options]``; the table and its options are in
fastnn/bench/tables/co_tenancy.py (``--help`` lists them).
"""

from fastnn.bench.tables import run_script

if __name__ == "__main__":
    run_script("co-tenancy")
