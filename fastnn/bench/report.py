"""The report: results as JSON (the file ``--compare`` reads back), as markdown tables,
and the comparison of two JSON reports.

Everything here works on the JSON document, so that an old report renders and compares
without re-running anything.  Ratios are speed-ups: ``peer time / fastnn time``, above 1
where fastnn is faster.

What the report compares, and how far to trust it:

- **fastnn's default path** is what a user gets: ``fastnn[cpu]`` (``algo="auto"``, the
  tuning as shipped), the reference backend for an op that has no CPU kernel (the
  dispatcher falls back to it), ``fastnn[cupy]`` against a GPU peer.  The summary
  compares it with each peer (geometric mean and median over the cases); the best of all
  fastnn's implementations (every algorithm forced, each case's fastest) is a separate
  column, which flatters fastnn.
- **A peer's anomaly**: a peer row that runs at under 1/:data:`ANOMALY_FACTOR` of the
  peer's best throughput on the same op *and* no faster than a shape of that op with at
  least as much work (torch's 2-thread softmax on 128x10 took 7.4 ms, its 4096x1000 one
  far less) is marked in the tables and left out of the summary's statistics.  A small
  shape whose fixed call cost keeps its throughput low is not an anomaly: a larger shape
  takes longer there.
- **A busy machine**: the roofs are measured before the suite, between families and
  after it (``roof_checks`` in the JSON).  A family whose roofs moved by more than
  :data:`ROOF_MOVE` during its run, or sat more than :data:`ROOF_MOVE` below the run's
  best, or whose samples spread widely (the median over its rows of
  ``(p90 - p10) / median`` above :data:`SPREAD_LIMIT`), is flagged, and the report starts
  with "the machine was busy: ratios unreliable".
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from fastnn.bench.case import REFERENCE, fastnn_name, is_subject
from fastnn.bench.peers import PEERS
from fastnn.bench.roofline import Roofline
from fastnn.bench.runner import CaseResult

__all__ = [
    "ANOMALY_FACTOR",
    "BUSY_WARNING",
    "FORMAT",
    "ROOF_MOVE",
    "SPREAD_LIMIT",
    "Speedup",
    "busy_warning",
    "compare",
    "default_impl",
    "document",
    "fastnn_time",
    "format_time",
    "group_cases",
    "load",
    "markdown",
    "markdown_summary",
    "median_times",
    "peer_anomalies",
    "peer_columns",
    "reliability",
    "roofline_of",
    "speedups",
    "spread",
    "write_json",
]

#: Version of the JSON layout.  2 added each row's samples (``times_s``) and ``spread``,
#: the roof checks, the load average, the CPU model and ``reliability``.
FORMAT = 2
#: Versions ``--compare`` and :func:`markdown` read (a version-1 report has no samples:
#: its noise is unknown and counts as zero).
READABLE_FORMATS = (1, 2)

#: Peers in the order of the ratio columns.
PEER_ORDER = (REFERENCE, *PEERS)

#: Peers that run on a GPU: fastnn's default path against them is its CuPy backend.
GPU_PEERS = frozenset({"torch-cuda", "cupy"})

#: The least relative change ``compare`` reports as a change, however tight the samples:
#: two runs differ by more than their samples show (clock, memory placement, other jobs).
NOISE = 0.10

#: A roof that moves by more than this (relative) during a family, or sits this far below
#: the run's typical (median) roof, flags the family as measured while busy.  On an idle
#: 2-vCPU AMD EPYC (Zen 4) VM the between-family probes of one quick run spread 195-204
#: GFLOP/s and 31-46 GB/s (the copy roof is the noisy one), so 10% flagged every family.
ROOF_MOVE = 0.25

#: The median sample spread, (p90 - p10) / median, over a family's rows above which the
#: family is flagged.  Quick runs on a 2-core VM shared with other jobs (load 3-8) gave
#: family medians of 0.11-1.7, most above 0.3; on the same VM idle (AMD EPYC, Zen 4) the
#: tiny-op families (gemm, linear, conv1d) reached 0.34-0.45 and the others stayed under
#: 0.26.  Spread alone separates the two only roughly; the roof checks are the sharper test.
SPREAD_LIMIT = 0.5

#: A peer row below 1/ANOMALY_FACTOR of the peer's best throughput on the op (and no
#: faster than a larger shape) is a peer's anomaly.
ANOMALY_FACTOR = 10.0

#: The first words of the warning on stdout and at the top of report.md.
BUSY_WARNING = "the machine was busy: ratios unreliable"


# ---------------------------------------------------------------------------------------
# The JSON document
# ---------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def spread(times: Sequence[float] | None) -> float | None:
    """``(p90 - p10) / median`` of the samples (linear interpolation between them), or
    None for fewer than two samples: how far apart one implementation's samples lie."""
    values = sorted(t for t in (times or ()) if t is not None and math.isfinite(t))
    if len(values) < 2:
        return None
    median = statistics.median(values)
    if median <= 0:
        return None
    return (_percentile(values, 0.9) - _percentile(values, 0.1)) / median


