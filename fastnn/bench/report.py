"""The report: results as JSON (the file ``--compare`` reads back), as markdown tables,
and the comparison of two JSON reports.

Everything here works on the JSON document, so that an old report renders and compares
without re-running anything.  Ratios are speed-ups: ``peer time / fastnn time``, above 1
where fastnn is faster.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fastnn.bench.case import REFERENCE, is_subject
from fastnn.bench.peers import PEERS
from fastnn.bench.roofline import Roofline
from fastnn.bench.runner import CaseResult

__all__ = [
    "FORMAT",
    "compare",
    "document",
    "format_time",
    "group_cases",
    "load",
    "markdown",
    "markdown_summary",
    "median_times",
    "peer_columns",
    "roofline_of",
    "speedups",
    "write_json",
]

#: Version of the JSON layout; ``--compare`` refuses other versions.
FORMAT = 1

#: Peers in the order of the ratio columns.
PEER_ORDER = (REFERENCE, *PEERS)

#: A change smaller than this (relative) is reported as noise by ``compare``.
NOISE = 0.10


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
        "error": m.error,
        "skipped": m.skipped,
    }


def document(
    results: Iterable[CaseResult],
    roofline: Roofline,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON document of a run: ``meta`` (suite, machine, threads, peers...), the
    roofline, and one row per case and implementation."""
    rows = [_row(r, impl) for r in results for impl in r.measurements]
    doc = {"format": FORMAT, **meta, "roofline": roofline.to_dict(), "results": rows}
    return _jsonable(doc)


