"""The paper's published points, first of the reproduction sections: published mIoU against
published MACs (``published_macs.png``, nothing measured), and EfficientViT's published
mobile CPU points (Snapdragon 8Gen1) next to the same networks measured here, as ratios
within the B series (``mobile_points.csv``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from search_space.peers import PEERS, published
from search_space.records import write_csv
from search_space.spec import SEG_DATASETS

from .measured import EFFICIENTVIT
from .page import figure_html, section_html, table_html
from .plots import DATASET_TITLE, family_scatter, legend, log_axis, pyplot, save

__all__ = ["figure_published_macs", "mobile_points", "published_sections"]

MOBILE_COLUMNS = ("network", "dataset", "mobile_resolution", "published_mobile_ms", "reference", "published_ratio",
                  "published_ratio_per_pixel", "measured_ms_here", "measured_ratio_here")


def figure_published_macs(out_dir: Path) -> list[dict[str, Any]]:
    """Draw ``published_macs.png`` from every published segmentation model, also those not
    re-implemented here (SegFormer-B4/B5, SegNeXt-B/L)."""
    rows = [r for r in published() if r["dataset"] in SEG_DATASETS]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, dataset in zip(axes, SEG_DATASETS):
        pts = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["macs_g"] or 0)
        family_scatter(ax, pts, "macs_g")
        res = pts[0]["resolution_hw"] if pts else ""
        log_axis(ax)
        ax.set(xlabel=f"published MACs (G) at {res}", ylabel="published mIoU (%)", title=DATASET_TITLE[dataset])
        ax.grid(alpha=0.3)
        legend(ax, loc="best")
    fig.suptitle("Published mIoU and MACs (papers and official repositories)")
    save(fig, out_dir, "published_macs")
    write_csv(out_dir / "published_macs.csv", ("family", "model", "dataset", "resolution_hw", "miou", "params_m",
                                                "macs_g", "latency_orin_ms", "source"), rows)
    return rows


def _pixels(resolution_hw: str) -> int:
    height, width = (int(v) for v in resolution_hw.split("x"))
    return height * width


def mobile_points(measured: dict[str, dict[str, Any]], resolution: str) -> list[dict[str, Any]]:
    """EfficientViT's published mobile CPU points (``latency_mobile_ms`` of published.csv)
    next to the same networks measured here at ``resolution``, as ratios within the B
    series of each dataset (to its smallest network with a point): the published ratio as
    published (each network at its own input size), the published ratio per pixel (each
    latency over its input's pixel count first: latency taken as linear in pixels), and
    the ratio measured here (empty where a network was not measured)."""
    rows = []
    for dataset in SEG_DATASETS:
        points = [r for r in published() if r["dataset"] == dataset and r["model"] in EFFICIENTVIT
                  and r["latency_mobile_ms"] is not None]
        if not points:
            continue
        ref = points[0]
        ref_here = measured.get(f"{ref['model']}@{dataset}")
        for r in points:
            here = measured.get(f"{r['model']}@{dataset}")
            per_pixel = (r["latency_mobile_ms"] / _pixels(r["mobile_resolution_hw"])) / (
                ref["latency_mobile_ms"] / _pixels(ref["mobile_resolution_hw"]))
            rows.append({
                "network": r["model"], "dataset": dataset, "mobile_resolution": r["mobile_resolution_hw"],
                "published_mobile_ms": r["latency_mobile_ms"], "reference": ref["model"],
                "published_ratio": round(r["latency_mobile_ms"] / ref["latency_mobile_ms"], 2),
                "published_ratio_per_pixel": round(per_pixel, 2),
                "measured_ms_here": here and round(here["measured_ms"], 2), "measured_resolution": resolution,
                "measured_ratio_here": round(here["measured_ms"] / ref_here["measured_ms"], 2) if here and ref_here
                else None,
                "mobile_device": r["mobile_device"], "mobile_source": r["mobile_source"]})
    return rows


def _mobile_html(rows: list[dict[str, Any]], resolution: str) -> str:
    device = html.escape(str(rows[0]["mobile_device"]))
    peers = "" if any(r["latency_mobile_ms"] for r in published() if r["model"] in PEERS) else (
        "published.csv holds no mobile point of SegFormer or SegNeXt (none was found as numbers with a source), so "
        "the speedup table has no mobile column. ")
    return section_html(
        "mobile_points", "Published mobile points: EfficientViT B0-B3 on a Snapdragon 8Gen1 CPU, and here",
        table_html(rows, MOBILE_COLUMNS)
        + f"<p class='note'>Mobile latency as published ({device}; the first EfficientViT README's tables), each "
        f"network at its own input size (<i>mobile_resolution</i>). {peers}The B series is compared with itself: "
        "<i>published_ratio</i> is a network's published latency over the <i>reference</i>'s, "
        "<i>published_ratio_per_pixel</i> divides each by its input's pixel count first (latency taken as linear in "
        "pixels), and <i>measured_ratio_here</i> is the same ratio measured here at "
        f"{html.escape(resolution)} (empty: not measured; see --compare and --datasets). "
        '<a href="mobile_points.csv">mobile_points.csv</a></p>')


def published_sections(out_dir: Path, measured: dict[str, dict[str, Any]], resolution: str
                       ) -> tuple[list[str], list[dict[str, Any]]]:
    """Draw the published MACs figure and write ``mobile_points.csv``; the two sections'
    HTML and the mobile rows."""
    figure_published_macs(out_dir)
    mobile = mobile_points(measured, resolution)
    write_csv(out_dir / "mobile_points.csv", tuple(mobile[0]), mobile)
    macs = figure_html("published_macs", "The paper's comparison: published mIoU against MACs",
                       "Published single-scale mIoU and MACs from the papers and official repositories (Cityscapes at "
                       "1024x2048, ADE20K at 512x512): the EfficientViT paper's comparison. Nothing here is measured.")
    return [macs, _mobile_html(mobile, resolution)], mobile
