"""PNG figures of a report (matplotlib, Agg backend: no display needed).

- ``ratios_<family>.png``: for every case of the family, fastnn's default path's speed-up
  over each peer (``fastnn[cpu]``, ``algo="auto"``: what a user gets; see
  fastnn.bench.report.default_impl), as horizontal bars on a log axis with the value
  written at the end of each bar (right of the 1x line: fastnn is faster); a peer's
  anomaly (report.peer_anomalies) is hatched and its label ends in ``*``.  The figure grows with the
  number of cases, so that every label stays readable.
- ``roofline.png``: every implementation on every case placed by arithmetic intensity and
  achieved GFLOP/s under the measured roofline (both roofs labelled); colour = the
  implementation, marker = the op family, each with its own legend.

Every implementation has one colour in every figure (:func:`impl_color`): torch is always
red, numpy always green, fastnn's CPU backend always blue, and so on.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastnn.bench.report import (
    fastnn_time,
    group_cases,
    median_times,
    peer_anomalies,
    peer_columns,
    roofline_of,
)

__all__ = [
    "IMPL_COLORS",
    "format_ratio",
    "impl_color",
    "plot_all",
    "plot_ratios",
    "plot_roofline",
    "ratios_figure",
    "roofline_figure",
]

_MARKERS = "osD^v<>Ph*Xp"

#: Behind the roofs' labels, so that the points under them do not hide them.
_LABEL_BOX = {"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.0}

#: The colour of each implementation in every figure (matplotlib's tab10 and tab20 hues).
IMPL_COLORS = {
    "fastnn[cpu]": "#1f77b4",  # blue
    "fastnn[cpu:im2col]": "#17becf",  # cyan
    "fastnn[cpu:direct]": "#aec7e8",  # light blue
    "fastnn[cpu:winograd]": "#393b79",  # navy
    "fastnn[cupy]": "#9467bd",  # purple
    "fastnn[numba-cuda]": "#c5b0d5",  # light purple
    "fastnn[reference]": "#7f7f7f",  # grey
    "numpy": "#2ca02c",  # green
    "scipy": "#bcbd22",  # olive
    "torch": "#d62728",  # red
    "torch-cuda": "#ff7f0e",  # orange
    "cupy": "#8c564b",  # brown
}

#: Colours for implementations not named above, picked by a hash of the name (stable).
_SPARE_COLORS = (
    "#e377c2", "#5254a3", "#6b6ecf", "#637939", "#8c6d31", "#843c39", "#7b4173",
    "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
)  # fmt: skip

#: Ratio figure: inches per bar, extra inches per case, and around the axes.
_BAR_INCHES = 0.2
_CASE_GAP_INCHES = 0.16
_FRAME_INCHES = 1.6


def _label(ax, text: str, xy, offset, ha: str, va: str, size: int = 8, box=_LABEL_BOX) -> None:
    """Write ``text`` at ``offset`` points from the data point ``xy``."""
    ax.annotate(
        text, xy, xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=size,
        bbox=box,
    )  # fmt: skip


def impl_color(name: str) -> str:
    """The colour of implementation ``name``: the same in every figure and every run."""
    if name in IMPL_COLORS:
        return IMPL_COLORS[name]
    if name.startswith("fastnn[cpu:winograd"):  # winograd2, winograd4, ...
        return IMPL_COLORS["fastnn[cpu:winograd]"]
    return _SPARE_COLORS[zlib.crc32(name.encode()) % len(_SPARE_COLORS)]


def format_ratio(value: float) -> str:
    """A speed-up as the bars and the axis show it: ``0.47x``, ``1.00x``, ``6.3x``, ``984x``."""
    if not math.isfinite(value):
        return "n/a"
    if value >= 100:
        return f"{value:.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x"


def _axis_label(value: float, _position: Any = None) -> str:
    """A log-axis tick as a plain number: ``0.5x``, ``1x``, ``6x``, ``100x`` (never 6x10^0)."""
    return f"{value:.6g}x"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ratios(
    doc: Mapping[str, Any], family: str
) -> tuple[list[str], dict[str, list[float]], set[tuple[int, str]]]:
    """Case labels; per peer, fastnn's default path's speed-up in each case (NaN: not
    run); and the (case index, peer) pairs that are a peer's anomaly."""
    peers = peer_columns(doc)
    anomalies = peer_anomalies(doc)
    labels, bars, marked = [], {p: [] for p in peers}, set()
    for (fam, op, shape), rows in group_cases(doc["results"]).items():
        if fam != family:
            continue
        times = median_times(rows)
        ours = {p: fastnn_time(rows, p) for p in peers if p in times}
        if not any(ours.values()):
            continue
        for p in peers:
            value = times[p] / ours[p] if ours.get(p) else math.nan
            bars[p].append(value)
            if (fam, op, shape, p) in anomalies:
                marked.add((len(labels), p))
        labels.append(f"{op} {shape}" if op != family else shape)
    bars = {p: v for p, v in bars.items() if any(not math.isnan(x) for x in v)}
    return labels, bars, marked


