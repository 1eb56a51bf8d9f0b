"""How well a latency table predicts measured end-to-end latency.

Held-out networks (sampled with a seed the calibration did not use, plus B0-B3 where the
space holds them) are timed end to end with the table's protocol, and compared with the
table's prediction and with a MACs baseline (latency proportional to MACs, its one factor
fitted on the same measurements, so the baseline gets every advantage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search_space import ArchSpec, SearchSpace
from search_space.records import atomic_path, write_csv as write_records

from .build import official_networks
from .measure import measure, measurement_rows
from .table import LatencyTable
from .timing import Timing

__all__ = ["Summary", "compare", "held_out_networks", "measure_and_compare", "summarise", "spearman", "kendall", "write_csv", "write_plot",
           "CSV_COLUMNS"]

CSV_COLUMNS = ["name", "summary", "macs", "predicted_ms", "measured_ms", "error_pct", "raw_measured_ms",
               "raw_error_pct", "macs_baseline_ms", "macs_baseline_error_pct", "p10_ms", "p90_ms"]


def held_out_networks(space: SearchSpace, table: LatencyTable, samples: int, seed: int) -> list[tuple[str, ArchSpec]]:
    """``samples`` random networks of ``space`` not used to calibrate ``table``, then the
    official B0-B3 that the space contains, unless they calibrated the table (as
    :func:`.build.calibration_sample` does)."""
    used = {repr(n["spec"]) for n in table.meta.get("calibration_networks", [])}
    out: list[tuple[str, ArchSpec]] = []
    seen: set[ArchSpec] = set()
    draw = 0
    while len(out) < samples:
        spec = space.sample(seed * 1_000_003 + draw)
        draw += 1
        if repr(spec.to_dict()) in used or spec in seen:
            continue
        seen.add(spec)
        out.append((f"sample{len(out):03d}", spec))
    for name, spec in official_networks(space):
        if repr(spec.to_dict()) not in used and spec not in seen:
            out.append((name, spec))
    return out


def measure_and_compare(
    table: LatencyTable,
    networks: Sequence[tuple[str, ArchSpec]],
    *,
    work_dir: str | Path,
    warmup: int = 3,
    repeats: int = 20,
    remote: Any = None,
    export_progress: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time ``networks`` end to end on the table's device and pair each with its prediction.

    Measured latencies are rescaled to the table's typical device speed with the same
    reference network as the table (``measured_ms``); ``raw_measured_ms`` is as timed.

    Returns:
        (one row per network, the timing's metadata).
    """
    for _, spec in networks:
        table.predict_ms(spec)  # a missing block fails here, before any timing
    rows, meta = measure(networks, table.resolution, work_dir=work_dir, device=table.meta["device"],
                         timing=Timing(warmup, repeats, remote=remote).for_table(table), table=table,
                         export_progress=export_progress)
    keep = ("name", "summary", "macs", "predicted_ms", "measured_ms", "raw_measured_ms", "p10_ms", "p90_ms")
    return [{k: r[k] for k in keep} for r in rows], meta


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, ranks) / counts)[inverse]  # ties share their average rank


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (ties get average ranks)."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def kendall(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall rank correlation tau-b (ties counted as neither concordant nor discordant)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    dx = np.sign(x[:, None] - x[None, :])[np.triu_indices(len(x), 1)]
    dy = np.sign(y[:, None] - y[None, :])[np.triu_indices(len(y), 1)]
    denominator = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float((dx * dy).sum() / denominator) if denominator else float("nan")


@dataclass
class Summary:
    """Accuracy figures of one predictor against measurements (errors in %)."""

    networks: int
    within_5: float
    within_10: float
    mape: float
    bias: float
    max_error: float
    spearman: float

    @classmethod
    def of(cls, predicted: Sequence[float], measured: Sequence[float]) -> "Summary":
        p, m = np.asarray(predicted, float), np.asarray(measured, float)
        err = (p / m - 1) * 100
        return cls(len(m), float(np.mean(np.abs(err) <= 5) * 100), float(np.mean(np.abs(err) <= 10) * 100),
                   float(np.mean(np.abs(err))), float(np.mean(err)), float(np.abs(err).max()), spearman(p, m))

    def line(self) -> str:
        return (f"within ±5%: {self.within_5:.0f}%   within ±10%: {self.within_10:.0f}%   MAPE {self.mape:.2f}%   "
                f"bias {self.bias:+.2f}%   max {self.max_error:.1f}%   Spearman {self.spearman:.3f}")