def _percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values``, interpolated linearly (numpy's default)."""
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _row(result: CaseResult, impl: str) -> dict[str, Any]:
    case, m = result.case, result.measurements[impl]
    return {
        "family": case.family,
        "op": case.op,
        "shape": case.shape,
        "params": dict(case.params),
        "flops": case.flops,
        "bytes": case.bytes,
        "metric": case.metric,
        "impl": impl,
        "median_s": m.median if m.ok else None,
        "best_s": m.best if m.ok else None,
        "runs": m.runs if m.ok else 0,
        "loops": m.loops,
        "times_s": list(m.times) if m.ok else [],
        "spread": spread(m.times) if m.ok else None,
        "error": m.error,
        "skipped": m.skipped,
    }


def document(
    results: Iterable[CaseResult],
    roofline: Roofline,
    meta: Mapping[str, Any],
    roof_checks: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON document of a run: ``meta`` (suite, machine, threads, peers...), the
    roofline, the roofs measured around each family (``roof_checks``: dicts of
    ``after`` / ``before`` (family names or None), ``gflops``, ``gbps`` and
    ``load_average``), one row per case and implementation, and the verdict of
    :func:`reliability` on all of it."""
    rows = [_row(r, impl) for r in results for impl in r.measurements]
    doc = {
        "format": FORMAT,
        **meta,
        "roofline": roofline.to_dict(),
        "roof_checks": [dict(c) for c in roof_checks],
        "results": rows,
    }
    doc = _jsonable(doc)
    doc["reliability"] = _jsonable(reliability(doc))
    return doc


def write_json(doc: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def load(path: str | Path) -> dict[str, Any]:
    """Read a report written by :func:`write_json`; ValueError if it is not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") not in READABLE_FORMATS
        or "results" not in doc
    ):
        raise ValueError(f"{path} is not a fastnn bench report (format {FORMAT})")
    return doc


# ---------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------


def group_cases(rows: Iterable[Mapping]) -> dict[tuple[str, str, str], list[Mapping]]:
    """Rows grouped by (family, op, shape), in first-seen order."""
    grouped: dict[tuple[str, str, str], list[Mapping]] = {}
    for row in rows:
        grouped.setdefault((row["family"], row["op"], row["shape"]), []).append(row)
    return grouped


def median_times(rows: Iterable[Mapping]) -> dict[str, float]:
    return {r["impl"]: r["median_s"] for r in rows if r["median_s"]}


def row_spread(row: Mapping) -> float | None:
    """The row's sample spread (recorded, else computed from ``times_s``; None when a
    version-1 report has no samples)."""
    if row.get("spread") is not None:
        return row["spread"]
    return spread(row.get("times_s"))


def peer_columns(doc: Mapping[str, Any]) -> list[str]:
    """The peers measured somewhere in ``doc``, in :data:`PEER_ORDER`."""
    present = {r["impl"] for r in doc["results"] if r["median_s"]}
    return [p for p in PEER_ORDER if p in present]


def default_impl(rows: Iterable[Mapping], peer: str = "torch") -> str | None:
    """The implementation a user gets by default on the case of ``rows``, compared with
    ``peer``: ``fastnn[cpu]`` (``fastnn[cupy]`` against a GPU peer), or the reference
    backend when the op has no CPU kernel (no ``fastnn[cpu...]`` row at all); None when
    that implementation is not in the case."""
    names = {r["impl"] for r in rows}
    if peer in GPU_PEERS:
        wanted = fastnn_name("cupy")
        return wanted if wanted in names else None
    if fastnn_name("cpu") in names:
        return fastnn_name("cpu")
    if REFERENCE in names and not any(n.startswith("fastnn[cpu") for n in names):
        return REFERENCE
    return None


def fastnn_time(rows: Iterable[Mapping], peer: str, which: str = "default") -> float | None:
    """fastnn's median time on the case of ``rows`` compared with ``peer``: its default
    path's (``which="default"``, see :func:`default_impl`) or the fastest of all its
    implementations (``"best"``); None when not measured."""
    rows = list(rows)
    times = median_times(rows)
    if which == "best":
        ours = [t for impl, t in times.items() if is_subject(impl)]
        return min(ours) if ours else None
    if which != "default":
        raise ValueError(f"which must be 'default' or 'best', got {which!r}")
    impl = default_impl(rows, peer)
    if impl is None or impl == peer:
        return None
    return times.get(impl)


def _work(row: Mapping) -> float | None:
    if row["metric"] == "flops":
        return row["flops"] or None
    if row["metric"] == "bytes":
        return row["bytes"] or None
    return None  # latency cases have no throughput


def peer_anomalies(doc: Mapping[str, Any]) -> dict[tuple[str, str, str, str], str]:
    """``{(family, op, shape, peer): why}`` for every peer row that runs at under
    1/:data:`ANOMALY_FACTOR` of that peer's best throughput on the same op while a shape
    of the op with at least as much work took no longer: the peer misbehaved there (a
    thread pool's wake-up, a slow path), and its ratio would dominate a mean.

    Rows count with their medians, the times the ratios are made of: a peer row marked
    here is one whose ratio would otherwise dominate the family's mean.  (On a busy
    machine more rows qualify; the busy check flags those families anyway.)"""
    by_op: dict[tuple[str, str, str], list[tuple[str, float, float]]] = {}
    for row in doc["results"]:
        impl = row["impl"]
        if is_subject(impl) or not row["median_s"]:
            continue
        work = _work(row)
        if work:
            key = (row["family"], row["op"], impl)
            by_op.setdefault(key, []).append((row["shape"], work, row["median_s"]))
    found = {}
    for (family, op, peer), rows in by_op.items():
        best = max(work / seconds for _, work, seconds in rows)
        for shape, work, seconds in rows:
            rate = work / seconds
            if rate * ANOMALY_FACTOR >= best:
                continue
            larger = [
                other for other, w, t in rows if other != shape and w >= work and t <= seconds
            ]
            if larger:
                found[(family, op, shape, peer)] = (
                    f"{peer} ran {op} {shape} at {best / rate:.0f}x below its best "
                    f"throughput on {op}, and no faster than on {larger[0]} (more work)"
                )
    return found


class Speedup(NamedTuple):
    """fastnn's speed-ups over one peer in one family: the geometric mean and the median
    over ``cases`` cases, and how many cases were ``left_out`` (a peer's anomaly)."""

    geomean: float
    median: float
    cases: int
    left_out: int = 0


def speedups(doc: Mapping[str, Any], which: str = "default") -> dict[str, dict[str, Speedup]]:
    """``{family: {peer: Speedup}}`` of fastnn's default path (``which="default"``) or of
    its fastest implementation in each case (``"best"``) over each peer, a peer's
    anomalies (:func:`peer_anomalies`) left out."""
    anomalies = peer_anomalies(doc)
    ratios: dict[str, dict[str, list[float]]] = {}
    left_out: dict[str, dict[str, int]] = {}
    for (family, op, shape), rows in group_cases(doc["results"]).items():
        times = median_times(rows)
        for peer in PEER_ORDER:
            if peer not in times:
                continue
            ours = fastnn_time(rows, peer, which)
            if ours is None:
                continue
            if (family, op, shape, peer) in anomalies:
                counts = left_out.setdefault(family, {})
                counts[peer] = counts.get(peer, 0) + 1
                continue
            ratios.setdefault(family, {}).setdefault(peer, []).append(times[peer] / ours)
    table: dict[str, dict[str, Speedup]] = {}
    for family in dict.fromkeys([*ratios, *left_out]):
        peers = ratios.get(family, {})
        table[family] = {}
        for peer in PEER_ORDER:
            values = peers.get(peer, [])
            skipped = left_out.get(family, {}).get(peer, 0)
            if values:
                geomean = math.exp(sum(math.log(v) for v in values) / len(values))
                table[family][peer] = Speedup(
                    geomean, statistics.median(values), len(values), skipped
                )
            elif skipped:
                table[family][peer] = Speedup(math.nan, math.nan, 0, skipped)
    return table


def worst_cases(
    doc: Mapping[str, Any], peer: str = "torch", family: str | None = None, count: int = 20
) -> list[dict[str, Any]]:
    """The ``count`` cases where fastnn's default path does worst against ``peer``
    (speed-up = peer time / fastnn time, lowest first), of ``family`` or of all: each a
    dict of family, op, shape, speedup, fastnn_s and peer_s."""
    found = []
    for (fam, op, shape), rows in group_cases(doc["results"]).items():
        if family is not None and fam != family:
            continue
        times = median_times(rows)
        ours = fastnn_time(rows, peer)
        if ours is None or peer not in times:
            continue
        found.append(
            {
                "family": fam,
                "op": op,
                "shape": shape,
                "speedup": times[peer] / ours,
                "fastnn_s": ours,
                "peer_s": times[peer],
            }  # fmt: skip
        )
    return sorted(found, key=lambda row: row["speedup"])[:count]


def worst_table(rows: list[Mapping[str, Any]], peer: str = "torch") -> list[str]:
    """Markdown rows of :func:`worst_cases`."""
    lines = [f"| case | fastnn | {peer} | {peer} / fastnn |", "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['shape']} | {format_time(row['fastnn_s'])} | "
            f"{format_time(row['peer_s'])} | {row['speedup']:.2f}x |"
        )
    return lines


def format_time(seconds: float | None) -> str:
    """``seconds`` with a unit that keeps 3-4 significant digits."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _throughput(row: Mapping, seconds: float) -> str:
    if row["metric"] == "flops":
        return f"{row['flops'] / seconds / 1e9:.3g} GFLOP/s"
    if row["metric"] == "bytes":
        return f"{row['bytes'] / seconds / 1e9:.3g} GB/s"
    return "-"


def _roof(row: Mapping, seconds: float, roof: Roofline) -> str:
    if row["metric"] == "latency":
        return "-"
    return f"{100 * roof.fraction(row['flops'], row['bytes'], seconds):.0f}%"


def roofline_of(doc: Mapping[str, Any]) -> Roofline:
    return Roofline(**doc["roofline"])


# ---------------------------------------------------------------------------------------
# Was the machine quiet?
# ---------------------------------------------------------------------------------------


def _roof_change(checks: Sequence[Mapping], best: Mapping[str, float]) -> tuple[float, float]:
    """How far the roofs of ``checks`` (those before and after one family) moved between
    themselves, and how far the lower one sat below the run's typical roof ``best`` (the
    median of its checks), both relative, the larger of the compute and the memory
    roof's."""
    moved = drop = 0.0
    for key in ("gflops", "gbps"):
        values = [c[key] for c in checks if c.get(key)]
        if not values:
            continue
        moved = max(moved, max(values) / min(values) - 1)
        if best.get(key):
            drop = max(drop, 1 - min(values) / best[key])
    return moved, drop


