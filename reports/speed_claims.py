"""The paper's speed claims at the published resolutions (opt-in: ``--speed-claims JSON``):
the speedups with bootstrap 95% intervals that ``benchmarks/speed_claims.py`` measured, fp32
and int8, next to the published Jetson Orin ones (``speed_claims.png``). They were measured
on the machine that file names, and the section says so: they are not this report's device."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from search_space.records import write_csv

from .measured import ReportError
from .page import figure_html, table_html
from .plots import DATASET_TITLE, display_name, legend, pyplot, save

__all__ = ["SPEED_CLAIM_COLUMNS", "figure_speed_claims", "read_speed_claims", "speed_claims_section"]

#: the columns of the speed-claims table (rows of benchmarks/speed_claims.py)
SPEED_CLAIM_COLUMNS = ("dataset", "resolution", "precision", "efficientvit", "peer", "rounds", "efficientvit_ms",
                       "peer_ms", "measured_speedup", "ci95_low", "ci95_high", "published_orin_speedup")


def read_speed_claims(path: str | Path) -> dict[str, Any]:
    """The results of ``benchmarks/speed_claims.py`` (its JSON), checked.

    Raises:
        ReportError: not such a file.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read the speed claims {path} ({exc}); give the speed_claims.json that "
                          "benchmarks/speed_claims.py wrote") from None
    if not isinstance(data, dict) or not all(set(SPEED_CLAIM_COLUMNS) <= set(r) for r in data.get("speedups") or [{}]):
        raise ReportError(f"{path} is not a results file of benchmarks/speed_claims.py (no 'speedups' rows with "
                          f"{', '.join(SPEED_CLAIM_COLUMNS)}); give the speed_claims.json it wrote")
    return data


def figure_speed_claims(out_dir: Path, data: dict[str, Any]) -> None:
    """Measured speedups with their bootstrap 95% intervals, fp32 and int8, next to the published
    Jetson Orin ones, one panel per data set."""
    rows = data["speedups"]
    plt = pyplot()
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        pairs = list(dict.fromkeys((r["efficientvit"], r["peer"]) for r in rows if r["dataset"] == dataset))
        for offset, (precision, color) in zip((-0.15, 0.15), (("fp32", "tab:blue"), ("int8", "tab:orange"))):
            pts = [(i, r) for i, pair in enumerate(pairs) for r in rows
                   if r["dataset"] == dataset and r["precision"] == precision and (r["efficientvit"], r["peer"]) == pair]
            if pts:
                ax.errorbar([i + offset for i, _ in pts], [r["measured_speedup"] for _, r in pts], fmt="o", color=color,
                            capsize=3, label=f"measured, {precision} (95% CI)",
                            yerr=[[r["measured_speedup"] - r["ci95_low"] for _, r in pts],
                                  [r["ci95_high"] - r["measured_speedup"] for _, r in pts]])
        published_pts = [(i, r["published_orin_speedup"]) for i, pair in enumerate(pairs) for r in rows
                         if r["dataset"] == dataset and (r["efficientvit"], r["peer"]) == pair
                         and r["published_orin_speedup"] and r["precision"] == rows[0]["precision"]]
        if published_pts:
            ax.plot([i for i, _ in published_pts], [v for _, v in published_pts], "k*", ms=9,
                    label="published (Jetson AGX Orin, TensorRT fp16)")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xticks(range(len(pairs)), [f"{display_name(p)}\nover {display_name(e)}" for e, p in pairs], fontsize=7)
        resolution = next(r["resolution"] for r in rows if r["dataset"] == dataset)
        ax.set(ylabel="speedup of EfficientViT (x)", title=f"{DATASET_TITLE[dataset]} at {resolution}")
        ax.grid(alpha=0.3)
        legend(ax)
    fig.suptitle(f"The paper's speedups at the published resolutions, measured on {data.get('cpu')} "
                 f"(onnxruntime {data.get('onnxruntime')}, {data.get('threads')} thread(s))")
    save(fig, out_dir, "speed_claims")
    write_csv(out_dir / "speed_claims.csv", SPEED_CLAIM_COLUMNS, rows,
              {k: data.get(k) for k in ("cpu", "machine", "arch", "onnxruntime", "threads", "date", "rounds",
                                        "bootstrap_resamples")})


def speed_claims_section(out_dir: Path, claims: dict[str, Any]) -> str:
    """Draw the figure; the section's HTML, naming the machine that measured."""
    figure_speed_claims(out_dir, claims)
    return figure_html(
        "speed_claims", "The speed claims at the published resolutions (measured on another run)",
        f"Speedups of EfficientViT over its peers at Cityscapes 1024x2048 and ADE20K 512x512, fp32 and int8, "
        f"measured by <code>benchmarks/speed_claims.py</code> on {html.escape(str(claims.get('cpu')))} "
        f"({html.escape(str(claims.get('machine')))}; onnxruntime {html.escape(str(claims.get('onnxruntime')))}, "
        f"{claims.get('threads')} thread(s), batch 1, {claims.get('rounds')} interleaved rounds, "
        f"{html.escape(str(claims.get('date')))}), not necessarily this report's device. Bars: bootstrap 95% "
        "interval of the ratio of medians over paired rounds. Stars: published (Jetson AGX Orin, TensorRT fp16).",
        table_html(claims["speedups"], SPEED_CLAIM_COLUMNS))
