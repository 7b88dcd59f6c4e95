"""PNG figures of a report (matplotlib, Agg backend: no display needed).

- ``ratios_<family>.png``: for every case of the family, fastnn's fastest implementation's
  speed-up over each peer (log scale; above 1 fastnn is faster).
- ``roofline.png``: every implementation on every case placed by arithmetic intensity and
  achieved GFLOP/s under the measured roofline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastnn.bench.case import is_subject
from fastnn.bench.report import group_cases, median_times, peer_columns, roofline_of

__all__ = ["plot_all", "plot_ratios", "plot_roofline"]

_MARKERS = "osD^v<>Ph*Xp"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ratios(doc: Mapping[str, Any], family: str, path: Path) -> bool:
    """Bar chart of speed-ups over each peer for ``family``; False (no file) when fastnn
    has no measured implementation in that family."""
    peers = peer_columns(doc)
    labels, bars = [], {p: [] for p in peers}
    for (fam, op, shape), rows in group_cases(doc["results"]).items():
        if fam != family:
            continue
        times = median_times(rows)
        ours = [t for impl, t in times.items() if is_subject(impl)]
        if not ours:
            continue
        labels.append(f"{op}\n{shape}")
        for p in peers:
            bars[p].append(times[p] / min(ours) if p in times else math.nan)
    bars = {p: v for p, v in bars.items() if any(not math.isnan(x) for x in v)}
    if not labels or not bars:
        return False
    plt = _pyplot()
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels) + 2), 4.5))
    for i, (peer, values) in enumerate(bars.items()):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(labels))]
        # bars start at 1: up where fastnn is faster, down where it is slower
        heights = [0.0 if math.isnan(v) else v - 1.0 for v in values]
        ax.bar(xs, heights, width, bottom=1.0, label=f"vs {peer}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("speed-up of fastnn (peer time / fastnn time)")
    ax.set_title(f"{family}: fastnn's fastest implementation vs peers ({doc.get('suite')} suite)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_roofline(doc: Mapping[str, Any], path: Path) -> None:
    """Every measured (case, implementation) under the roofline; color = implementation,
    marker = family.  Dispatch-overhead cases are left out (they measure latency)."""
    roof = roofline_of(doc)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    families: dict[str, str] = {}
    colors: dict[str, Any] = {}
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xs_all = []
    for row in doc["results"]:
        if not row["median_s"] or row["metric"] == "latency" or not row["bytes"]:
            continue
        if not row["flops"]:  # an empty batch: nothing to place
            continue
        intensity = row["flops"] / row["bytes"]
        achieved = row["flops"] / row["median_s"] / 1e9
        marker = families.setdefault(row["family"], _MARKERS[len(families) % len(_MARKERS)])
        color = colors.setdefault(row["impl"], cycle[len(colors) % len(cycle)])
        ax.scatter(intensity, achieved, marker=marker, color=color, s=28, alpha=0.8)
        xs_all.append(intensity)
    if xs_all:
        lo, hi = min(xs_all) / 2, max(max(xs_all) * 2, roof.balance * 4)
    else:
        lo, hi = 0.01, 1000.0
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [roof.attainable(x) for x in grid], color="black", linewidth=1.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(
        f"roofline: {roof.gflops:.0f} GFLOP/s, {roof.gbps:.0f} GB/s ({roof.threads} threads)"
    )
    for impl, color in colors.items():
        ax.scatter([], [], color=color, label=impl)
    for family, marker in families.items():
        ax.scatter([], [], color="gray", marker=marker, label=family)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