def write_json(doc: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def load(path: str | Path) -> dict[str, Any]:
    """Read a report written by :func:`write_json`; ValueError if it is not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "results" not in doc:
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


def peer_columns(doc: Mapping[str, Any]) -> list[str]:
    """The peers measured somewhere in ``doc``, in :data:`PEER_ORDER`."""
    present = {r["impl"] for r in doc["results"] if r["median_s"]}
    return [p for p in PEER_ORDER if p in present]


def speedups(doc: Mapping[str, Any]) -> dict[str, dict[str, tuple[float, int]]]:
    """``{family: {peer: (geometric-mean speed-up, cases)}}`` of fastnn's fastest
    implementation in each case over each peer."""
    logs: dict[str, dict[str, list[float]]] = {}
    for (family, _, _), rows in group_cases(doc["results"]).items():
        times = median_times(rows)
        ours = [t for impl, t in times.items() if is_subject(impl)]
        if not ours:
            continue
        best = min(ours)
        for peer in PEER_ORDER:
            if peer in times:
                logs.setdefault(family, {}).setdefault(peer, []).append(
                    math.log(times[peer] / best)
                )
    return {
        family: {p: (math.exp(sum(v) / len(v)), len(v)) for p, v in peers.items()}
        for family, peers in logs.items()
    }


def worst_cases(
    doc: Mapping[str, Any], peer: str = "torch", family: str | None = None, count: int = 20
) -> list[dict[str, Any]]:
    """The ``count`` cases where fastnn's fastest implementation does worst against
    ``peer`` (speed-up = peer time / fastnn time, lowest first), of ``family`` or of all:
    each a dict of family, op, shape, speedup, fastnn_s and peer_s."""
    found = []
    for (fam, op, shape), rows in group_cases(doc["results"]).items():
        if family is not None and fam != family:
            continue
        times = median_times(rows)
        ours = [t for impl, t in times.items() if is_subject(impl)]
        if not ours or peer not in times:
            continue
        best = min(ours)
        found.append(
            {
                "family": fam,
                "op": op,
                "shape": shape,
                "speedup": times[peer] / best,
                "fastnn_s": best,
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
# Markdown
# ---------------------------------------------------------------------------------------


def _header(doc: Mapping[str, Any]) -> list[str]:
    roof = roofline_of(doc)
    threads = ", ".join(f"{k} {v}" for k, v in doc.get("threads", {}).items())
    lines = [
        f"# fastnn bench: {doc.get('suite', '?')} suite",
        "",
        f"- fastnn {doc.get('fastnn', '?')}, {doc.get('created', '')}",
        f"- machine: {doc.get('machine', '?')}",
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
        "interleaved. `% roof`: the least time the measured roofline allows for the op's "
        "flops and bytes, over the median. `vs X`: X's time / this row's time "
        "(above 1: fastnn is faster).",
    ]
    return lines


#: Sweep cases listed in the summary, slowest against torch first.
SWEEP_WORST = 10


def markdown_summary(doc: Mapping[str, Any]) -> str:
    """The summary section alone (printed by ``fastnn bench``)."""
    return "\n".join(_summary(doc)).strip()


def _summary(doc: Mapping[str, Any]) -> list[str]:
    table = speedups(doc)
    if not table:
        return []
    peers = [p for p in peer_columns(doc) if any(p in v for v in table.values())]
    lines = [
        "",
        "## Summary: fastnn's fastest implementation vs each peer",
        "",
        "Geometric mean over the cases of each family of peer time / fastnn time "
        "(cases in parentheses).",
        "",
        "| family | " + " | ".join(peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for family, ratios in table.items():
        cells = [f"{ratios[p][0]:.2f}x ({ratios[p][1]})" if p in ratios else "-" for p in peers]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    worst = worst_cases(doc, "torch", "sweep", SWEEP_WORST)
    if worst:
        lines += ["", f"Sweep: the {len(worst)} cases slowest against torch", ""]
        lines += worst_table(worst)
    return lines


def _family_table(rows_by_case, peers: list[str], roof: Roofline) -> list[str]:
    head = ["op", "shape", "implementation", "median", "best", "runs", "throughput", "% roof"]
    head += [f"vs {p}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for (_, op, shape), rows in rows_by_case.items():
        times = median_times(rows)
        for row in rows:
            impl, median = row["impl"], row["median_s"]
            if not median:
                why = row["skipped"] or row["error"] or "not measured"
                notes.append(
                    f"- {op} {shape}: {impl} {'skipped' if row['skipped'] else 'failed'}: {why}"
                )
                continue
            cells = [
                op,
                shape,
                impl,
                format_time(median),
                format_time(row["best_s"]),
                str(row["runs"]),
                _throughput(row, median),
                _roof(row, median, roof),
            ]
            for peer in peers:
                ok = is_subject(impl) and peer in times
                cells.append(f"{times[peer] / median:.2f}x" if ok else "")
            lines.append("| " + " | ".join(cells) + " |")
    return lines + ([""] + notes if notes else [])


def markdown(doc: Mapping[str, Any]) -> str:
    """The whole report: header, summary, then one table per family."""
    roof = roofline_of(doc)
    peers = peer_columns(doc)
    lines = _header(doc) + _summary(doc)
    by_family: dict[str, dict] = {}
    for key, rows in group_cases(doc["results"]).items():
        by_family.setdefault(key[0], {})[key] = rows
    for family, rows_by_case in by_family.items():
        lines += ["", f"## {family}", ""]
        lines += _family_table(rows_by_case, peers, roof)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Comparing two reports
# ---------------------------------------------------------------------------------------


def _speedup_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """fastnn's geometric-mean speed-up over each peer per family, old -> new.  Ratios
    measured within one run cancel a machine that is slower or busier as a whole, so they
    compare across runs better than raw times."""
    before, after = speedups(old), speedups(new)
    peers = [p for p in PEER_ORDER if any(p in v for v in (*before.values(), *after.values()))]
    if not peers:
        return []
    lines = [
        "",
        "## Speed-ups over each peer, old -> new",
        "",
        "| family | " + " | ".join(peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for family in dict.fromkeys([*before, *after]):
        cells = []
        for p in peers:
            a = before.get(family, {}).get(p)
            b = after.get(family, {}).get(p)
            cells.append(f"{a[0]:.2f}x -> {b[0]:.2f}x" if a and b else "-")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return lines


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, dict[str, int]]:
    """Markdown: the per-family speed-ups of both reports, then every (case,
    implementation) measured in both with the relative change of its median; and the
    counts of faster / slower / within-noise rows (a change under :data:`NOISE` is noise)."""
    before = {
        (r["family"], r["op"], r["shape"], r["impl"]): r["median_s"]
        for r in old["results"]
        if r["median_s"]
    }
    counts = {"faster": 0, "slower": 0, "same": 0, "new": 0, "gone": 0}
    lines = [
        "# fastnn bench: comparison",
        "",
        f"- old: {old.get('created', '?')} ({old.get('suite', '?')} suite), roofline "
        f"{old['roofline']['gflops']:.1f} GFLOP/s, {old['roofline']['gbps']:.1f} GB/s",
        f"- new: {new.get('created', '?')} ({new.get('suite', '?')} suite), roofline "
        f"{new['roofline']['gflops']:.1f} GFLOP/s, {new['roofline']['gbps']:.1f} GB/s",
        f"- change = new / old - 1 of the median time; within +-{NOISE:.0%} is noise",
        *_speedup_changes(old, new),
        "",
        "## Every implementation",
        "",
        "| op | shape | implementation | old | new | change | |",
        "|---|---|---|---|---|---|---|",
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
        change = r["median_s"] / before[key] - 1
        verdict = "faster" if change < -NOISE else "slower" if change > NOISE else "same"
        counts[verdict] += 1
        mark = {"faster": "faster", "slower": "SLOWER", "same": ""}[verdict]
        lines.append(
            f"| {r['op']} | {r['shape']} | {r['impl']} | {format_time(before[key])} | "
            f"{format_time(r['median_s'])} | {change:+.1%} | {mark} |"
        )
    counts["gone"] = len(set(before) - seen)
    lines += [
        "",
        f"{counts['faster']} faster, {counts['slower']} slower, {counts['same']} within noise; "
        f"{counts['new']} only in the new report, {counts['gone']} only in the old one.",
    ]
    return "\n".join(lines) + "\n", counts
