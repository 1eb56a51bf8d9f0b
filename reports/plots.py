"""What the report's figures share: matplotlib without a display, atomic PNG + SVG files,
readable log axes, one colour and marker per network family, and legends that list only
what a panel plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_space.records import atomic_path

__all__ = ["DATASET_TITLE", "FAMILY_STYLE", "display_name", "family_scatter", "legend", "log_axis", "pyplot", "save"]

#: colour and marker of each family, segmentation networks and ImageNet classifiers
FAMILY_STYLE = {"EfficientViT": ("tab:red", "o"), "SegFormer": ("tab:blue", "s"), "SegNeXt": ("tab:green", "^"),
                "HRFormer": ("tab:purple", "D"), "EfficientViT-cls": ("tab:red", "o"), "EfficientNet": ("tab:gray", "s")}
DATASET_TITLE = {"cityscapes": "Cityscapes", "ade20k": "ADE20K"}
_PREFIXES = (("efficientvit_seg_", "EfficientViT"), ("segformer_", "SegFormer"), ("segnext_", "SegNeXt"),
             ("hrformer_", "HRFormer"))


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out_dir: Path, name: str) -> None:
    """``out_dir/name.png`` and ``.svg``, each written atomically; closes ``fig``."""
    for suffix in ("png", "svg"):
        with atomic_path(out_dir / f"{name}.{suffix}") as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
    pyplot().close(fig)


def log_axis(ax: Any, axis: str = "x") -> None:
    """A log ``axis`` labelled at 1, 2 and 5 per decade as plain numbers (20, 50, 100), minor
    ticks unlabelled (matplotlib's default labels every minor tick in a short range as
    2x10^1, 3x10^1, ..., which overlap); within a factor of 4, about 5 evenly spaced labels."""
    from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    low, high = (ax.get_xlim if axis == "x" else ax.get_ylim)()
    # within a factor of 4, 1-2-5 ticks may leave one label or none: evenly spaced ones instead
    short = 0 < low < high < 4 * low
    target.set_major_locator(MaxNLocator(nbins=5) if short else LogLocator(subs=(1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    target.set_major_formatter(formatter)
    target.set_minor_formatter(NullFormatter())


def legend(ax: Any, **kwargs: Any) -> None:
    """A legend of what ``ax`` plots (labelled artists only), none when it plots nothing."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, **kwargs)


def display_name(name: str) -> str:
    """efficientvit_seg_b1 -> EfficientViT-B1, segnext_t -> SegNeXt-T (other names as they are)."""
    for prefix, family in _PREFIXES:
        if name.startswith(prefix):
            return f"{family}-{name[len(prefix):].upper()}"
    return name


def family_scatter(ax: Any, rows: list[dict[str, Any]], x: str) -> None:
    """One line per family of ``rows`` (``family``, ``model``, ``miou`` and ``x``), labelled
    with the short model name; p10-p90 error bars where ``x`` is a measured latency. Only
    families with points get a legend entry."""
    for family, (color, marker) in FAMILY_STYLE.items():
        pts = [r for r in rows if r["family"] == family and r.get(x) is not None and r.get("miou") is not None]
        if not pts:
            continue
        ax.plot([r[x] for r in pts], [r["miou"] for r in pts], marker=marker, color=color, label=family, ls="-", lw=1)
        if x == "measured_ms":  # the spread of the timed runs, p10 to p90
            ax.errorbar([r[x] for r in pts], [r["miou"] for r in pts], fmt="none", ecolor=color, elinewidth=1, capsize=2,
                        xerr=[[r[x] - r["p10_ms"] for r in pts], [r["p90_ms"] - r[x] for r in pts]])
        ax.margins(0.08)  # room for the labels of the points at the edges
        for r in pts:
            short = display_name(r["model"]).split("-", 1)[-1].lower() if r["model"] != display_name(r["model"]) \
                else r["model"]
            ax.annotate(short, (r[x], r["miou"]), textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
