"""Where EfficientViT stands against SegFormer and SegNeXt on this device: published mIoU
against end-to-end latency measured here (``published_latency.png``, one panel per data set
with measured networks), and the paper's Jetson Orin speedups next to the ratios measured
here (``speedups.csv``). Peers are measured, never predicted."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from search_space.peers import published
from search_space.records import write_csv
from search_space.spec import SEG_DATASETS

from .page import figure_html, table_html
from .plots import DATASET_TITLE, family_scatter, legend, log_axis, pyplot, save

__all__ = ["SPEEDUP_PAIRS", "comparison_section", "figure_published_latency", "published_ratio", "speedups"]

#: (EfficientViT network, peer, dataset): the paper's headline speedups, and its neighbours
SPEEDUP_PAIRS = (
    ("efficientvit_seg_b2", "segformer_b3", "cityscapes"),
    ("efficientvit_seg_b1", "segnext_t", "cityscapes"),
    ("efficientvit_seg_b0", "segformer_b0", "cityscapes"),
    ("efficientvit_seg_b3", "segnext_s", "cityscapes"),
    ("efficientvit_seg_b1", "segformer_b1", "ade20k"),
    ("efficientvit_seg_b2", "segformer_b2", "ade20k"),
    ("efficientvit_seg_b2", "segnext_s", "ade20k"),
)


def published_ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    """b[key] / a[key] when both are published, else None."""
    return b[key] / a[key] if a.get(key) and b.get(key) else None


def speedups(measured: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Published Jetson Orin speedups (and mobile CPU speedups, where both networks of a
    pair have a published mobile point, each at its own input size) next to the ratios
    measured here (``measured``: label -> row at the table's size; empty where a network of
    the pair was not measured)."""
    rows, numbers = [], published()
    for ours, peer, dataset in SPEEDUP_PAIRS:
        pub = {r["model"]: r for r in numbers if r["dataset"] == dataset}
        a, b = pub.get(ours, {}), pub.get(peer, {})
        orin, mobile = published_ratio(a, b, "latency_orin_ms"), published_ratio(a, b, "latency_mobile_ms")
        ma, mb = measured.get(f"{ours}@{dataset}"), measured.get(f"{peer}@{dataset}")
        here = mb["measured_ms"] / ma["measured_ms"] if ma and mb else None
        rows.append({"efficientvit": ours, "peer": peer, "dataset": dataset,
                     "published_orin_speedup": None if orin is None else round(orin, 2),
                     "published_mobile_speedup": None if mobile is None else round(mobile, 2),
                     "measured_speedup_here": None if here is None else round(here, 2),
                     # the ratio's range over the two networks' timed runs: peer p10 / ours p90 to peer p90 / ours p10
                     "measured_p10_p90_range": None if here is None else
                     f"{mb['p10_ms'] / ma['p90_ms']:.2f}-{mb['p90_ms'] / ma['p10_ms']:.2f}",
                     "efficientvit_ms_here": ma and round(ma["measured_ms"], 2),
                     "peer_ms_here": mb and round(mb["measured_ms"], 2),
                     "miou_efficientvit": a.get("miou"), "miou_peer": b.get("miou")})
    return rows


def figure_published_latency(out_dir: Path, measured: dict[str, dict[str, Any]], resolution: str,
                             device: str) -> list[dict[str, Any]]:
    """Draw ``published_latency.png``: one panel per data set with a measured network."""
    rows = []
    for r in published():
        m = measured.get(f"{r['model']}@{r['dataset']}")
        if m is not None:
            rows.append({**r, "measured_ms": m["measured_ms"], "p10_ms": m["p10_ms"], "p90_ms": m["p90_ms"],
                         "measured_resolution": resolution})
    datasets = [d for d in SEG_DATASETS if any(r["dataset"] == d for r in rows)] or list(SEG_DATASETS[:1])
    plt = pyplot()
    # constrained layout keeps the shared note below the panels' own axis labels
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.4), squeeze=False, layout="constrained")
    for ax, dataset in zip(axes[0], datasets):
        pts = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["measured_ms"])
        family_scatter(ax, pts, "measured_ms")
        log_axis(ax)
        ax.set(xlabel="latency measured here (ms)", ylabel="published mIoU (%)", title=DATASET_TITLE[dataset])
        ax.grid(alpha=0.3)
        legend(ax, loc="best")
    fig.suptitle(f"Published mIoU against latency measured on {device}")
    fig.supxlabel(f"{resolution} input, batch 1; bars: p10-p90 of the timed runs", fontsize=9)
    save(fig, out_dir, "published_latency")
    write_csv(out_dir / "published_latency.csv", ("family", "model", "dataset", "miou", "measured_ms", "p10_ms",
                                                   "p90_ms", "measured_resolution", "latency_orin_ms", "source"), rows)
    return rows


def comparison_section(out_dir: Path, measured: dict[str, dict[str, Any]], resolution: str, device: str,
                       cpu: str, threads: int) -> tuple[str, list[dict[str, Any]]]:
    """Draw the comparison figure and write ``speedups.csv``; the section's HTML and the speedup rows."""
    figure_published_latency(out_dir, measured, resolution, device)
    ratios = speedups(measured)
    write_csv(out_dir / "speedups.csv", tuple(ratios[0]), ratios)
    # the mobile column only where a pair has published mobile points (no peer has one yet)
    mobile = ("published_mobile_speedup",) if any(r["published_mobile_speedup"] for r in ratios) else ()
    columns = ("efficientvit", "peer", "dataset", "published_orin_speedup", *mobile, "measured_speedup_here",
               "measured_p10_p90_range", "efficientvit_ms_here", "peer_ms_here")
    shown = [r for r in ratios if r["measured_speedup_here"] is not None] or ratios
    left_out = len(ratios) - len(shown)
    note = (f" {left_out} more pair(s) of the paper were not measured here (see --compare, --datasets and --full)."
            if left_out else "") + ' <a href="speedups.csv">speedups.csv</a>'
    caption = (f"Published mIoU against end-to-end latency measured on {html.escape(device)} "
               f"({html.escape(cpu)}) with onnxruntime, {threads} thread(s), batch 1, at {resolution} (not the papers' "
               "resolutions). Peers are measured, never predicted.")
    html_table = ("<h3>Speedups: published (Jetson AGX Orin, TensorRT fp16, full resolution) and measured here</h3>"
                  + table_html(shown, columns) + f"<p class='note'>Speedup: the peer's latency over EfficientViT's."
                  f"{note}</p>")
    return figure_html("published_latency", "Against SegFormer and SegNeXt, measured here", caption, html_table), ratios
