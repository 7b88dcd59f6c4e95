"""The report's figures: one colour per implementation in every figure, sizes that grow
with the number of cases, a visible bar and a value label for every ratio (1.0x too),
plain tick labels, and a roofline whose two legends and two roofs are labelled."""

from __future__ import annotations

import pytest

mcolors = pytest.importorskip("matplotlib.colors")

from fastnn.bench import plots  # noqa: E402
from fastnn.bench.roofline import Roofline  # noqa: E402

ROOF = Roofline(gflops=200.0, gbps=25.0, threads=2, gemm_size=2048, copy_mbytes=256)


def _doc(ratios: dict[str, list[float]], family: str = "activation", op: str = "") -> dict:
    """A report with one case per ratio: fastnn[cpu] takes 1 ms, each peer ratio ms.  Each
    case is its own op (``relu0``, ``relu1``...) unless ``op`` names one for all: a peer
    that takes 12x longer on one shape than on another of the same op and size is an
    anomaly (fastnn.bench.report.peer_anomalies)."""
    rows = []
    cases = len(next(iter(ratios.values())))
    for i in range(cases):
        base = {
            "family": family,
            "op": op or f"relu{i}",
            "shape": f"case-{i}",
            "metric": "bytes",
            "flops": 1e6 * (i + 1),
            "bytes": 4e6,
        }
        rows.append({**base, "impl": "fastnn[cpu]", "median_s": 1e-3})
        for peer, values in ratios.items():
            rows.append({**base, "impl": peer, "median_s": 1e-3 * values[i]})
    return {"suite": "test", "roofline": ROOF.to_dict(), "results": rows}


def _bars_by_color(fig) -> dict[str, list]:
    ax = fig.axes[0]
    found: dict[str, list] = {}
    for patch in ax.patches:
        found.setdefault(mcolors.to_hex(patch.get_facecolor()), []).append(patch)
    return found


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_each_implementation_has_one_colour_in_every_figure():
    assert plots.impl_color("torch") == plots.IMPL_COLORS["torch"]
    assert plots.impl_color("fastnn[cpu:winograd4]") == plots.impl_color("fastnn[cpu:winograd]")
    assert plots.impl_color("some-new-peer") == plots.impl_color("some-new-peer")
    assert len(set(plots.IMPL_COLORS.values())) == len(plots.IMPL_COLORS)
    # torch is the same red whatever other peers a family has, and in whatever order
    one = plots.ratios_figure(_doc({"torch": [2.0], "numpy": [3.0]}), "activation")
    two = plots.ratios_figure(_doc({"scipy": [2.0], "torch": [0.5]}), "activation")
    red = plots.IMPL_COLORS["torch"]
    assert len(_bars_by_color(one)[red]) == 1 and len(_bars_by_color(two)[red]) == 1
    legend = {t.get_text(): mcolors.to_hex(h.get_facecolor()) for t, h in zip(
        one.axes[0].get_legend().get_texts(), one.axes[0].get_legend().legend_handles
    )}  # fmt: skip
    assert legend["vs torch"] == red and legend["vs numpy"] == plots.IMPL_COLORS["numpy"]


def test_a_ratio_of_one_has_a_bar_and_every_bar_a_value_label():
    fig = plots.ratios_figure(_doc({"torch": [1.0, 6.0, 0.5]}), "activation")
    bars = _bars_by_color(fig)[plots.IMPL_COLORS["torch"]]
    assert len(bars) == 3 and all(bar.get_width() > 0 for bar in bars)
    ends = sorted(bar.get_x() + bar.get_width() for bar in bars)
    assert ends == pytest.approx([0.5, 1.0, 6.0])
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"1.00x", "6.00x", "0.50x"} <= texts


def test_a_peers_anomaly_is_hatched_and_starred():
    """torch takes 12x longer on case-1 than on case-2, which moves as many bytes."""
    fig = plots.ratios_figure(_doc({"torch": [1.0, 6.0, 0.5]}, op="relu"), "activation")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"1.00x", "6.00x *", "0.50x"} <= texts
    hatched = [p for p in fig.axes[0].patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_x() + hatched[0].get_width() == pytest.approx(6.0)
    assert "anomaly" in fig.axes[0].get_xlabel()


def test_tick_labels_are_plain_numbers():
    fig = plots.ratios_figure(_doc({"torch": [1.0, 6.0, 0.5, 40.0]}), "activation")
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert labels and all(label.endswith("x") for label in labels), labels
    assert not any("10^" in label or "times" in label for label in labels), labels
    assert "1x" in labels
    assert plots.format_ratio(984.4) == "984x" and plots.format_ratio(6.04) == "6.04x"


def test_figure_grows_with_the_number_of_cases():
    small = plots.ratios_figure(_doc({"torch": [1.0] * 3}), "activation")
    large = plots.ratios_figure(_doc({"torch": [1.0] * 60, "numpy": [2.0] * 60}), "activation")
    (w_small, h_small), (w_large, h_large) = small.get_size_inches(), large.get_size_inches()
    assert h_large > 10 * h_small / 2  # about 0.2 inch per bar
    assert h_large / (60 * 2) >= 0.18  # each bar keeps its thickness
    assert 6 <= w_small <= 14 and 6 <= w_large <= 14  # labels on the side, not below
    assert {t.get_fontsize() for t in large.axes[0].get_yticklabels()} == {8}


def test_no_figure_without_a_fastnn_row():
    doc = _doc({"torch": [1.0]})
    assert plots.ratios_figure(doc, "other-family") is None


def test_roofline_has_one_legend_per_encoding_and_labelled_roofs():
    doc = _doc({"torch": [2.0, 3.0], "numpy": [1.5, 1.0]}, family="conv2d")
    doc["results"] += [{**r, "family": "pool"} for r in _doc({"torch": [1.0]})["results"]]
    fig = plots.roofline_figure(doc)
    titles = {legend.get_title().get_text(): legend for legend in fig.legends}
    assert set(titles) == {"implementation (colour)", "op family (marker)"}
    colours = titles["implementation (colour)"]
    names = [t.get_text() for t in colours.get_texts()]
    assert names == ["fastnn[cpu]", "torch", "numpy"]
    for name, handle in zip(names, colours.legend_handles):
        assert mcolors.to_hex(handle.get_facecolor()) == plots.impl_color(name)
    markers = titles["op family (marker)"]
    assert [t.get_text() for t in markers.get_texts()] == ["conv2d", "pool"]
    assert {mcolors.to_hex(h.get_color()) for h in markers.legend_handles} == {"#696969"}
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "compute roof: 200 GFLOP/s" in texts and "memory roof: 25 GB/s" in texts
    assert "balance: 8.0 FLOP/byte" in texts


def test_plot_all_writes_png_files(tmp_path):
    doc = _doc({"torch": [2.0, 1.0]})
    written = plots.plot_all(doc, tmp_path)
    assert [p.name for p in written] == ["roofline.png", "ratios_activation.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
