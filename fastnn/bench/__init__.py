"""The benchmark harness behind ``fastnn bench`` and the pytest-benchmark suites in bench/.

A *case* is one op on one shape (:class:`~fastnn.bench.case.Case`): its family, flop and
byte counts, a function that makes its input arrays, and the implementations to compare
(fastnn's backends and algorithms, and the peers: NumPy/OpenBLAS, SciPy, PyTorch, CuPy).

Modules, in the order data flows through them:

- ``shapes``   the shape tables (docs/BENCHMARKS.md plus small dispatch-overhead cases)
- ``peers``    which peer libraries and fastnn backends can run here, and why not
- ``case``     the Case / Impl records and moving a case's arrays to a device
- ``cases_*``  one module per op family that turns shapes into cases
- ``catalog``  every family's cases for a suite ("tiny", "quick", "full")
- ``roofline`` the machine's measured sgemm GFLOP/s and copy GB/s (and the probes
               of them between families)
- ``timing``   fair timing: warm-up, interleaved blocks, median and best
- ``runner``   runs the cases, calling back between families
- ``report``   markdown, JSON and ``--compare``: fastnn's default path vs each peer,
               a peer's anomalies, and whether the machine was busy;  ``plots``: the
               PNG figures
- ``tables``   the focused tables of ``fastnn bench --table NAME`` (conv, pool, dense,
               training steps, model layers, the sweep, the GPU smoke test...), built on
               the same cases and timing; bench/scripts/ holds their entry points
"""
