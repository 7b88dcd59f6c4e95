"""``fastnn bench``: measure the machine's roofline, time fastnn against its peers, and
write a report (markdown, JSON, PNG plots) into ``--out``.

    env -u OPENBLAS_CORETYPE fastnn bench                   # the quick suite, 2-3 minutes
    env -u OPENBLAS_CORETYPE fastnn bench --suite full      # every shape, tens of minutes
    fastnn bench --out new --compare bench_out/results.json  # what changed since
    fastnn bench --table conv --backward    # one focused table (fastnn.bench.tables)
    fastnn bench --gpu-smoke --quick        # every op on the GPU backends vs the CPU

The harness lives in :mod:`fastnn.bench`; bench/ runs the same cases under
pytest-benchmark.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from fastnn.bench.timing import TimingPlan

HELP = "benchmark fastnn against NumPy, SciPy and PyTorch; write markdown, JSON and plots"

#: Timing per suite: seconds per implementation and case, most samples, shortest sample.
PLANS = {
    "tiny": TimingPlan(budget=0.02, repeats=3, min_sample=0.0005, min_runs=1, run_in=0.0),
    "quick": TimingPlan(budget=0.15, repeats=5, min_sample=0.003),
    "full": TimingPlan(budget=1.0, repeats=10, min_sample=0.01),
}

#: Roofline measurement per suite: sgemm size, copy MB, repeats.
ROOFLINES = {
    "tiny": {"gemm_size": 256, "copy_mbytes": 16, "repeats": 1},
    "quick": {"gemm_size": 2048, "copy_mbytes": 256, "repeats": 3},
    "full": {"gemm_size": 2048, "copy_mbytes": 512, "repeats": 5},
}

#: The roof probes before the suite, between families and after it (the report flags a
#: family during which they moved): smaller than the roofline above, about 0.5 s each on
#: 2 cores, and all alike, so that they compare with one another.
ROOF_CHECKS = {
    "tiny": {"gemm_size": 128, "copy_mbytes": 8, "repeats": 1, "settle": 0.0},
    "quick": {"gemm_size": 1024, "copy_mbytes": 128, "repeats": 5},
    "full": {"gemm_size": 2048, "copy_mbytes": 256, "repeats": 3},
}


#: How long each suite takes on a 2-core machine (the README's main command runs "quick").
QUICK_TIME = "2-3 minutes on 2 cores"
FULL_TIME = "tens of minutes on 2 cores"


def _suite(args: argparse.Namespace) -> str:
    """The suite to run: --suite, else quick (--quick says so explicitly)."""
    if args.quick and args.suite not in (None, "quick"):
        raise SystemExit(f"fastnn bench: --quick contradicts --suite {args.suite}")
    return args.suite or "quick"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fastnn.bench.catalog import DEFAULT_FAMILIES

    parser.add_argument(
        "--quick", action="store_true", help=f"same as --suite quick, the default ({QUICK_TIME})"
    )
    parser.add_argument(
        "--suite",
        choices=tuple(PLANS),
        default=None,
        help=(
            f"which suite to run (default: quick, {QUICK_TIME}; full: every shape at its "
            f"published batch size, {FULL_TIME}; tiny: a few small shapes, for tests)"
        ),
    )
    parser.add_argument("--out", default="bench_out", help="output folder")
    parser.add_argument(
        "--compare",
        metavar="OLD.json",
        help=(
            "compare with an earlier results.json (writes compare.md; a change within the "
            "noise both runs measured is marked as such)"
        ),
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=(
            "threads for fastnn, PyTorch and BLAS alike (default: fastnn's, that is "
            "OMP_NUM_THREADS or else the CPUs available)"
        ),
    )
    parser.add_argument(
        "--families",
        default=None,
        help=(
            f"comma-separated families to run (default: {', '.join(DEFAULT_FAMILIES)}; "
            "'sweep' adds every op over a grid of shapes, with its slowest cases against "
            "torch in the summary)"
        ),
    )
    for flag, kind, spec, text in (
        ("budget", float, "g", "seconds of timing per implementation and case"),
        ("repeats", int, "", "most samples per implementation and case"),
    ):
        per_suite = "; ".join(
            f"{name} {getattr(plan, flag):{spec}}" for name, plan in PLANS.items()
        )
        parser.add_argument(
            f"--{flag}", type=kind, default=None, help=f"{text} (default: {per_suite})"
        )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    _add_table_arguments(parser)
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (a bar on a terminal, one line per case otherwise)",
    )


def _add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """--table NAME [OPTIONS] and --gpu-smoke [OPTIONS]: every argument after them is the
    table's own (``fastnn bench --table conv --help`` lists those)."""
    from fastnn.bench.tables import TABLES

    parser.add_argument(
        "--table",
        nargs=argparse.REMAINDER,
        metavar="NAME [OPTIONS]",
        help=(
            f"run one benchmark table instead of the suite ({', '.join(TABLES)}); the "
            "arguments after NAME are the table's own (--table NAME --help lists them)"
        ),
    )
    parser.add_argument(
        "--gpu-smoke",
        nargs=argparse.REMAINDER,
        metavar="OPTIONS",
        help=(
            "every op on the GPU backends against the CPU backend, with timings (the same "
            "as --table gpu-smoke; --gpu-smoke --help lists its options)"
        ),
    )