def ratios_figure(doc: Mapping[str, Any], family: str):
    """The figure of :func:`plot_ratios` (a matplotlib Figure), or None when fastnn has
    no measured implementation in ``family``."""
    labels, bars, marked = _ratios(doc, family)
    if not labels or not bars:
        return None
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plt = _pyplot()
    count = len(bars)
    case_inches = count * _BAR_INCHES + _CASE_GAP_INCHES
    height = max(_FRAME_INCHES + len(labels) * case_inches, 2.8)
    longest = max(len(label) for label in labels)
    width = 7.5 + min(longest, 60) * 0.07
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")

    values = [v for series in bars.values() for v in series if math.isfinite(v) and v > 0]
    low = min(min(values) / 1.6, 0.5)
    high = max(max(values) * 3.0, 2.0)  # room for the value labels right of the bars
    bar = _BAR_INCHES / case_inches  # bar thickness in data units (one case = 1)
    for i, (peer, series) in enumerate(bars.items()):
        color = impl_color(peer)
        ys = [j + (i - (count - 1) / 2) * bar for j in range(len(labels))]
        for j, (y, value) in enumerate(zip(ys, series)):
            if not (math.isfinite(value) and value > 0):
                continue
            # from the axis' left edge, so that 1.0x (and anything) has a visible bar
            anomaly = (j, peer) in marked
            ax.barh(
                y, value - low, height=bar * 0.9, left=low, color=color,
                hatch="//" if anomaly else None, alpha=0.5 if anomaly else 1.0,
            )  # fmt: skip
            label = format_ratio(value) + (" *" if anomaly else "")
            ax.text(value * 1.04, y, label, va="center", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=1.0)
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    decades = math.log10(high / low)  # fewer ticks per decade over a wide range
    subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0, 3.0) if decades <= 5 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(_axis_label))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first case on top
    ax.grid(axis="x", alpha=0.3)
    xlabel = "speed-up of fastnn = peer time / fastnn time (right of 1x: fastnn faster)"
    if marked:
        xlabel += "\n* hatched: the peer's anomaly (far below its own rate), not in the summary"
    ax.set_xlabel(xlabel)
    ax.set_title(
        f"{family}: fastnn's default path vs each peer ({doc.get('suite')} suite)",
        fontsize=10,
    )
    ax.legend(
        handles=[Patch(color=impl_color(peer), label=f"vs {peer}") for peer in bars],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    return fig


def plot_ratios(doc: Mapping[str, Any], family: str, path: Path) -> bool:
    """Bar chart of speed-ups over each peer for ``family``; False (no file) when fastnn
    has no measured implementation in that family."""
    fig = ratios_figure(doc, family)
    if fig is None:
        return False
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return True


def roofline_figure(doc: Mapping[str, Any]):
    """The figure of :func:`plot_roofline` (a matplotlib Figure)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    roof = roofline_of(doc)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6), layout="constrained")
    families: dict[str, str] = {}
    impls: dict[str, str] = {}
    xs_all, ys_all = [], []
    for row in doc["results"]:
        if not row["median_s"] or row["metric"] == "latency" or not row["bytes"]:
            continue
        if not row["flops"]:  # an empty batch: nothing to place
            continue
        intensity = row["flops"] / row["bytes"]
        achieved = row["flops"] / row["median_s"] / 1e9
        marker = families.setdefault(row["family"], _MARKERS[len(families) % len(_MARKERS)])
        color = impls.setdefault(row["impl"], impl_color(row["impl"]))
        ax.scatter(intensity, achieved, marker=marker, color=color, s=28, alpha=0.8)
        xs_all.append(intensity)
        ys_all.append(achieved)
    if xs_all:
        lo, hi = min(xs_all) / 2, max(max(xs_all) * 2, roof.balance * 4)
    else:
        lo, hi = 0.01, 1000.0
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [roof.attainable(x) for x in grid], color="black", linewidth=1.5)
    ax.axvline(roof.balance, color="black", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    bottom = min([*ys_all, roof.attainable(lo)]) / 2
    ax.set_ylim(bottom, roof.gflops * 2.5)
    ax.set_xlim(lo, hi)
    # the roofs, labelled where they are drawn (offsets in points)
    compute = f"compute roof: {roof.gflops:.0f} GFLOP/s (sgemm {roof.gemm_size}^3)"
    _label(ax, compute, (hi, roof.gflops), (-4, 4), "right", "bottom")
    memory = f"memory roof: {roof.gbps:.0f} GB/s (copy)"
    _label(ax, memory, (lo, roof.attainable(lo)), (6, -8), "left", "top")  # under the line
    balance = f"balance: {roof.balance:.1f} FLOP/byte"
    _label(ax, balance, (roof.balance, bottom), (3, 4), "left", "bottom", 7, None)
    for axis in (ax.xaxis, ax.yaxis):  # 0.1, 1, 10, 100 rather than 10^-1 ... 10^2
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.6g}"))
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(
        f"roofline: {roof.gflops:.0f} GFLOP/s, {roof.gbps:.0f} GB/s ({roof.threads} threads; "
        f"{doc.get('suite')} suite)",
        fontsize=10,
    )
    ax.grid(alpha=0.25, which="major")
    # two legends, one per encoding: colours are implementations, markers are families
    fig.legend(
        handles=[Patch(color=c, label=name) for name, c in impls.items()],
        title="implementation (colour)",
        fontsize=7,
        title_fontsize=8,
        loc="outside right upper",
        frameon=False,
    )
    fig.legend(
        handles=[
            Line2D([], [], marker=m, color="dimgray", linestyle="none", label=family)
            for family, m in families.items()
        ],
        title="op family (marker)",
        fontsize=7,
        title_fontsize=8,
        loc="outside right lower",
        frameon=False,
    )
    return fig


def plot_roofline(doc: Mapping[str, Any], path: Path) -> None:
    """Every measured (case, implementation) under the roofline; colour = implementation,
    marker = family.  Dispatch-overhead cases are left out (they measure latency)."""
    fig = roofline_figure(doc)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def plot_all(doc: Mapping[str, Any], out: Path) -> list[Path]:
    """Write every figure into ``out``; returns the paths written."""
    written = []
    path = out / "roofline.png"
    plot_roofline(doc, path)
    written.append(path)
    for family in dict.fromkeys(r["family"] for r in doc["results"]):
        path = out / f"ratios_{family}.png"
        if plot_ratios(doc, family, path):
            written.append(path)
    return written
