"""The report's figures: legends list only what is plotted, and log axes keep their tick
labels apart (drawn with matplotlib's real renderer)."""

import pytest

from reports.comparison import figure_published_latency
from reports.plots import family_scatter, legend, log_axis, pyplot
from search_space.peers import published


def _labels(ax):
    """The visible tick labels of both axes, with their boxes on the canvas."""
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    out = []
    for axis in (ax.xaxis, ax.yaxis):
        out.append([(t.get_text(), t.get_window_extent(renderer)) for t in axis.get_ticklabels(which="both")
                    if t.get_visible() and t.get_text()])
    return out


@pytest.mark.parametrize("low, high", [(12.0, 250.0), (15.0, 60.0), (16.0, 2000.0), (3.0, 1400.0), (1.1, 1.7)])
def test_log_axis_tick_labels_do_not_overlap(low, high):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([low, high], [low, high])
    log_axis(ax, "x")
    log_axis(ax, "y")
    for labels in _labels(ax):
        shown = [(text, box) for text, box in labels if box.width > 0]
        assert len(shown) >= 2, [text for text, _ in labels]  # a reader can tell the scale
        for (a, box_a), (b, box_b) in zip(shown, shown[1:]):
            assert not box_a.overlaps(box_b), (a, b)
        assert all("10^" not in text and "times" not in text for text, _ in shown)
    plt.close(fig)


def test_a_legend_lists_only_the_families_with_points():
    plt = pyplot()
    fig, ax = plt.subplots()
    rows = [r for r in published() if r["dataset"] == "cityscapes" and r["family"] in ("EfficientViT", "SegNeXt")]
    family_scatter(ax, rows, "macs_g")
    legend(ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["EfficientViT", "SegNeXt"]
    empty = plt.subplots()[1]
    family_scatter(empty, [], "macs_g")
    legend(empty)
    assert empty.get_legend() is None
    plt.close("all")


def test_the_latency_figure_draws_only_data_sets_with_measured_networks(tmp_path):
    row = {"measured_ms": 20.0, "p10_ms": 19.0, "p90_ms": 22.0}
    measured = {"efficientvit_seg_b0@cityscapes": row, "segnext_t@cityscapes": {"measured_ms": 30.0, "p10_ms": 29.0, "p90_ms": 33.0}}
    rows = figure_published_latency(tmp_path, measured, "256x512", "here")
    assert {r["dataset"] for r in rows} == {"cityscapes"}
    svg = (tmp_path / "published_latency.svg").read_text()
    assert "Cityscapes" in svg and "ADE20K" not in svg
    assert "EfficientNet" not in svg and "HRFormer" not in svg and "EfficientViT-cls" not in svg