def _run_table(words: list[str]) -> int:
    """Run ``--table NAME [OPTIONS]``."""
    from fastnn.bench.tables import TABLES, main_of

    if not words or words[0] not in TABLES:
        given = f" {words[0]!r}" if words else ""
        raise SystemExit(f"fastnn bench: --table{given}: expected one of {', '.join(TABLES)}")
    return int(main_of(words[0])(words[1:]) or 0)


def _machine() -> str:
    from fastnn._machine import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def _plan(args: argparse.Namespace, suite: str) -> TimingPlan:
    plan = PLANS[suite]
    if args.budget is not None:
        if args.budget <= 0:
            raise SystemExit("fastnn bench: --budget must be positive")
        plan = replace(plan, budget=args.budget)
    if args.repeats is not None:
        if args.repeats < 1:
            raise SystemExit("fastnn bench: --repeats must be at least 1")
        plan = replace(plan, repeats=args.repeats, min_runs=min(plan.min_runs, args.repeats))
    return plan


def _families(args: argparse.Namespace) -> list[str] | None:
    if not args.families:
        return None
    return [f.strip() for f in args.families.split(",") if f.strip()]


def _print_peers(env) -> dict:
    """Print what will be measured and what is skipped (and why); return it for the JSON."""
    peers = {}
    for name, (ok, detail) in env.available.items():
        peers[name] = {"available": ok, "detail": detail}
        print(f"  {'measured' if ok else 'skipped '}  {name}: {detail}")
    return peers


def _fallback_note(cases, env) -> list[str]:
    """Ops timed without ``fastnn[cpu]`` because they have no CPU kernel yet."""
    from fastnn.bench.case import fastnn_name

    if not env.has(fastnn_name("cpu")):
        return []
    missing = sorted(
        {c.op for c in cases if not any(i.name.startswith("fastnn[cpu") for i in c.impls)}
    )
    if not missing:
        return []
    return [
        "fastnn[cpu] not timed for ops without a CPU kernel (they fall back to the "
        f"reference backend): {', '.join(missing)}"
    ]


def _warn_about_openblas_coretype() -> None:
    value = os.environ.get("OPENBLAS_CORETYPE")
    if value:
        print(
            f"warning: OPENBLAS_CORETYPE={value} is set; it can slow OpenBLAS (NumPy, SciPy, "
            "fastnn's GEMM) and cannot be undone once BLAS is loaded. Run "
            "`env -u OPENBLAS_CORETYPE fastnn bench ...` for fair numbers.",
            file=sys.stderr,
        )


def _meta(
    suite: str, plan: TimingPlan, counts: dict, peers: dict, notes: list[str], load: list | None
) -> dict:
    """Everything about the run that the JSON report records besides the results;
    ``load``: the load average before the run."""
    import fastnn
    from fastnn._machine import cpu_model

    return {
        "suite": suite,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fastnn": fastnn.__version__,
        "python": platform.python_version(),
        "machine": _machine(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": load,
        "threads": counts,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "timing": {
            "budget": plan.budget,
            "repeats": plan.repeats,
            "min_runs": plan.min_runs,
            "min_sample": plan.min_sample,
        },
        "peers": peers,
        "notes": notes,
    }


def _write(doc: dict, out: Path, plots: bool, old: dict | None, old_path: str | None) -> list:
    """Write results.json, report.md, the plots and compare.md; return their paths."""
    from fastnn.bench import report

    report.write_json(doc, out / "results.json")
    (out / "report.md").write_text(report.markdown(doc))
    written = [out / "results.json", out / "report.md"]
    if plots:
        written += _plots(doc, out)
    if old is not None:
        table, changes = report.compare(old, doc)
        (out / "compare.md").write_text(table)
        written.append(out / "compare.md")
        print(
            f"compared with {old_path}: {changes['faster']} faster, {changes['slower']} "
            f"slower, {changes['same']} within noise"
        )
    return written


def _plots(doc, out: Path) -> list[Path]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install 'fastnn[bench]')")
        return []
    from fastnn.bench.plots import plot_all

    return plot_all(doc, out)


