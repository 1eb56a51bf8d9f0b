"""Where the time goes (opt-in): B1, B3, SegNeXt-T/S and SegFormer-B0 split by operator
category with onnxruntime's profiler (``latency_tables.explain``), on this machine only
(``time_breakdown.png``; rows in ``time_breakdown.csv``, reused by a later report)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latency_tables.explain import CATEGORIES
from latency_tables.timing import Timing
from search_space.records import package_version, write_csv
from search_space.registry import model_spec

from .measured import read_measured
from .page import figure_html, table_html
from .plots import display_name, pyplot, save

__all__ = ["BREAKDOWN_COLUMNS", "BREAKDOWN_NETWORKS", "breakdown_section", "figure_time_breakdown", "time_breakdown"]

#: the networks of "Where the time goes" (the speedup table's disagreements: B1 vs SegNeXt-T, B3 vs SegNeXt-S)
BREAKDOWN_NETWORKS = ("efficientvit_seg_b1", "efficientvit_seg_b3", "segnext_t", "segnext_s", "segformer_b0")


def _column(category: str) -> str:
    return category.replace(" ", "_") + "_ms"


#: the columns of time_breakdown.csv: ms per category of latency_tables.explain
BREAKDOWN_COLUMNS = ("network", "resolution", "measured_ms", "profiled_total_ms", *map(_column, CATEGORIES))


def time_breakdown(path: Path, names: Sequence[str], resolution: tuple[int, int], device: str, timing: Timing,
                   log: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], dict]:
    """Where the time of each of ``names`` (Cityscapes configuration) goes at ``resolution``
    on this machine: ``latency_tables.explain.explain`` per network, its categories' ms in
    one row each (they sum to ``profiled_total_ms``, the median per run of all node times),
    with ``measured_ms`` (median wall clock of a plain session) and ``coverage`` (their
    ratio). Rows already in ``path`` (same device, threads and precision, this size, every
    category) are reused; the others are profiled and the file is written again.

    Returns:
        (one row per network, in the order of ``names``; the file's metadata).

    Raises:
        ReportError: ``path`` holds another device's, CPU's, thread count's or precision's rows.
        ProfileError: onnxruntime's profile could not be read.
    """
    from latency_tables.explain import explain

    size = "x".join(map(str, resolution))
    meta, rows = read_measured(path, device, timing)
    columns = [_column(c) for c in CATEGORIES]
    done = {r["network"]: r for r in rows if r.get("resolution") == size and all(r.get(c) is not None for c in columns)}
    todo = [n for n in names if n not in done]
    if todo:
        log(f"profiling {len(todo)} network(s) with onnxruntime's profiler at {size}, {timing.threads} thread(s) "
            f"({len(names) - len(todo)} reused from {path})")
        for name in todo:
            result = explain(model_spec(name, "cityscapes"), tuple(resolution), timing, name=name)
            by_category = {r["category"]: r["ms"] for r in result["by_category"]}
            done[name] = {"network": name, "resolution": size, "measured_ms": result["measured_ms"],
                          "profiled_total_ms": result["profiled_total_ms"],
                          **{_column(c): by_category.get(c, 0.0) for c in CATEGORIES}}
            meta = {"device": device, "resolution": size, "threads": timing.threads, "precision": timing.precision,
                    "cpu": result["cpu"], "arch": result["arch"], "onnxruntime": result["onnxruntime"],
                    "warmup": timing.warmup, "repeats": timing.repeats,
                    "method": "latency_tables.explain (onnxruntime profiler)", "package_version": package_version(),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_csv(path, BREAKDOWN_COLUMNS, list(done.values()), meta)
    out = []
    for name in names:
        row = dict(done[name])
        row["coverage"] = round(row["profiled_total_ms"] / row["measured_ms"], 3)
        out.append(row)
    return out, meta


def figure_time_breakdown(out_dir: Path, rows: list[dict[str, Any]], device: str) -> None:
    """Stacked bars of each network's time per category: ms (left) and shares (right); the
    legend lists the categories with time in some network."""
    plt = pyplot()
    colors = dict(zip(CATEGORIES, plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]))
    shown = [c for c in CATEGORIES if any(r[_column(c)] > 0 for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.6 * len(rows) + 2.2), sharey=True)
    labels = [display_name(r["network"]) for r in rows]
    for ax, share in zip(axes, (False, True)):
        left = [0.0] * len(rows)
        for category in shown:
            values = [r[_column(category)] / (r["profiled_total_ms"] if share else 1) for r in rows]
            ax.barh(labels, values, left=left, color=colors[category], label=category, edgecolor="white", lw=0.5)
            left = [a + b for a, b in zip(left, values)]
        ax.set(xlabel="share of the profiled node time" if share else "ms per run (onnxruntime's profiler)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    axes[1].set_xlim(0, 1)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    size = rows[0]["resolution"] if rows else ""
    fig.suptitle(f"Where the time goes at {size}, batch 1, on {device}")
    save(fig, out_dir, "time_breakdown")


def breakdown_section(out_dir: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """Draw the figure; the section's HTML: figure, caption and ms (share) per category.
    The table is split in two (times, then categories) so that it fits the page."""
    figure_time_breakdown(out_dir, rows, str(meta.get("device")))
    shown = [c for c in CATEGORIES if any(r[_column(c)] > 0 for r in rows)]
    table = []
    for r in rows:
        total = r["profiled_total_ms"]
        table.append({"network": r["network"], "measured_ms": f"{r['measured_ms']:.2f}",
                      "profiled_ms": f"{total:.2f}", "coverage": f"{r['coverage']:.0%}",
                      **{c: f"{r[_column(c)]:.2f} ({r[_column(c)] / total:.0%})" for c in shown}})
    caption = (
        f"Each network's time split by operator category with onnxruntime's profiler "
        f"(<code>evit-nas latency explain</code>) on {html.escape(str(meta.get('device')))} "
        f"({html.escape(str(meta.get('cpu')))}), onnxruntime {html.escape(str(meta.get('onnxruntime')))}, "
        f"{meta.get('threads')} thread(s), batch 1, at {html.escape(str(meta.get('resolution')))}, median of "
        f"{meta.get('repeats')} profiled runs after {meta.get('warmup')} warm-up; Cityscapes configurations, random "
        "weights. Left: ms per run; right: shares of the profiled node time. onnxruntime fuses a convolution's "
        "BatchNorm (and some activations) into it, so their time counts as convolution; LayerNorm stays "
        "normalisation.")
    return figure_html(
        "time_breakdown", "Where the time goes", caption,
        table_html(table, ("network", "measured_ms", "profiled_ms", "coverage"))
        + table_html(table, ("network", *shown))
        + "<p class='note'>Cells: ms per run (share of <i>profiled_ms</i>). <i>measured_ms</i>: median wall clock of "
        "a plain session (no profiler) run in turn with the profiled one; <i>profiled_ms</i>: median per run of the "
        "profiler's node times, which the categories add up to; <i>coverage</i>: their ratio (below 100%: time "
        "between nodes; above: the profiled session runs slower than the plain one, the profiler's own cost). "
        "Categories with no time in any network are left out.</p>")
