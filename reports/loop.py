"""The accuracy-aware loop's rounds (``evit-nas search --rounds R``), when the study is one of
them: per round, its front (latency against predicted mIoU), the trained networks' predicted
against measured mIoU, and the best measured network against B0 (``loop.png``, ``loop.csv``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from search_space.records import write_csv

from .page import figure_html, table_html
from .plots import legend, pyplot, save

__all__ = ["LOOP_COLUMNS", "loop_rows", "loop_section"]

LOOP_COLUMNS = ("round", "network", "trial", "latency_ms", "predicted_miou", "predicted_std", "picked_by",
                "measured_miou")


def loop_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per network a round trained: its prediction when picked and its measured mIoU."""
    return [{"round": r["round"], "network": t["name"], "trial": t["trial"], "latency_ms": round(t["latency_ms"], 3),
             "predicted_miou": round(t["predicted_miou"], 2), "predicted_std": round(t["predicted_std"], 2),
             "picked_by": t["picked_by"],
             "measured_miou": None if t["measured_miou"] is None else round(t["measured_miou"], 2)}
            for r in record["round"] for t in r["trained"]]


def _figure(out_dir: Path, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    plt = pyplot()
    fig, (front_ax, check_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("viridis")
    count = max(len(record["round"]) - 1, 1)
    for r in record["round"]:
        colour = colours(r["round"] / count)
        pts = sorted((f["latency_ms"], f["predicted_miou"]) for f in r["front"])
        front_ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=colour, ms=3, label=f"round {r['round']}")
        trained = [t for t in rows if t["round"] == r["round"] and t["measured_miou"] is not None]
        check_ax.errorbar([t["predicted_miou"] for t in trained], [t["measured_miou"] for t in trained],
                          xerr=[t["predicted_std"] for t in trained], fmt="o", color=colour, label=f"round {r['round']}")
    reference = record["round"][-1].get("reference_miou")
    b0_ms = record.get("reference_latency_ms")
    if reference is not None and b0_ms is not None:
        front_ax.axvline(b0_ms, color="tab:orange", ls=":", label="B0's latency (predicted)")
    if reference is not None:
        check_ax.axhline(reference, color="tab:orange", ls=":", label="B0, measured")
    front_ax.axvline(record["budget_ms"], color="black", ls="--", lw=1, label="budget")
    front_ax.set(xlabel="latency (ms, predicted by the table)", ylabel="predicted mIoU (%)",
                 title="each round's feasible front")
    check_ax.set(xlabel="predicted mIoU when picked (%), ± the ensemble's spread", ylabel="measured mIoU (%)",
                 title="the trained networks")
    for ax in (front_ax, check_ax):
        ax.grid(alpha=0.3)
        legend(ax)
    save(fig, out_dir, "loop")


def loop_section(out_dir: Path, record: dict[str, Any]) -> str:
    """Draw the loop's figure and CSV; the section's HTML (a per-round summary table under it)."""
    rows = loop_rows(record)
    _figure(out_dir, record, rows)
    write_csv(out_dir / "loop.csv", LOOP_COLUMNS, rows)
    b0_ms = record.get("reference_latency_ms")
    summary = [{"round": r["round"], "trained": len(r["trained"]), "predictor fitted on": r["predictor_networks"],
                "predictor CV Kendall tau": r["predictor_cv_kendall"], "best measured": r["best"]["network"],
                "its mIoU (%)": round(r["best"]["miou"], 2), "its latency (ms)": round(r["best"]["latency_ms"], 2),
                "B0 mIoU (%)": None if r["reference_miou"] is None else round(r["reference_miou"], 2),
                "B0 latency (ms)": None if b0_ms is None else round(b0_ms, 2)} for r in record["round"]]
    recipe = record["recipe"]
    caption = (f"The accuracy-aware loop: {len(record['round'])} round(s) of search, brief training of "
               f"{record['per_round']} network(s) on {html.escape(str(record['dataset']))} ({recipe['steps']} steps, "
               f"batch {recipe['batch_size']}) and a refit of the predictor. Left: each round's front by the "
               "predictor of that round. Right: the trained networks' mIoU predicted when they were picked against "
               "the mIoU measured. Latencies are predicted by the table.")
    return figure_html("loop", "The accuracy-aware loop, round by round", caption,
                       table_html(summary, tuple(summary[0])) if summary else "")
