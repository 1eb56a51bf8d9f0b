"""The report's first section: the user's search, every trial and the feasible Pareto front
(``search.png``), with EfficientViT B0-B3 placed where the latency table covers them."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import optuna

from latency_tables.measure import predict_or_none
from latency_tables.table import LatencyTable
from nas.proxy import make_proxy
from nas.search import front, trial_result
from search_space.records import write_csv
from search_space.registry import model_spec

from .measured import EFFICIENTVIT
from .page import figure_html, table_html
from .plots import display_name, legend, pyplot, save

__all__ = ["figure_search", "search_section", "study_trials"]

#: the columns of the front's table on the page
FRONT_COLUMNS = ("trial", "latency_ms", "proxy", "macs_g", "params_m", "summary")


def study_trials(study: optuna.Study) -> list[dict[str, Any]]:
    """Every completed trial's scores, with ``feasible`` and ``on_front``."""
    on_front = {t.number for t in front(study)}
    budget = study.user_attrs.get("budget_ms")
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        r = trial_result(t)
        if r is None:
            continue
        rows.append({"trial": t.number, "latency_ms": r.latency_ms, "proxy": r.proxy, "macs": r.macs,
                     "params": r.params, "feasible": budget is None or r.latency_ms <= budget,
                     "on_front": t.number in on_front, "summary": r.arch.summary()})
    return rows


def figure_search(out_dir: Path, trials: list[dict[str, Any]], budget: float | None, proxy_name: str,
                  references: list[dict[str, Any]]) -> None:
    """``search.png``: predicted latency against the proxy for every trial, the budget, the
    feasible front and ``references`` (B0-B3) as stars; ``search.csv`` behind it."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for feasible, color, label in ((False, "lightgray", "over budget"), (True, "tab:blue", "within budget")):
        pts = [t for t in trials if t["feasible"] == feasible]
        if pts:
            ax.scatter([t["latency_ms"] for t in pts], [t["proxy"] for t in pts], s=8, color=color, alpha=0.6,
                       label=f"{label} ({len(pts)} trials)")
    members = sorted((t for t in trials if t["on_front"]), key=lambda t: t["latency_ms"])
    ax.plot([t["latency_ms"] for t in members], [t["proxy"] for t in members], "o-", color="tab:red", ms=4,
            label=f"feasible Pareto front ({len(members)})")
    if budget is not None:
        ax.axvline(budget, color="black", ls="--", lw=1, label=f"budget {budget:g} ms")
    for r in references:
        ax.scatter([r["latency_ms"]], [r["proxy"]], marker="*", s=140, color="tab:orange", edgecolor="black", zorder=5)
        ax.annotate(display_name(r["network"]), (r["latency_ms"], r["proxy"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set(xlabel="predicted latency (ms, latency table)", ylabel=f"proxy: {proxy_name}", title="Search: every trial")
    if proxy_name in ("params", "macs"):
        ax.set_yscale("log")
    ax.margins(x=0.08)
    ax.grid(alpha=0.3)
    legend(ax, loc="lower right")
    save(fig, out_dir, "search")
    write_csv(out_dir / "search.csv", ("trial", "latency_ms", "proxy", "macs", "params", "feasible", "on_front",
                                        "summary"), trials + [{**r, "trial": r["network"], "feasible": None}
                                                              for r in references])


def search_section(out_dir: Path, study: optuna.Study, table: LatencyTable, trials: list[dict[str, Any]]) -> str:
    """Draw the search figure; the section's HTML (figure, caption and the front as a table)."""
    attrs = study.user_attrs
    proxy_name = attrs.get("proxy", "params")
    proxy = make_proxy(proxy_name, table.resolution)
    first = next(t for t in study.get_trials(deepcopy=False) if t.number == trials[0]["trial"])
    classes = trial_result(first).arch.num_classes
    references = []
    for name in EFFICIENTVIT:
        spec = model_spec(name, "cityscapes").replace(num_classes=classes)
        latency = predict_or_none(table, spec, table.resolution)
        if latency is not None:
            references.append({"network": name, "latency_ms": latency, "proxy": proxy(spec)})
    budget = attrs.get("budget_ms")
    figure_search(out_dir, trials, budget, proxy_name, references)
    members = sorted((t for t in trials if t["on_front"]), key=lambda t: t["latency_ms"])
    rows = [{"trial": t["trial"], "latency_ms": f"{t['latency_ms']:.2f}", "proxy": f"{t['proxy']:.4g}",
             "macs_g": f"{t['macs'] / 1e9:.3f}", "params_m": f"{t['params'] / 1e6:.3f}", "summary": t["summary"]}
            for t in members]
    device = f"{table.meta.get('device')} ({table.meta.get('cpu')})"
    return figure_html(
        "search", "Your search and its Pareto front",
        f"Predicted latency (the latency table of {html.escape(device)}) against the proxy "
        f"({html.escape(proxy_name)}) for all {len(trials)} completed trials: {sum(t['feasible'] for t in trials)} "
        f"within {'the budget' if budget is None else f'the {budget:.4g} ms budget'}, {len(members)} on the feasible Pareto front. Stars: EfficientViT B0-B3 "
        "where the table covers them.",
        "<h3>The feasible Pareto front</h3>" + table_html(rows, FRONT_COLUMNS)
        + "<p class='note'><i>latency_ms</i>: predicted by the table; <i>macs_g</i>: G MACs (fvcore); "
        "<i>params_m</i>: M parameters.</p>")
