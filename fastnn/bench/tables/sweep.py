"""Every public op, forward and backward, over a grid of shapes against PyTorch: the
slowest cases first (fastnn.bench.cases_sweep builds the grid; fastnn.bench's runner
times it, torch and fastnn interleaved in the same process).

    env -u OPENBLAS_CORETYPE fastnn bench --table sweep [--suite quick]
        [--threads 2] [--budget 0.2] [--repeats 5] [--worst 20] [--json sweep.json]
        [--only conv,pool]

The verdict follows the no-slow-shape goals: a case whose torch time is at least 20 us
should run at >= 0.95x torch (gemm and linear also >= 0.95x NumPy); a case under 20 us
within torch's time + 2 us.  Convolution cases are listed but judged by the convolution
issue's goals.  Every figure belongs beside the CPU model printed in the header.

A shared VM's speed wanders by 10-30% from one block of samples to the next, as much as
the margins judged here, so a case that misses is measured again (``--recheck`` rounds,
each with ``--recheck-budget`` seconds per implementation and three times the repeats),
every implementation alike, and its samples are pooled with the first pass's: the
verdict is on the median of all of them.  The output says how many misses each round
confirmed.
"""

from __future__ import annotations

import argparse

import fastnn
from fastnn._machine import cpu_model
from fastnn.bench import report
from fastnn.bench.catalog import build_cases
from fastnn.bench.peers import detect, set_threads
from fastnn.bench.roofline import Roofline
from fastnn.bench.runner import CaseResult, run_cases
from fastnn.bench.timing import Measurement, TimingPlan

PROG = "fastnn bench --table sweep"
#: torch time from which a case is judged by its ratio, and the ratio it must reach.
RATIO_FROM_S = 20e-6
MIN_RATIO = 0.95
#: Below RATIO_FROM_S, fastnn may take this much longer than torch.
SLACK_S = 2e-6


def failures(doc) -> list[dict]:
    """The non-convolution cases that miss the goals against torch (and NumPy)."""
    bad = []
    for peer in ("torch", "numpy"):
        for row in report.worst_cases(doc, peer, "sweep", count=10**9):
            if row["shape"].startswith(("conv1d:", "conv2d:")):
                continue
            if peer == "numpy" and not row["shape"].startswith(("gemm:", "linear:")):
                continue
            if row["peer_s"] >= RATIO_FROM_S:
                missed = row["speedup"] < MIN_RATIO
            else:
                missed = row["fastnn_s"] > row["peer_s"] + SLACK_S
            if missed:
                bad.append({**row, "peer": peer})
    return bad


def pooled(first: CaseResult, again: CaseResult) -> CaseResult:
    """``first`` with each implementation's samples joined by those of ``again`` (the same
    case measured later); an implementation that failed in either keeps its failure."""
    merged = {}
    for name, m in first.measurements.items():
        other = again.measurements.get(name)
        if m.ok and other is not None and other.ok:
            merged[name] = Measurement(times=[*m.times, *other.times], loops=m.loops)
        else:
            merged[name] = m
    return CaseResult(first.case, merged, first.seconds + again.seconds)


def recheck(
    results: list[CaseResult], missed: set[str], plan: TimingPlan, rounds: int
) -> tuple[list[CaseResult], list[int]]:
    """Measure the cases whose shape is in ``missed`` again, ``rounds`` times or until
    none misses, pooling samples (:func:`pooled`); returns the results and the number of
    misses left after each round."""
    left = []
    for _ in range(rounds):
        if not missed:
            break
        index = {r.case.shape: i for i, r in enumerate(results)}
        again = run_cases(
            [results[index[s]].case for s in missed if s in index],
            plan,
            progress=False,
            spinning=("torch",),
        )
        for r in again:
            results[index[r.case.shape]] = pooled(results[index[r.case.shape]], r)
        doc = report.document(results, Roofline(0.0, 0.0, 0, 0, 0), {})
        missed = {row["shape"] for row in failures(doc)}
        left.append(len(missed))
    return results, left


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=("tiny", "quick", "full"), default="full")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worst", type=int, default=20)
    parser.add_argument(
        "--run-in", type=float, default=0.12, help="untimed seconds after a spinning peer"
    )
    parser.add_argument(
        "--recheck", type=int, default=2, help="rounds of re-measuring the misses (0: none)"
    )
    parser.add_argument(
        "--recheck-budget", type=float, default=0.6, help="seconds per impl in a recheck"
    )
    parser.add_argument("--json", default="sweep.json")
    parser.add_argument("--only", default="", help="comma-separated op families, e.g. pool,loss")
    args = parser.parse_args(argv)

    env = detect()
    set_threads(args.threads, env)
    fastnn.set_num_threads(args.threads)
    cases = build_cases(args.suite, env, ["sweep"])
    if args.only:
        prefixes = tuple(f"{o.strip()}:" for o in args.only.split(","))
        cases = [c for c in cases if c.shape.startswith(prefixes)]
    # torch's OpenMP pool (a runtime of its own) keeps spinning after each call like
    # OpenBLAS's: the next implementation first runs untimed for run_in seconds
    plan = TimingPlan(budget=args.budget, repeats=args.repeats, min_runs=3, run_in=args.run_in)
    print(f"sweep: {len(cases)} cases, {args.threads} threads, {cpu_model()}")
    results = run_cases(cases, plan, progress=False, spinning=("torch",))
    first = report.document(results, Roofline(0.0, 0.0, args.threads, 0, 0), {})
    missed = {row["shape"] for row in failures(first)}
    again = TimingPlan(
        budget=args.recheck_budget, repeats=3 * args.repeats, min_runs=3, run_in=args.run_in
    )
    results, left = recheck(results, missed, again, args.recheck)
    if left:
        print(f"{len(missed)} misses measured again: {' -> '.join(map(str, left))} left")
    meta = {"suite": args.suite, "threads": args.threads, "cpu": cpu_model()}
    doc = report.document(results, Roofline(0.0, 0.0, args.threads, 0, 0), meta)
    report.write_json(doc, args.json)
    print(f"\nthe {args.worst} cases slowest against torch:\n")
    print("\n".join(report.worst_table(report.worst_cases(doc, "torch", "sweep", args.worst))))
    bad = failures(doc)
    print(
        f"\n{len(bad)} non-convolution cases miss the goals "
        f"(>= {MIN_RATIO}x from {RATIO_FROM_S * 1e6:.0f} us, else within +{SLACK_S * 1e6:.0f} us):"
    )
    for row in bad:
        print(
            f"  {row['shape']}: {report.format_time(row['fastnn_s'])} vs {row['peer']} "
            f"{report.format_time(row['peer_s'])} ({row['speedup']:.2f}x)"
        )
    print(f"wrote {args.json}")
    return 0
