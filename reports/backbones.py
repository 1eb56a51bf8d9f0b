"""The paper's ImageNet backbone claim (opt-in): EfficientViT-B3 against EfficientNet-B6,
published top-1 against latency measured here, each classifier at its official input size
(``backbones.png``), with the claim's MACs and latency ratios published and measured
(``backbone_claim.csv``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from search_space.peers import published
from search_space.records import write_csv
from search_space.registry import default_resolution, model_spec

from .page import figure_html, table_html
from .plots import FAMILY_STYLE, legend, log_axis, pyplot, save

__all__ = ["BACKBONES", "BACKBONE_CLAIM", "backbone_networks", "backbone_rows", "backbones_section"]

#: the ImageNet classifiers of the backbone figure, each timed at its default (official) input size
BACKBONES = ("efficientvit_cls_b1", "efficientvit_cls_b2", "efficientvit_cls_b3", "efficientnet_b6")
#: (ours, the baseline, published MACs ratio, published speed-up, where it was measured)
BACKBONE_CLAIM = ("efficientvit_cls_b3", "efficientnet_b6", 2.9, 7.9, "Qualcomm Snapdragon 8Gen1 CPU")


def backbone_networks() -> list[tuple[str, Any, tuple[int, int]]]:
    """(name, spec, official input size) of each classifier, as the shared measurement takes them."""
    return [(n, model_spec(n), default_resolution(n)) for n in BACKBONES]


def backbone_rows(measured: dict[tuple[str, str], dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per classifier: published top-1 and MACs, measured MACs and latency; the
    claim's rows: MACs and latency ratios, published and measured)."""
    rows = []
    for name in BACKBONES:
        h, w = default_resolution(name)
        size = f"{h}x{w}"
        m = measured[(name, size)]
        pub = next((r for r in published(name) if r["resolution_hw"] == size), {})
        rows.append({"model": name, "family": model_spec(name).family, "resolution": size,
                     "published_top1": pub.get("top1"), "published_macs_g": pub.get("macs_g"),
                     "macs_g": round(m["macs"] / 1e9, 3), "params_m": round(m["params"] / 1e6, 3),
                     "measured_ms": round(m["raw_measured_ms"], 2), "p10_ms": round(m["p10_ms"], 2),
                     "p90_ms": round(m["p90_ms"], 2)})
    ours, base, macs_claim, speed_claim, where = BACKBONE_CLAIM
    a, b = next(r for r in rows if r["model"] == ours), next(r for r in rows if r["model"] == base)
    claim = [
        {"claim": f"MACs, {base} ({b['resolution']}) / {ours} ({a['resolution']})", "published": f"{macs_claim}x",
         "measured_here": f"{b['macs_g'] / a['macs_g']:.2f}x", "note": "fvcore MACs at the official input sizes"},
        {"claim": f"latency, {base} / {ours}", "published": f"{speed_claim}x ({where})",
         "measured_here": f"{b['measured_ms'] / a['measured_ms']:.2f}x",
         "note": f"top-1 (published): {a['published_top1']} vs {b['published_top1']}"},
    ]
    return rows, claim


def figure_backbones(out_dir: Path, rows: list[dict[str, Any]], device: str) -> None:
    """Draw ``backbones.png`` (``backbones.csv`` behind it)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for family in dict.fromkeys(r["family"] for r in rows):
        pts = [r for r in rows if r["family"] == family and r["published_top1"] is not None]
        if not pts:
            continue
        color, marker = FAMILY_STYLE.get(family, ("black", "x"))
        ax.plot([r["measured_ms"] for r in pts], [r["published_top1"] for r in pts], marker=marker, color=color,
                label=family, ls="-", lw=1)
        for r in pts:
            ax.annotate(f"{r['model'].replace('efficientvit_cls_', '').replace('efficientnet_', '')} "
                        f"({r['resolution'].split('x')[0]})", (r["measured_ms"], r["published_top1"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
    log_axis(ax)
    ax.margins(x=0.12)
    ax.set(xlabel="latency measured here (ms, official input size, batch 1)", ylabel="published ImageNet top-1 (%)",
           title=f"ImageNet backbones on {device}")
    ax.grid(alpha=0.3)
    legend(ax)
    save(fig, out_dir, "backbones")
    write_csv(out_dir / "backbones.csv", tuple(rows[0]), rows)


def backbones_section(out_dir: Path, measured: dict[tuple[str, str], dict[str, Any]], device: str, threads: int
                      ) -> tuple[str, list[dict[str, Any]]]:
    """Draw the figure and write ``backbone_claim.csv``; the section's HTML and the claim's rows."""
    table, claim = backbone_rows(measured)
    figure_backbones(out_dir, table, device)
    write_csv(out_dir / "backbone_claim.csv", tuple(claim[0]), claim)
    return figure_html(
        "backbones", "ImageNet backbones: the paper's claim against EfficientNet-B6",
        f"Published ImageNet top-1 (official repositories, papers) against end-to-end latency measured on "
        f"{html.escape(device)} with onnxruntime, {threads} thread(s), batch 1, each classifier at its "
        "official input size (EfficientViT B1-B3 at 288x288, EfficientNet-B6 at 528x528). Nothing is trained here.",
        "<h3>The backbone claim: published and measured here</h3>"
        + table_html(claim, ("claim", "published", "measured_here", "note"))
        + '<p><a href="backbone_claim.csv">backbone_claim.csv</a></p>'), claim