def family_spread(rows: Iterable[Mapping]) -> float | None:
    """The median over ``rows`` (fastnn's and the peers') of each one's sample spread;
    None when no row has two samples."""
    values = [s for s in (row_spread(r) for r in rows if r["median_s"]) if s is not None]
    return statistics.median(values) if values else None


def reliability(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Whether each family was measured on a quiet machine: ``{"busy": [families],
    "families": {family: {"roof_moved", "roof_below_best", "spread", "reasons"}}}``.

    ``roof_moved``: the relative change of a roof between the checks before and after the
    family; ``roof_below_best``: how far the lower of them sat below the run's typical
    roof (the median of its checks: one lucky probe must not flag every family);
    ``spread``: :func:`family_spread`.  A family is busy when either roof figure is
    above :data:`ROOF_MOVE` or the spread above :data:`SPREAD_LIMIT`; ``reasons`` says
    which, in words.  Figures that the report lacks (no roof checks, no samples) are None
    and flag nothing."""
    checks = doc.get("roof_checks") or []
    best = {
        key: statistics.median([c[key] for c in checks if c.get(key)] or [0.0])
        for key in ("gflops", "gbps")
    }
    by_family: dict[str, list[Mapping]] = {}
    for row in doc["results"]:
        by_family.setdefault(row["family"], []).append(row)
    families: dict[str, dict[str, Any]] = {}
    busy = []
    for family, rows in by_family.items():
        around = [c for c in checks if family in (c.get("before"), c.get("after"))]
        moved = drop = None
        if len(around) >= 2:
            moved, drop = _roof_change(around, best)
        fam_spread = family_spread(rows)
        reasons = []
        if moved is not None and moved > ROOF_MOVE:
            reasons.append(f"a roof moved {moved:.0%} during it")
        if drop is not None and drop > ROOF_MOVE:
            reasons.append(f"a roof sat {drop:.0%} below the run's typical roof")
        if fam_spread is not None and fam_spread > SPREAD_LIMIT:
            reasons.append(f"samples spread {fam_spread:.0%} of the median")
        families[family] = {
            "roof_moved": moved,
            "roof_below_best": drop,
            "spread": fam_spread,
            "reasons": reasons,
        }
        if reasons:
            busy.append(family)
    return {"busy": busy, "families": families}


def _reliability_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded verdict, else (a version-1 report, an edited one) a fresh one."""
    found = doc.get("reliability")
    if isinstance(found, Mapping) and "busy" in found and "families" in found:
        return dict(found)
    return reliability(doc)


def busy_warning(doc: Mapping[str, Any]) -> list[str]:
    """Lines that say the machine was busy, naming the families and why; [] when it was
    quiet (as far as the report can tell)."""
    verdict = _reliability_of(doc)
    if not verdict["busy"]:
        return []
    named = "; ".join(
        f"{family} ({', '.join(verdict['families'][family]['reasons'])})"
        for family in verdict["busy"]
    )
    return [f"WARNING: {BUSY_WARNING} in {len(verdict['busy'])} families: {named}."]


def _load_text(load: Sequence[float] | None) -> str:
    if not load:
        return "?"
    return " / ".join(f"{v:.2f}" for v in load)


def _machine_section(doc: Mapping[str, Any]) -> list[str]:
    """The roof checks and each family's verdict, as markdown."""
    checks = doc.get("roof_checks") or []
    verdict = _reliability_of(doc)
    if not checks and not verdict["families"]:
        return []
    lines = [
        "",
        "## Was the machine quiet?",
        "",
        f"The roofs measured before the suite, between families and after it, with the load "
        f"average (1, 5, 15 min). A family is flagged when a roof moved more than "
        f"{ROOF_MOVE:.0%} during it or sat more than {ROOF_MOVE:.0%} below the run's median "
        f"roof, "
        f"or when the median spread of its rows' samples, (p90 - p10) / median, is above "
        f"{SPREAD_LIMIT:.0%}.",
    ]
    if checks:
        lines += ["", "| when | sgemm GFLOP/s | copy GB/s | load average |", "|---|---|---|---|"]
        for c in checks:
            after, before = c.get("after"), c.get("before")
            when = (
                f"before {before}"
                if after is None
                else f"after {after}"
                if before is None
                else f"{after} -> {before}"
            )
            lines.append(
                f"| {when} | {c.get('gflops', math.nan):.1f} | {c.get('gbps', math.nan):.1f} | "
                f"{_load_text(c.get('load_average'))} |"
            )
    lines += [
        "",
        "| family | roof moved | roof below best | sample spread | verdict |",
        "|---|---|---|---|---|",
    ]
    for family, v in verdict["families"].items():
        cells = [
            "-" if v.get(k) is None else f"{v[k]:.0%}"
            for k in ("roof_moved", "roof_below_best", "spread")
        ]
        if v["reasons"]:
            state = "busy: " + ", ".join(v["reasons"])
        elif all(cell == "-" for cell in cells):
            state = "unknown (no roof probes, no samples)"
        else:
            state = "quiet"
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {state} |")
    return lines


# ---------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------


def _header(doc: Mapping[str, Any]) -> list[str]:
    roof = roofline_of(doc)
    threads = ", ".join(f"{k} {v}" for k, v in doc.get("threads", {}).items())
    lines = [f"# fastnn bench: {doc.get('suite', '?')} suite", ""]
    warning = busy_warning(doc)
    if warning:
        lines += [f"> **{line}**" for line in warning] + [""]
    lines += [
        f"- fastnn {doc.get('fastnn', '?')}, {doc.get('created', '')}",
        f"- machine: {doc.get('machine', '?')}",
    ]
    if doc.get("cpu_model"):
        lines.append(f"- CPU model: {doc['cpu_model']} ({doc.get('cpus', '?')} CPUs)")
    if doc.get("load_average"):
        lines.append(
            f"- load average (1, 5, 15 min) before the run: {_load_text(doc['load_average'])}"
        )
    lines += [
        f"- threads: {threads}",
        f"- roofline: {roof.gflops:.1f} GFLOP/s (NumPy sgemm {roof.gemm_size}^3), "
        f"{roof.gbps:.1f} GB/s (copy of {roof.copy_mbytes} MB, {roof.threads} threads), "
        f"balance {roof.balance:.1f} FLOP/byte",
    ]
    for name, peer in doc.get("peers", {}).items():
        state = "measured" if peer["available"] else "skipped"
        lines.append(f"- {name}: {state} ({peer['detail']})")
    for note in doc.get("notes", []):
        lines.append(f"- {note}")
    lines += [
        "",
        "Times are per call: the median (and best) of `runs` samples, implementations "
        "interleaved; `spread`: (p90 - p10) / median of the samples. `% roof`: the least "
        "time the measured roofline allows for the op's flops and bytes, over the median. "
        "`vs X`: X's time / this row's time (above 1: fastnn is faster); `*`: a peer's "
        "anomaly, left out of the summary (see under the table).",
    ]
    return lines


#: Sweep cases listed in the summary, slowest against torch first.
SWEEP_WORST = 10


def markdown_summary(doc: Mapping[str, Any]) -> str:
    """The summary section alone, the busy warning first (printed by ``fastnn bench``)."""
    warning = busy_warning(doc)
    return "\n".join([*warning, *_summary(doc)]).strip()


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if math.isfinite(value) else "-"


def _summary(doc: Mapping[str, Any]) -> list[str]:
    table = speedups(doc)
    best = speedups(doc, "best")
    if not table and not best:
        return []
    busy = set(_reliability_of(doc)["busy"])
    lines = [
        "",
        "## Summary: fastnn's default path vs each peer",
        "",
        'fastnn\'s default path is what a user gets: `fastnn[cpu]` with `algo="auto"` and '
        "the tuning as shipped (the reference backend for an op without a CPU kernel, "
        "`fastnn[cupy]` against a GPU peer). Per family and peer, over its cases: the "
        "geometric mean and the median of peer time / fastnn time (above 1: fastnn is "
        "faster). `best of variants`: the geometric mean when each case takes the fastest "
        "of all fastnn's implementations (every algorithm forced), which a user does not "
        "get by default. `left out`: cases where the peer ran at under "
        f"1/{ANOMALY_FACTOR:g} of its own best throughput on the op while a larger shape "
        "took no longer (a peer's anomaly, marked `*` in the tables); they are in neither "
        "mean nor median.",
        "",
        "| family | peer | cases | geomean | median | best of variants | left out |",
        "|---|---|---|---|---|---|---|",
    ]
    order = dict.fromkeys(r["family"] for r in doc["results"])
    for family in (f for f in order if f in table or f in best):
        ours, fastest = table.get(family, {}), best.get(family, {})
        name = f"{family} (busy)" if family in busy else family
        for peer in PEER_ORDER:
            a, b = ours.get(peer), fastest.get(peer)
            if a is None and b is None:
                continue
            best_cell = "-"
            if b is not None and b.cases:
                best_cell = _ratio(b.geomean)
                if a is None or b.cases != a.cases:
                    best_cell += f" ({b.cases} cases)"
            left = (a or b).left_out
            lines.append(
                f"| {name} | {peer} | {a.cases if a else 0} | "
                f"{_ratio(a.geomean) if a else '-'} | {_ratio(a.median) if a else '-'} | "
                f"{best_cell} | {left or ''} |"
            )
    worst = worst_cases(doc, "torch", "sweep", SWEEP_WORST)
    if worst:
        lines += ["", f"Sweep: the {len(worst)} cases slowest against torch (default path)", ""]
        lines += worst_table(worst)
    return lines


def _family_table(
    rows_by_case, peers: list[str], roof: Roofline, anomalies: Mapping[tuple, str]
) -> list[str]:
    head = ["op", "shape", "implementation", "median", "best", "runs", "spread"]
    head += ["throughput", "% roof"] + [f"vs {p}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes, marked = [], []
    for (family, op, shape), rows in rows_by_case.items():
        times = median_times(rows)
        for row in rows:
            impl, median = row["impl"], row["median_s"]
            if not median:
                why = row["skipped"] or row["error"] or "not measured"
                notes.append(
                    f"- {op} {shape}: {impl} {'skipped' if row['skipped'] else 'failed'}: {why}"
                )
                continue
            own = anomalies.get((family, op, shape, impl))
            if own:
                marked.append(f"- `*` {own}: left out of the summary")
            row_spread_value = row_spread(row)
            cells = [
                op,
                shape,
                f"{impl} *" if own else impl,
                format_time(median),
                format_time(row["best_s"]),
                str(row["runs"]),
                "-" if row_spread_value is None else f"{row_spread_value:.0%}",
                _throughput(row, median),
                _roof(row, median, roof),
            ]
            for peer in peers:
                ok = is_subject(impl) and peer in times
                mark = " *" if (family, op, shape, peer) in anomalies else ""
                cells.append(f"{times[peer] / median:.2f}x{mark}" if ok else "")
            lines.append("| " + " | ".join(cells) + " |")
    extra = marked + notes
    return lines + ([""] + extra if extra else [])


def markdown(doc: Mapping[str, Any]) -> str:
    """The whole report: header (the busy warning on top), summary, the machine's roofs
    during the run, then one table per family."""
    roof = roofline_of(doc)
    peers = peer_columns(doc)
    anomalies = peer_anomalies(doc)
    lines = _header(doc) + _summary(doc) + _machine_section(doc)
    by_family: dict[str, dict] = {}
    for key, rows in group_cases(doc["results"]).items():
        by_family.setdefault(key[0], {})[key] = rows
    for family, rows_by_case in by_family.items():
        lines += ["", f"## {family}", ""]
        lines += _family_table(rows_by_case, peers, roof, anomalies)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Comparing two reports
# ---------------------------------------------------------------------------------------


def noise_band(*spreads: float | None) -> float:
    """The relative change two medians must exceed to count as a change: the mean of the
    known sample spreads ((p90 - p10) / median of each run's samples), at least
    :data:`NOISE` (a version-1 report has no samples: its spread is unknown)."""
    known = [s for s in spreads if s is not None]
    return max(NOISE, sum(known) / len(known) if known else 0.0)


def _family_noise(doc: Mapping[str, Any]) -> dict[str, float | None]:
    return {f: v.get("spread") for f, v in _reliability_of(doc)["families"].items()}


def _speedup_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """fastnn's default path's geometric-mean speed-up over each peer per family, old ->
    new, marked "~" when the change is within the noise both runs measured
    (:func:`noise_band` of the two families' median sample spreads).  Ratios measured within one run
    cancel a machine that is slower or busier as a whole, so they compare across runs
    better than raw times."""
    before, after = speedups(old), speedups(new)
    noise_old, noise_new = _family_noise(old), _family_noise(new)
    peers = [p for p in PEER_ORDER if any(p in v for v in (*before.values(), *after.values()))]
    if not peers:
        return []
    lines = [
        "",
        "## Default path's speed-ups over each peer, old -> new",
        "",
        "Geometric means; `~`: the change is within the noise of the two runs (the mean of "
        f"their median sample spreads in the family, at least {NOISE:.0%}).",
        "",
        "| family | " + " | ".join(peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for family in dict.fromkeys([*before, *after]):
        band = noise_band(noise_old.get(family), noise_new.get(family))
        cells = []
        for p in peers:
            a = before.get(family, {}).get(p)
            b = after.get(family, {}).get(p)
            if not (a and b and a.cases and b.cases):
                cells.append("-")
                continue
            within = abs(b.geomean / a.geomean - 1) <= band
            cells.append(f"{a.geomean:.2f}x -> {b.geomean:.2f}x{' ~' if within else ''}")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return lines


def _busy_lines(label: str, doc: Mapping[str, Any]) -> list[str]:
    busy = _reliability_of(doc)["busy"]
    if not busy:
        return []
    return [f"- WARNING: {BUSY_WARNING} in the {label} run: {', '.join(busy)}"]


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, dict[str, int]]:
    """Markdown: the per-family speed-ups of both reports, then every (case,
    implementation) measured in both with the relative change of its median; and the
    counts of faster / slower / within-noise rows.  A change is noise when it is within
    :func:`noise_band` of the two rows' sample spreads (at least :data:`NOISE`)."""
    before = {
        (r["family"], r["op"], r["shape"], r["impl"]): r for r in old["results"] if r["median_s"]
    }
    counts = {"faster": 0, "slower": 0, "same": 0, "new": 0, "gone": 0}
    lines = [
        "# fastnn bench: comparison",
        "",
        f"- old: {old.get('created', '?')} ({old.get('suite', '?')} suite), roofline "
        f"{old['roofline']['gflops']:.1f} GFLOP/s, {old['roofline']['gbps']:.1f} GB/s",
        f"- new: {new.get('created', '?')} ({new.get('suite', '?')} suite), roofline "
        f"{new['roofline']['gflops']:.1f} GFLOP/s, {new['roofline']['gbps']:.1f} GB/s",
        *_busy_lines("old", old),
        *_busy_lines("new", new),
        "- change = new / old - 1 of the median time; `noise`: the change it must exceed to "
        "count, the mean of the two rows' sample spreads ((p90 - p10) / median), at "
        f"least {NOISE:.0%}",
        *_speedup_changes(old, new),
        "",
        "## Every implementation",
        "",
        "| op | shape | implementation | old | new | change | noise | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    seen = set()
    for r in new["results"]:
        key = (r["family"], r["op"], r["shape"], r["impl"])
        if not r["median_s"]:
            continue
        seen.add(key)
        if key not in before:
            counts["new"] += 1
            continue
        old_row = before[key]
        band = noise_band(row_spread(old_row), row_spread(r))
        change = r["median_s"] / old_row["median_s"] - 1
        verdict = "faster" if change < -band else "slower" if change > band else "same"
        counts[verdict] += 1
        mark = {"faster": "faster", "slower": "SLOWER", "same": "within noise"}[verdict]
        lines.append(
            f"| {r['op']} | {r['shape']} | {r['impl']} | {format_time(old_row['median_s'])} | "
            f"{format_time(r['median_s'])} | {change:+.1%} | +-{band:.0%} | {mark} |"
        )
    counts["gone"] = len(set(before) - seen)
    lines += [
        "",
        f"{counts['faster']} faster, {counts['slower']} slower, {counts['same']} within noise; "
        f"{counts['new']} only in the new report, {counts['gone']} only in the old one.",
    ]
    return "\n".join(lines) + "\n", counts
