"""How well the latency table predicts: its prediction against the end-to-end measurement of
every EfficientViT network the report timed at the table's size (B0-B3 and the validated
front networks), ``latency_predictor.png``. Only where the table is of the machine that
measured: another machine's predictions are not compared with this one's timings."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from search_space.records import write_csv

from .page import figure_html
from .plots import legend, log_axis, pyplot, save

__all__ = ["figure_predictor", "predictor_section"]


def figure_predictor(out_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Draw ``latency_predictor.png`` from measurement rows with ``predicted_ms``; returns
    {"networks", "mape_pct", "within_10pct"}."""
    pts = [r for r in rows if r.get("predicted_ms") is not None]
    errors = [100 * (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in pts]
    stats = {"networks": len(pts),
             "mape_pct": round(sum(abs(e) for e in errors) / len(errors), 2) if errors else None,
             "within_10pct": sum(abs(e) <= 10 for e in errors)}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if pts:
        lo = min(min(r["predicted_ms"], r["measured_ms"]) for r in pts) * 0.8
        hi = max(max(r["predicted_ms"], r["measured_ms"]) for r in pts) * 1.2
        ax.plot([lo, hi], [lo, hi], color="gray", lw=1, label="predicted = measured")
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.15, label="±10%")
        ax.scatter([r["measured_ms"] for r in pts], [r["predicted_ms"] for r in pts], color="tab:red", zorder=3)
        for r in pts:
            ax.annotate(r["name"].replace("efficientvit_seg_", "").replace("@cityscapes", "").replace("@ade20k", " (ADE)"),
                        (r["measured_ms"], r["predicted_ms"]), textcoords="offset points", xytext=(4, -8), fontsize=7)
        log_axis(ax, "x")
        log_axis(ax, "y")
        legend(ax, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no EfficientViT network measured\non the table's device", ha="center", va="center",
                transform=ax.transAxes)
    ax.set(xlabel="measured end to end (ms)", ylabel="predicted by the table (ms)",
           title=f"Latency table accuracy: MAPE {stats['mape_pct']}% over {stats['networks']} networks")
    ax.grid(alpha=0.3)
    save(fig, out_dir, "latency_predictor")
    write_csv(out_dir / "latency_predictor.csv", ("name", "summary", "predicted_ms", "measured_ms", "p10_ms", "p90_ms"),
              pts)
    return stats


def predictor_section(out_dir: Path, rows: list[dict[str, Any]], table_here: bool, table_device: str) -> tuple[str, dict]:
    """Draw the predictor figure from the EfficientViT rows measured at the table's size
    (none when ``table_here`` is false: the table is another machine's); the section's HTML
    and the figure's statistics."""
    stats = figure_predictor(out_dir, rows if table_here else [])
    if table_here:
        caption = (f"Prediction against end-to-end measurement for {stats['networks']} EfficientViT networks (B0-B3 "
                   f"and validated front networks the table covers): MAPE {stats['mape_pct']}%, "
                   f"{stats['within_10pct']} within ±10%.")
    else:
        caption = (f"The table was measured on {html.escape(table_device)}, not on the machine that measured this "
                   "report, so its predictions are not compared with these measurements; adapt the table to this "
                   "machine (evit-nas profile --adapt-from) or time on its device with --remote.")
    return figure_html("latency_predictor", "Latency table accuracy", caption), stats