def _exit_code(doc: dict) -> int:
    """Print every implementation that failed; 1 when one of fastnn's own did."""
    from fastnn.bench.case import REFERENCE, is_subject

    failed = [r for r in doc["results"] if r["error"]]
    for r in failed:
        print(
            f"FAILED {r['family']}/{r['op']}/{r['shape']} {r['impl']}: {r['error']}",
            file=sys.stderr,
        )
    ours = [r for r in failed if is_subject(r["impl"]) or r["impl"] == REFERENCE]
    return 1 if ours else 0


def run(args: argparse.Namespace) -> int:
    if args.table is not None:
        return _run_table(args.table)
    if args.gpu_smoke is not None:
        return _run_table(["gpu-smoke", *args.gpu_smoke])
    return _run_suite(args)


def _run_suite(args: argparse.Namespace) -> int:
    import fastnn
    from fastnn.bench import report
    from fastnn.bench.allocator import steady_allocator
    from fastnn.bench.catalog import build_cases
    from fastnn.bench.peers import detect, set_threads
    from fastnn.bench.roofline import load_average, measure_roofline, roof_check
    from fastnn.bench.runner import run_cases

    start = time.perf_counter()
    load = load_average()  # before this process adds its own threads to it
    try:
        allocator = steady_allocator()  # before anything is allocated and timed
    except ValueError as exc:
        raise SystemExit(f"fastnn bench: {exc}") from None
    suite = _suite(args)
    plan = _plan(args, suite)
    old = None
    if args.compare:  # read it first: a bad file should not cost a whole run
        try:
            old = report.load(args.compare)
        except (OSError, ValueError) as exc:
            print(f"fastnn bench: cannot compare: {exc}", file=sys.stderr)
            return 2
    threads = fastnn.get_num_threads() if args.threads is None else args.threads
    if threads < 1:
        raise SystemExit("fastnn bench: --threads must be at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _warn_about_openblas_coretype()
    print(f"fastnn bench: {suite} suite, results into {out}/")
    if args.suite is None and not args.quick:
        print(
            f"(the quick suite takes {QUICK_TIME}; `fastnn bench --suite full` times every "
            f"shape at its published batch size and takes {FULL_TIME})"
        )

    env = detect()
    counts = set_threads(threads, env)
    print("threads: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("implementations:")
    peers = _print_peers(env)
    roof = measure_roofline(threads, **ROOFLINES[suite])
    print(
        f"roofline: {roof.gflops:.1f} GFLOP/s (sgemm {roof.gemm_size}^3), "
        f"{roof.gbps:.1f} GB/s (copy, {threads} threads)"
    )
    try:
        cases = build_cases(suite, env, _families(args))
    except ValueError as exc:
        raise SystemExit(f"fastnn bench: {exc}") from None
    notes = [f"allocator: {allocator}", *_fallback_note(cases, env)]
    for note in notes:
        print(note)
    print(f"{len(cases)} cases, {plan.min_runs}-{plan.repeats} samples per implementation")

    probe = ROOF_CHECKS[suite]
    checks = []
    if cases:
        checks.append(roof_check(threads, None, cases[0].family, started=start, **probe))

    def between(after: str, before: str | None) -> None:
        checks.append(roof_check(threads, after, before, started=start, **probe))

    results = run_cases(cases, plan, args.seed, progress=not args.no_progress, between=between)
    meta = _meta(suite, plan, counts, peers, notes, load)
    doc = report.document(results, roof, meta, checks)
    written = _write(doc, out, not args.no_plots, old, args.compare)
    _print_checks(checks)
    summary = report.markdown_summary(doc)
    if summary:
        print(summary)
    print(f"wrote {', '.join(str(p) for p in written)} in {time.perf_counter() - start:.0f} s")
    for line in report.busy_warning(doc):  # again, last, where it cannot be missed
        print(f"{line} See 'Was the machine quiet?' in {out / 'report.md'}.")
    return _exit_code(doc)


def _print_checks(checks: list[dict]) -> None:
    """One line: the range of the roofs measured around the families, and of the load."""
    if not checks:
        return
    gflops = [c["gflops"] for c in checks]
    gbps = [c["gbps"] for c in checks]
    loads = [c["load_average"][0] for c in checks if c.get("load_average")]
    load = f", load average {min(loads):.2f}-{max(loads):.2f}" if loads else ""
    print(
        f"roofs around the families ({len(checks)} probes): {min(gflops):.1f}-"
        f"{max(gflops):.1f} GFLOP/s, {min(gbps):.1f}-{max(gbps):.1f} GB/s{load}"
    )