def compare(table: LatencyTable, networks: Sequence[tuple[str, ArchSpec]], results: dict[str, dict[str, float]],
            rescale: bool = True) -> Summary:
    """How well ``table`` predicts networks already timed end to end (``results``: network id
    -> timing row, from ``build.measure_networks``), so one timing run can judge several
    tables. With ``rescale`` the timings are rescaled to the table's reference speed (as
    ``measure_and_compare`` does); without, they are compared as timed.

    Raises:
        MissingBlocksError: the table lacks blocks of one of the networks.
    """
    for _, spec in networks:
        table.predict_ms(spec)  # a network the table cannot predict fails here, by name
    rows = measurement_rows(networks, results, table.resolution, table)
    return Summary.of([r["predicted_ms"] for r in rows], [r["measured_ms" if rescale else "raw_measured_ms"] for r in rows])


def macs_baseline(macs: Sequence[float], measured: Sequence[float]) -> np.ndarray:
    """Latency = k * MACs with k fitted by least squares on relative errors."""
    x, m = np.asarray(macs, float), np.asarray(measured, float)
    r = x / m
    k = r.sum() / (r * r).sum()
    return k * x


def summarise(rows: list[dict[str, Any]]) -> dict[str, Summary]:
    """Summaries of the table and of the MACs baseline, against the speed-corrected and the
    raw measurements. Fills the baseline and error columns of ``rows`` in place."""
    measured = [r["measured_ms"] for r in rows]
    raw = [r["raw_measured_ms"] for r in rows]
    predicted = [r["predicted_ms"] for r in rows]
    baseline = macs_baseline([r["macs"] for r in rows], measured)
    for row, base in zip(rows, baseline):
        row["macs_baseline_ms"] = float(base)
        row["error_pct"] = (row["predicted_ms"] / row["measured_ms"] - 1) * 100
        row["raw_error_pct"] = (row["predicted_ms"] / row["raw_measured_ms"] - 1) * 100
        row["macs_baseline_error_pct"] = (base / row["measured_ms"] - 1) * 100
    return {
        "table": Summary.of(predicted, measured),
        "table_raw": Summary.of(predicted, raw),
        "macs_baseline": Summary.of(baseline, measured),
        "macs_baseline_raw": Summary.of(macs_baseline([r["macs"] for r in rows], raw), raw),
    }


def write_csv(path: str | Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    write_records(path, CSV_COLUMNS, [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
                  meta)


def write_plot(path: str | Path, rows: list[dict[str, Any]], summaries: dict[str, Summary], title: str) -> None:
    """Scatter of predicted against measured latency, with ±5% and ±10% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = np.array([r["measured_ms"] for r in rows])
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=120)
    lo, hi = measured.min() * 0.85, measured.max() * 1.15
    line = np.linspace(lo, hi, 50)
    ax.fill_between(line, line * 0.9, line * 1.1, color="0.92", label="±10%")
    ax.fill_between(line, line * 0.95, line * 1.05, color="0.82", label="±5%")
    ax.plot(line, line, color="0.4", lw=0.8)
    t, b = summaries["table"], summaries["macs_baseline"]
    ax.scatter(measured, [r["macs_baseline_ms"] for r in rows], s=14, marker="x", color="tab:orange",
               label=f"MACs baseline (MAPE {b.mape:.1f}%, ±10%: {b.within_10:.0f}%)")
    ax.scatter(measured, [r["predicted_ms"] for r in rows], s=16, color="tab:blue",
               label=f"latency table (MAPE {t.mape:.1f}%, ±10%: {t.within_10:.0f}%)")
    for r in rows:
        if r["name"].startswith("efficientvit"):
            ax.annotate(r["name"].replace("efficientvit_seg_", "").upper(), (r["measured_ms"], r["predicted_ms"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured end-to-end latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
