"""The networks ``evit-nas validate`` trained for the study: their mIoU after brief training
against latency (``validation.png``), and the trained models themselves for the sections
that look inside them (the feature table's receptive field, int8 fidelity)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from latency_tables.measure import predict_or_none
from latency_tables.table import LatencyTable
from nas.search import trial_result
from search_space.network import NetworkSpec
from search_space.peers import PEERS
from search_space.records import write_csv
from search_space.registry import model_spec

from .measured import EFFICIENTVIT
from .page import figure_html
from .plots import legend, pyplot, save

__all__ = ["figure_validation", "trained_networks", "validated_front", "validation_rows", "validation_section"]

COLUMNS = ("network", "kind", "latency_ms", "latency_source", "miou", "dataset", "steps", "batch_size", "resolution",
           "seed")


def validated_front(study: optuna.Study) -> list[tuple[str, NetworkSpec]]:
    """The front networks ``evit-nas validate`` trained, as (``trialNNNNN``, spec)."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    numbers = sorted(int(k.split(":")[1]) for k in study.user_attrs
                     if k.startswith("validation:") and k.split(":")[1].isdigit())
    return [(f"trial{n:05d}", trial_result(by_number[n]).arch) for n in numbers if n in by_number]


def trained_networks(attrs: dict[str, Any], names: Sequence[str]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The briefly trained network of each of ``names`` that ``evit-nas validate`` left in the
    study (its ``validation:*`` attributes name the spec and checkpoint): name -> (model in
    evaluation mode, the attribute). The longest-trained one if there are several; none if
    its checkpoint file is gone."""
    from search_space.create import build_network, load_checkpoint
    from search_space.network import network_from_dict

    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    candidates = sorted((v for k, v in attrs.items() if k.startswith("validation:") and isinstance(v, dict)
                         and v.get("network") in names and v.get("checkpoint")), key=lambda v: -int(v.get("steps", 0)))
    for record in candidates:
        if record["network"] in found or not Path(record["checkpoint"]).is_file():
            continue
        model = build_network(network_from_dict(record["spec"]))
        load_checkpoint(model, record["checkpoint"])
        found[record["network"]] = (model.eval(), record)
    return found


def validation_rows(study: optuna.Study, table: LatencyTable, measured: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's ``validation:*`` attributes as rows with a latency: the table's
    prediction for EfficientViT networks, the measurement (``measured``: label -> row at the
    table's size) for peers."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    rows = []
    for key, value in sorted(study.user_attrs.items()):
        if not key.startswith("validation:") or not isinstance(value, dict):
            continue
        what = key.split(":", 1)[1]
        name = value.get("network", what)
        latency, source, kind = None, "predicted", "front"
        if what.isdigit() and int(what) in trials and trial_result(trials[int(what)]):
            latency = trial_result(trials[int(what)]).latency_ms
        elif what == "reference":
            kind = "reference"
            latency = predict_or_none(table, model_spec("efficientvit_seg_b0", "cityscapes"), table.resolution)
        else:
            kind = "named"
            base = name.split("@")[0]
            if base in PEERS:
                kind, source = "peer", "measured"
                latency = (measured.get(f"{base}@cityscapes") or {}).get("measured_ms")
            elif base in EFFICIENTVIT:
                latency = predict_or_none(table, model_spec(base, "cityscapes"), table.resolution)
        rows.append({"network": name, "kind": kind, "latency_ms": latency, "latency_source": source,
                     "miou": value.get("miou"), "steps": value.get("steps"), "dataset": value.get("dataset"),
                     "resolution": "x".join(map(str, value.get("resolution", []))),
                     "batch_size": value.get("batch_size"), "seed": value.get("seed")})
    return rows


def figure_validation(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    """``validation.png``: mIoU after brief training against latency, one marker per kind."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"front": ("tab:red", "o", "searched (predicted latency)"),
              "reference": ("tab:orange", "*", "EfficientViT-B0 (predicted latency)"),
              "named": ("tab:purple", "D", "named network (predicted latency)"),
              "peer": ("tab:blue", "s", "peer (measured latency)")}
    for kind, (color, marker, label) in styles.items():
        pts = [r for r in rows if r["kind"] == kind and r["latency_ms"] is not None and r["miou"] is not None]
        if not pts:
            continue
        ax.scatter([r["latency_ms"] for r in pts], [r["miou"] for r in pts], color=color, marker=marker,
                   s=90 if marker == "*" else 40, label=label, edgecolor="black" if kind != "peer" else None,
                   facecolor="none" if kind == "peer" else color)
        for r in pts:
            ax.annotate(r["network"], (r["latency_ms"], r["miou"]), textcoords="offset points", xytext=(5, 3), fontsize=7)
    recipe = next(({k: r[k] for k in ("dataset", "steps", "batch_size", "resolution")} for r in rows), {})
    ax.set(xlabel="latency (ms, batch 1)", ylabel="mIoU after brief training (%)",
           title="Validation: " + ", ".join(f"{k} {v}" for k, v in recipe.items()))
    ax.margins(x=0.15, y=0.1)
    ax.grid(alpha=0.3)
    legend(ax)
    if not rows:
        ax.text(0.5, 0.5, "no validated networks yet:\nrun evit-nas validate --study ...", ha="center", va="center",
                transform=ax.transAxes)
    save(fig, out_dir, "validation")
    write_csv(out_dir / "validation.csv", COLUMNS, rows)


def validation_section(out_dir: Path, rows: list[dict[str, Any]], device: str) -> str:
    """Draw the validation figure; the section's HTML."""
    figure_validation(out_dir, rows)
    return figure_html(
        "validation", "Your validated networks",
        f"mIoU after the same brief training recipe for {len(rows)} network(s): searched networks and B0 at their "
        f"latency predicted by the table, peers at their latency measured on {html.escape(device)}. Brief training "
        "gives a rough, noisy ranking (seed luck matters at this length) and is far from published accuracy.")
