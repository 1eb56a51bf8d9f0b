"""``evit-nas report``: where a search's networks stand against EfficientViT B0-B3,
SegFormer and SegNeXt, as PNG + SVG figures, the CSV behind each, and one ``index.html``.

Figures (each ``NAME.png``, ``NAME.svg``, ``NAME.csv``):

- ``published_macs``: published mIoU against published MACs (Cityscapes and ADE20K panels);
- ``published_latency``: published mIoU against latency measured here, with the
  published Jetson Orin speedups next to the ratios measured here (``speedups.csv``), and
  EfficientViT's published mobile CPU points (Snapdragon 8Gen1) against the same networks
  measured here, as ratios within the B series (``mobile_points.csv``);
- ``time_breakdown``: where the time goes: B1, B3, SegNeXt-T/S and SegFormer-B0 split by
  operator category with onnxruntime's profiler (``latency_tables.explain``), on this machine;
- ``search``: predicted latency against the proxy for every trial, feasible or not, the
  budget, the feasible Pareto front, and B0-B3 where the table covers them;
- ``validation``: mIoU after brief training against latency, for the validated networks;
- ``latency_predictor``: the table's prediction against end-to-end measurement;
- ``backbones``: the paper's ImageNet backbone claim (EfficientViT-B3 against
  EfficientNet-B6): published top-1 against latency measured here, each classifier at its
  official input size, with the claim's MACs and latency ratios published and measured
  (``backbone_claim.csv``);
- ``features``: the poster's feature table with measured cells (``reports/features.py``):
  MACs and latency exponents against pixel count, effective receptive field, ms per G MACs.

Nothing estimated is shown as measured: peers are measured here and never predicted;
published numbers are labelled "published"; latencies say whether they are predicted by
the table or measured. Measurements are cached in ``measured.csv`` in the report folder
(and reused by a later report with the same device, resolution and threads), those at
other input sizes in ``backbones_measured.csv`` and ``features_measured.csv``, the time
breakdown in ``time_breakdown.csv``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna

from latency_tables.explain import CATEGORIES
from latency_tables.measure import MEASURE_COLUMNS, measure, predict_or_none
from latency_tables.table import LatencyTable
from nas.proxy import make_proxy
from nas.search import front, trial_result
from search_space.errors import EvitNasError
from search_space.network import NetworkSpec, PeerSpec
from search_space.peers import PEERS, published
from search_space.records import atomic_path, package_version, read_csv, write_atomic, write_csv
from search_space.registry import default_resolution, list_models, model_datasets, model_spec
from search_space.spec import DATASETS, SEG_DATASETS

__all__ = ["SPEEDUP_PAIRS", "BACKBONES", "BACKBONE_CLAIM", "BREAKDOWN_NETWORKS", "FEATURE_RESOLUTIONS", "ReportError",
           "comparison_networks", "mobile_points", "time_breakdown", "write_report"]

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
FAMILY_STYLE = {"EfficientViT": ("tab:red", "o"), "SegFormer": ("tab:blue", "s"), "SegNeXt": ("tab:green", "^"),
                "HRFormer": ("tab:purple", "D"), "EfficientViT-cls": ("tab:red", "o"), "EfficientNet": ("tab:gray", "s")}
#: the ImageNet classifiers of the backbone figure, each timed at its default (official) input size
BACKBONES = ("efficientvit_cls_b1", "efficientvit_cls_b2", "efficientvit_cls_b3", "efficientnet_b6")
#: (ours, the baseline, published MACs ratio, published speed-up, where it was measured)
BACKBONE_CLAIM = ("efficientvit_cls_b3", "efficientnet_b6", 2.9, 7.9, "Qualcomm Snapdragon 8Gen1 CPU")
#: input sizes of the feature table's complexity exponents (the report's default)
FEATURE_RESOLUTIONS = ((256, 512), (512, 1024), (1024, 2048))
#: the networks of "Where the time goes" (the speedup table's disagreements: B1 vs SegNeXt-T, B3 vs SegNeXt-S)
BREAKDOWN_NETWORKS = ("efficientvit_seg_b1", "efficientvit_seg_b3", "segnext_t", "segnext_s", "segformer_b0")
#: the columns of time_breakdown.csv: ms per category of latency_tables.explain
BREAKDOWN_COLUMNS = ("network", "resolution", "measured_ms", "profiled_total_ms",
                     *(category.replace(" ", "_") + "_ms" for category in CATEGORIES))
#: (warm-up, timed) visits per network and size for the feature table: its exponents need rough latencies only,
#: and HRFormer-S takes seconds per visit at 1024x2048 on one core
FEATURE_TIMING = (1, 5)
EFFICIENTVIT = tuple(f"efficientvit_seg_b{i}" for i in range(4))
DATASET_TITLE = {"cityscapes": "Cityscapes", "ade20k": "ADE20K"}


class ReportError(EvitNasError, ValueError):
    """A report that cannot be made; the message says what to change."""


# ------------------------------------------------------------------------ data
def comparison_networks(names: Sequence[str] | None = None) -> list[tuple[str, NetworkSpec]]:
    """EfficientViT B0-B3 and every peer (or only ``names`` of them), in each dataset
    configuration that exists, labelled ``name@dataset``.

    Raises:
        ReportError: a name that is neither EfficientViT B0-B3 nor a peer.
    """
    known = EFFICIENTVIT + PEERS
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise ReportError(f"cannot compare with {', '.join(unknown)}; choose among {', '.join(known)}")
    chosen = [n for n in known if names is None or n in names]
    out: list[tuple[str, NetworkSpec]] = []
    for dataset in SEG_DATASETS:
        info = DATASETS[dataset]
        out += [(f"{n}@{dataset}", model_spec(n, dataset)) for n in chosen if n in EFFICIENTVIT
                and dataset in model_datasets(n)]
        out += [(f"{n}@{dataset}", PeerSpec(n, info.num_classes)) for n in chosen if n in PEERS]
    return out


def _read_measured(path: Path, device: str, threads: int, resolution: str | None = None, precision: str = "fp32"
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metadata, rows with numbers parsed) of a report's measurement file ({}, [] when
    absent): ``measured.csv`` (one ``resolution``) or one of several sizes (``resolution`` None).

    Raises:
        ReportError: the file holds measurements of another device, thread count or precision
            (or resolution).
    """
    if not path.is_file():
        return {}, []
    meta, rows = read_csv(path)
    found = (str(meta.get("device")), str(meta.get("threads")), meta.get("resolution") if resolution else None,
             str(meta.get("precision", "fp32")))
    if found != (device, str(threads), resolution, precision):
        at = (lambda res: f" at {res}") if resolution else (lambda res: "")
        raise ReportError(f"{path} holds {found[3]} measurements on {meta.get('device')}{at(meta.get('resolution'))} "
                          f"with {meta.get('threads')} thread(s), not {precision} on {device}{at(resolution)} with "
                          f"{threads}; write this report to another -o folder (or delete that file to measure again)")
    return meta, [{k: (float(v) if k.endswith("_ms") or k in ("macs", "params") else v) if v != "" else None
                   for k, v in row.items()} for row in rows]


def measured_latencies(out_dir: Path, networks: Sequence[tuple[str, NetworkSpec]], table: LatencyTable,
                       warmup: int, repeats: int, remote: Any = None, progress: Callable[[str], Any] | None = None,
                       log: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """End-to-end latencies of ``networks`` at the table's resolution and threads, on this
    machine or on ``remote`` (an SSH target: the table's device); rows already in
    ``out_dir/measured.csv`` for the same setting are reused.

    Returns:
        (one row per network, the measurement's metadata: device, cpu, arch, onnxruntime, ...).
    """
    import platform

    resolution = "x".join(map(str, table.resolution))
    threads = int(table.meta["threads"])
    device = table.meta["device"]
    if remote is None:
        table.check(arch=platform.machine())  # TableError: time on the table's device with --remote
    path = out_dir / "measured.csv"
    meta, rows = _read_measured(path, device, threads, resolution, table.precision)
    done = {r["name"]: r for r in rows}
    todo = [(n, s) for n, s in networks if n not in done]
    if todo:
        log(f"measuring {len(todo)} network(s) end to end at {resolution}, {threads} thread(s) "
            f"({len(done)} reused from {path})")
        rows, timing = measure(todo, table.resolution, work_dir=out_dir / "measure.work", device=device,
                               threads=threads, warmup=warmup, repeats=repeats, remote=remote, table=table,
                               export_progress=progress and progress("export"))
        done.update({r["name"]: r for r in rows})
        meta = {"device": device, "resolution": resolution, "threads": threads, "precision": table.precision,
                "cpu": timing.get("cpu"), "arch": timing.get("arch"), "onnxruntime": timing.get("onnxruntime"), "warmup": warmup,
                "repeats": repeats, "package_version": package_version(),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_csv(path, MEASURE_COLUMNS, list(done.values()), meta)
    return [done[n] for n, _ in networks], {k: str(v) for k, v in meta.items()}


def measured_at_sizes(path: Path, networks: Sequence[tuple[str, NetworkSpec, tuple[int, int]]], device: str,
                      threads: int, warmup: int, repeats: int, remote: Any = None,
                      progress: Callable[[str], Any] | None = None,
                      log: Callable[[str], None] = print) -> dict[tuple[str, str], dict[str, Any]]:
    """End-to-end latencies of (label, spec, input size) triples, each size timed as one
    interleaved group with the table protocol; rows already in ``path`` (same device and
    threads) are reused. Returns rows by (label, "HxW").

    Raises:
        ReportError: ``path`` holds measurements of another device or thread count.
    """
    _, rows = _read_measured(path, device, threads)
    done = {(r["name"], r["resolution"]): r for r in rows}
    groups: dict[tuple[int, int], list[tuple[str, NetworkSpec]]] = {}
    for label, spec, size in networks:
        if (label, f"{size[0]}x{size[1]}") not in done:
            groups.setdefault(tuple(size), []).append((label, spec))
    for (height, width), group in groups.items():
        log(f"measuring {len(group)} network(s) end to end at {height}x{width}, {threads} thread(s)")
        rows, timing = measure(group, (height, width), work_dir=path.parent / "measure.work", device=device,
                               threads=threads, warmup=warmup, repeats=repeats, remote=remote,
                               export_progress=progress and progress("export"))
        done.update({(r["name"], r["resolution"]): r for r in rows})
        meta = {"device": device, "threads": threads, "cpu": timing.get("cpu"), "arch": timing.get("arch"),
                "onnxruntime": timing.get("onnxruntime"), "warmup": warmup, "repeats": repeats,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_csv(path, MEASURE_COLUMNS, list(done.values()), meta)
    return done


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


def feature_rows(measured: dict[tuple[str, str], dict[str, Any]], networks: Sequence[tuple[str, str]],
                 resolutions: Sequence[tuple[int, int]],
                 trained: dict[str, tuple[Any, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The feature table: one row per family (``networks``: (family, network) pairs); the
    effective receptive field also of the briefly trained network where ``trained`` has one
    (see :func:`trained_networks`), empty cells otherwise."""
    import torch

    from search_space.create import create_model

    from .features import ERF_THRESHOLDS, MULTI_SCALE, erf_shares, fit_exponent

    rows = []
    pixels = [h * w for h, w in resolutions]
    largest = "x".join(map(str, max(resolutions, key=lambda r: r[0] * r[1])))
    smallest = min(resolutions, key=lambda r: r[0] * r[1])
    trained = trained or {}
    for family, name in networks:
        timed = [measured[(name, f"{h}x{w}")] for h, w in resolutions]
        torch.manual_seed(0)
        shares = erf_shares(create_model(name), smallest)
        if name in trained:
            model, record = trained[name]
            trained_shares: list[Any] = [round(v, 4) for v in erf_shares(model, smallest)]
            trained_by = f"{record['steps']} steps on {record['dataset']}"
        else:
            trained_shares, trained_by = [""] * len(ERF_THRESHOLDS), ""
        at_largest = measured[(name, largest)]
        rows.append({
            "family": family, "network": name,
            "resolutions": " ".join(f"{h}x{w}" for h, w in resolutions),
            "macs_exponent": round(fit_exponent(pixels, [r["macs"] for r in timed]), 3),
            "latency_exponent": round(fit_exponent(pixels, [r["raw_measured_ms"] for r in timed]), 3),
            **{f"erf_share_above_{t:g}": round(v, 4) for t, v in zip(ERF_THRESHOLDS, shares)},
            **{f"trained_erf_share_above_{t:g}": v for t, v in zip(ERF_THRESHOLDS, trained_shares)},
            "trained_by": trained_by,
            "ms_per_gmac": round(at_largest["raw_measured_ms"] / (at_largest["macs"] / 1e9), 3),
            "ms_per_gmac_at": largest,
            "multi_scale": MULTI_SCALE[family],
        })
    return rows


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


def validation_rows(study: optuna.Study, table: LatencyTable, measured: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's ``validation:*`` attributes as rows with a latency: the table's
    prediction for EfficientViT networks, the measurement for peers."""
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


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    """b[key] / a[key] when both are published, else None."""
    return b[key] / a[key] if a.get(key) and b.get(key) else None


def speedups(measured: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Published Jetson Orin speedups (and mobile CPU speedups, where both networks of a
    pair have a published mobile point, each at its own input size) next to the ratios
    measured here."""
    rows, numbers = [], published()
    for ours, peer, dataset in SPEEDUP_PAIRS:
        pub = {r["model"]: r for r in numbers if r["dataset"] == dataset}
        a, b = pub.get(ours, {}), pub.get(peer, {})
        orin, mobile = _ratio(a, b, "latency_orin_ms"), _ratio(a, b, "latency_mobile_ms")
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


def _pixels(resolution_hw: str) -> int:
    height, width = (int(v) for v in resolution_hw.split("x"))
    return height * width


def mobile_points(measured: dict[str, dict[str, Any]], resolution: str) -> list[dict[str, Any]]:
    """EfficientViT's published mobile CPU points (``latency_mobile_ms`` of published.csv)
    next to the same networks measured here at ``resolution``, as ratios within the B
    series of each dataset (to its smallest network with a point): the published ratio as
    published (each network at its own input size), the published ratio per pixel (each
    latency over its input's pixel count first: latency taken as linear in pixels), and
    the ratio measured here (empty where a network was not measured)."""
    rows = []
    for dataset in SEG_DATASETS:
        points = [r for r in published() if r["dataset"] == dataset and r["model"] in EFFICIENTVIT
                  and r["latency_mobile_ms"] is not None]
        if not points:
            continue
        ref = points[0]
        ref_here = measured.get(f"{ref['model']}@{dataset}")
        for r in points:
            here = measured.get(f"{r['model']}@{dataset}")
            per_pixel = (r["latency_mobile_ms"] / _pixels(r["mobile_resolution_hw"])) / (
                ref["latency_mobile_ms"] / _pixels(ref["mobile_resolution_hw"]))
            rows.append({
                "network": r["model"], "dataset": dataset, "mobile_resolution": r["mobile_resolution_hw"],
                "published_mobile_ms": r["latency_mobile_ms"], "reference": ref["model"],
                "published_ratio": round(r["latency_mobile_ms"] / ref["latency_mobile_ms"], 2),
                "published_ratio_per_pixel": round(per_pixel, 2),
                "measured_ms_here": here and round(here["measured_ms"], 2), "measured_resolution": resolution,
                "measured_ratio_here": round(here["measured_ms"] / ref_here["measured_ms"], 2) if here and ref_here
                else None,
                "mobile_device": r["mobile_device"], "mobile_source": r["mobile_source"]})
    return rows


def _category_column(category: str) -> str:
    return category.replace(" ", "_") + "_ms"  # as in BREAKDOWN_COLUMNS


def time_breakdown(path: Path, names: Sequence[str], resolution: tuple[int, int], device: str, threads: int,
                   warmup: int, repeats: int, log: Callable[[str], None] = print, precision: str = "fp32"
                   ) -> tuple[list[dict[str, Any]], dict]:
    """Where the time of each of ``names`` (Cityscapes configuration) goes at ``resolution``
    on this machine: ``latency_tables.explain.explain`` per network, its categories' ms in
    one row each (they sum to ``profiled_total_ms``, the median per run of all node times),
    with ``measured_ms`` (median wall clock of a plain session) and ``coverage`` (their
    ratio). Rows already in ``path`` (same device, threads and resolution, every category)
    are reused; the others are profiled and the file is written again.

    Returns:
        (one row per network, in the order of ``names``; the file's metadata).

    Raises:
        ReportError: ``path`` holds another device's, thread count's or resolution's rows.
        ProfileError: onnxruntime's profile could not be read.
    """
    from latency_tables.explain import explain

    size = "x".join(map(str, resolution))
    meta, rows = _read_measured(path, device, threads, size, precision)
    columns = [_category_column(c) for c in CATEGORIES]
    done = {r["network"]: r for r in rows if all(r.get(c) is not None for c in columns)}
    todo = [n for n in names if n not in done]
    if todo:
        log(f"profiling {len(todo)} network(s) with onnxruntime's profiler at {size}, {threads} thread(s) "
            f"({len(names) - len(todo)} reused from {path})")
        for name in todo:
            result = explain(model_spec(name, "cityscapes"), tuple(resolution), threads=threads, warmup=warmup,
                             repeats=repeats, name=name, precision=precision)
            by_category = {r["category"]: r["ms"] for r in result["by_category"]}
            done[name] = {"network": name, "resolution": size, "measured_ms": result["measured_ms"],
                          "profiled_total_ms": result["profiled_total_ms"],
                          **{_category_column(c): by_category.get(c, 0.0) for c in CATEGORIES}}
            meta = {"device": device, "resolution": size, "threads": threads, "precision": precision,
                    "cpu": result["cpu"], "arch": result["arch"], "onnxruntime": result["onnxruntime"], "warmup": warmup,
                    "repeats": repeats, "method": "latency_tables.explain (onnxruntime profiler)",
                    "package_version": package_version(),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_csv(path, BREAKDOWN_COLUMNS, list(done.values()), meta)
    out = []
    for name in names:
        row = dict(done[name])
        row["coverage"] = round(row["profiled_total_ms"] / row["measured_ms"], 3)
        out.append(row)
    return out, meta


# --------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_dir: Path, name: str) -> None:
    for suffix in ("png", "svg"):
        with atomic_path(out_dir / f"{name}.{suffix}") as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
    _plt().close(fig)


def _log_x(ax: Any) -> None:
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _family_scatter(ax: Any, rows: list[dict[str, Any]], x: str) -> None:
    for family, (color, marker) in FAMILY_STYLE.items():
        pts = [r for r in rows if r["family"] == family and r.get(x) is not None and r.get("miou") is not None]
        ax.plot([r[x] for r in pts], [r["miou"] for r in pts], marker=marker, color=color, label=family, ls="-", lw=1)
        if x == "measured_ms" and pts:  # the spread of the timed runs, p10 to p90
            ax.errorbar([r[x] for r in pts], [r["miou"] for r in pts], fmt="none", ecolor=color, elinewidth=1, capsize=2,
                        xerr=[[r[x] - r["p10_ms"] for r in pts], [r["p90_ms"] - r[x] for r in pts]])
        for r in pts:
            ax.annotate(r["model"].replace("efficientvit_seg_", "").replace("segformer_", "").replace("segnext_", ""),
                        (r[x], r["miou"]), textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)


def figure_published_macs(out_dir: Path) -> list[dict[str, Any]]:
    # every published segmentation model, also those not re-implemented (SegFormer-B4/B5, SegNeXt-B/L)
    rows = [r for r in published() if r["dataset"] in SEG_DATASETS]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, dataset in zip(axes, SEG_DATASETS):
        pts = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["macs_g"] or 0)
        _family_scatter(ax, pts, "macs_g")
        res = pts[0]["resolution_hw"] if pts else ""
        _log_x(ax)
        ax.set(xlabel=f"published MACs (G) at {res}", ylabel="published mIoU (%)", title=DATASET_TITLE[dataset])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Published mIoU and MACs (papers and official repositories)")
    _save(fig, out_dir, "published_macs")
    write_csv(out_dir / "published_macs.csv", ("family", "model", "dataset", "resolution_hw", "miou", "params_m",
                                                "macs_g", "latency_orin_ms", "source"), rows)
    return rows


def figure_published_latency(out_dir: Path, measured: dict[str, dict[str, Any]], resolution: str,
                             device: str) -> list[dict[str, Any]]:
    rows = []
    for r in published():
        m = measured.get(f"{r['model']}@{r['dataset']}")
        if m is not None:
            rows.append({**r, "measured_ms": m["measured_ms"], "p10_ms": m["p10_ms"], "p90_ms": m["p90_ms"],
                         "measured_resolution": resolution})
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, dataset in zip(axes, SEG_DATASETS):
        pts = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: r["measured_ms"])
        _family_scatter(ax, pts, "measured_ms")
        _log_x(ax)
        ax.set(xlabel=f"latency measured here (ms, {resolution}, batch 1; bars: p10-p90 of the timed runs)",
               ylabel="published mIoU (%)",
               title=DATASET_TITLE[dataset])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Published mIoU against latency measured on {device}")
    _save(fig, out_dir, "published_latency")
    write_csv(out_dir / "published_latency.csv", ("family", "model", "dataset", "miou", "measured_ms", "p10_ms",
                                                   "p90_ms", "measured_resolution", "latency_orin_ms", "source"), rows)
    return rows


def _display_name(name: str) -> str:
    """efficientvit_seg_b1 -> EfficientViT-B1, segnext_t -> SegNeXt-T (other names as they are)."""
    for prefix, family in (("efficientvit_seg_", "EfficientViT"), ("segformer_", "SegFormer"), ("segnext_", "SegNeXt"),
                           ("hrformer_", "HRFormer")):
        if name.startswith(prefix):
            return f"{family}-{name[len(prefix):].upper()}"
    return name


def figure_time_breakdown(out_dir: Path, rows: list[dict[str, Any]], device: str) -> None:
    """Stacked bars of each network's time per category: ms (left) and shares (right)."""
    plt = _plt()
    colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.6 * len(rows) + 2.2), sharey=True)
    labels = [_display_name(r["network"]) for r in rows]
    for ax, share in zip(axes, (False, True)):
        left = [0.0] * len(rows)
        for category, color in zip(CATEGORIES, colors):
            values = [r[_category_column(category)] / (r["profiled_total_ms"] if share else 1) for r in rows]
            ax.barh(labels, values, left=left, color=color, label=category, edgecolor="white", lw=0.5)
            left = [a + b for a, b in zip(left, values)]
        ax.set(xlabel="share of the profiled node time" if share else "ms per run (onnxruntime's profiler)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    axes[1].set_xlim(0, 1)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    size = rows[0]["resolution"] if rows else ""
    fig.suptitle(f"Where the time goes at {size}, batch 1, on {device}")
    _save(fig, out_dir, "time_breakdown")


def figure_backbones(out_dir: Path, rows: list[dict[str, Any]], device: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for family in dict.fromkeys(r["family"] for r in rows):
        pts = [r for r in rows if r["family"] == family and r["published_top1"] is not None]
        color, marker = FAMILY_STYLE.get(family, ("black", "x"))
        ax.plot([r["measured_ms"] for r in pts], [r["published_top1"] for r in pts], marker=marker, color=color,
                label=family, ls="-", lw=1)
        for r in pts:
            ax.annotate(f"{r['model'].replace('efficientvit_cls_', '').replace('efficientnet_', '')} "
                        f"({r['resolution'].split('x')[0]})", (r["measured_ms"], r["published_top1"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
    _log_x(ax)
    ax.set(xlabel="latency measured here (ms, official input size, batch 1)", ylabel="published ImageNet top-1 (%)",
           title=f"ImageNet backbones on {device}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out_dir, "backbones")
    write_csv(out_dir / "backbones.csv", tuple(rows[0]), rows)


def figure_search(out_dir: Path, trials: list[dict[str, Any]], budget: float | None, proxy_name: str,
                  references: list[dict[str, Any]]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for feasible, color, label in ((False, "lightgray", "over budget"), (True, "tab:blue", "within budget")):
        pts = [t for t in trials if t["feasible"] == feasible]
        ax.scatter([t["latency_ms"] for t in pts], [t["proxy"] for t in pts], s=8, color=color, alpha=0.6,
                   label=f"{label} ({len(pts)} trials)")
    members = sorted((t for t in trials if t["on_front"]), key=lambda t: t["latency_ms"])
    ax.plot([t["latency_ms"] for t in members], [t["proxy"] for t in members], "o-", color="tab:red", ms=4,
            label=f"feasible Pareto front ({len(members)})")
    if budget is not None:
        ax.axvline(budget, color="black", ls="--", lw=1, label=f"budget {budget:g} ms")
    for r in references:
        ax.scatter([r["latency_ms"]], [r["proxy"]], marker="*", s=140, color="tab:orange", edgecolor="black", zorder=5)
        ax.annotate(r["network"].replace("efficientvit_seg_", "EfficientViT-").upper().replace("EFFICIENTVIT", "EfficientViT"),
                    (r["latency_ms"], r["proxy"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set(xlabel="predicted latency (ms, latency table)", ylabel=f"proxy: {proxy_name}", title="Search: every trial")
    if proxy_name in ("params", "macs"):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, out_dir, "search")
    write_csv(out_dir / "search.csv", ("trial", "latency_ms", "proxy", "macs", "params", "feasible", "on_front",
                                        "summary"), trials + [{**r, "trial": r["network"], "feasible": None}
                                                              for r in references])


def figure_validation(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    plt = _plt()
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
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validated networks yet:\nrun evit-nas validate --study ...", ha="center", va="center",
                transform=ax.transAxes)
    _save(fig, out_dir, "validation")
    write_csv(out_dir / "validation.csv", ("network", "kind", "latency_ms", "latency_source", "miou", "dataset",
                                            "steps", "batch_size", "resolution", "seed"), rows)


def figure_predictor(out_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    pts = [r for r in rows if r.get("predicted_ms") is not None]
    errors = [100 * (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in pts]
    stats = {"networks": len(pts),
             "mape_pct": round(sum(abs(e) for e in errors) / len(errors), 2) if errors else None,
             "within_10pct": sum(abs(e) <= 10 for e in errors)}
    plt = _plt()
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
        ax.set(xscale="log", yscale="log")
        ax.legend(fontsize=8, loc="upper left")
    ax.set(xlabel="measured end to end (ms)", ylabel="predicted by the table (ms)",
           title=f"Latency table accuracy: MAPE {stats['mape_pct']}% over {stats['networks']} networks")
    ax.grid(alpha=0.3)
    _save(fig, out_dir, "latency_predictor")
    write_csv(out_dir / "latency_predictor.csv", ("name", "summary", "predicted_ms", "measured_ms", "p10_ms", "p90_ms"),
               pts)
    return stats


# ------------------------------------------------------------------------ page
def _table_html(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r[c]))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(name: str, title: str, caption: str, extra: str = "") -> str:
    return (f'<section id="{name}"><h2>{html.escape(title)}</h2><figure><img src="{name}.png" alt="{html.escape(title)}">'
            f'<figcaption>{caption} <a href="{name}.svg">SVG</a> · <a href="{name}.csv">CSV</a></figcaption></figure>'
            f"{extra}</section>")


#: the columns of the speed-claims table (rows of benchmarks/speed_claims.py)
SPEED_CLAIM_COLUMNS = ("dataset", "resolution", "precision", "efficientvit", "peer", "rounds", "efficientvit_ms",
                       "peer_ms", "measured_speedup", "ci95_low", "ci95_high", "published_orin_speedup")


def read_speed_claims(path: str | Path) -> dict[str, Any]:
    """The results of ``benchmarks/speed_claims.py`` (its JSON), checked.

    Raises:
        ReportError: not such a file.
    """
    import json

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
    plt = _plt()
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        pairs = list(dict.fromkeys((r["efficientvit"], r["peer"]) for r in rows if r["dataset"] == dataset))
        for offset, (precision, color) in zip((-0.15, 0.15), (("fp32", "tab:blue"), ("int8", "tab:orange"))):
            pts = [(i, r) for i, pair in enumerate(pairs) for r in rows
                   if r["dataset"] == dataset and r["precision"] == precision and (r["efficientvit"], r["peer"]) == pair]
            if pts:
                ax.errorbar([i + offset for i, _ in pts], [r["measured_speedup"] for _, r in pts], fmt="o", color=color,
                            capsize=3, label=f"measured here, {precision} (95% CI)",
                            yerr=[[r["measured_speedup"] - r["ci95_low"] for _, r in pts],
                                  [r["ci95_high"] - r["measured_speedup"] for _, r in pts]])
        published_pts = [(i, r["published_orin_speedup"]) for i, pair in enumerate(pairs) for r in rows
                         if r["dataset"] == dataset and (r["efficientvit"], r["peer"]) == pair
                         and r["published_orin_speedup"] and r["precision"] == rows[0]["precision"]]
        if published_pts:
            ax.plot([i for i, _ in published_pts], [v for _, v in published_pts], "k*", ms=9,
                    label="published (Jetson AGX Orin, TensorRT fp16)")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xticks(range(len(pairs)), [f"{_display_name(p)}\nover {_display_name(e)}" for e, p in pairs], fontsize=7)
        resolution = next(r["resolution"] for r in rows if r["dataset"] == dataset)
        ax.set(ylabel="speedup of EfficientViT (x)", title=f"{DATASET_TITLE[dataset]} at {resolution}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"The paper's speedups at the published resolutions, measured on {data.get('cpu')} "
                 f"(onnxruntime {data.get('onnxruntime')}, {data.get('threads')} thread(s))")
    _save(fig, out_dir, "speed_claims")
    write_csv(out_dir / "speed_claims.csv", SPEED_CLAIM_COLUMNS, rows,
              {k: data.get(k) for k in ("cpu", "machine", "arch", "onnxruntime", "threads", "date", "rounds",
                                        "bootstrap_resamples")})


def _mobile_html(rows: list[dict[str, Any]], resolution: str) -> str:
    """The published mobile points against measurements here (see :func:`mobile_points`)."""
    if not rows:
        return ""
    device = html.escape(str(rows[0]["mobile_device"]))
    peers = "" if any(r["latency_mobile_ms"] for r in published() if r["model"] in PEERS) else (
        "published.csv holds no mobile point of SegFormer or SegNeXt (none was found as numbers with a source), so "
        "the speedup table above has no mobile column. ")
    return ("<h3>Published mobile points: EfficientViT B0-B3 on a Snapdragon 8Gen1 CPU, and here</h3>"
            + _table_html(rows, ("network", "dataset", "mobile_resolution", "published_mobile_ms", "reference",
                                 "published_ratio", "published_ratio_per_pixel", "measured_ms_here",
                                 "measured_ratio_here"))
            + f"<p>Mobile latency as published ({device}; the first EfficientViT README's tables), each network at "
            f"its own input size (<i>mobile_resolution</i>). {peers}The B series is compared with itself: <i>published_ratio</i> is a network's published latency over the "
            "<i>reference</i>'s, <i>published_ratio_per_pixel</i> divides each by its input's pixel count first "
            "(latency taken as linear in pixels), and <i>measured_ratio_here</i> is the same ratio measured here at "
            f"{html.escape(resolution)} (empty: not measured; see --compare). "
            '<a href="mobile_points.csv">mobile_points.csv</a></p>')


def _breakdown_html(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The "Where the time goes" section: figure, caption and a table of ms (share) per category."""
    shown = [c for c in CATEGORIES if any(r[_category_column(c)] > 0 for r in rows)]
    table = []
    for r in rows:
        total = r["profiled_total_ms"]
        table.append({"network": r["network"], "measured_ms": f"{r['measured_ms']:.2f}",
                      "profiled_ms": f"{total:.2f}", "coverage": f"{r['coverage']:.0%}",
                      **{c: f"{r[_category_column(c)]:.2f} ({r[_category_column(c)] / total:.0%})" for c in shown}})
    caption = (
        f"Each network's time split by operator category with onnxruntime's profiler "
        f"(<code>evit-nas latency explain</code>) on {html.escape(str(meta.get('device')))} "
        f"({html.escape(str(meta.get('cpu')))}), onnxruntime {html.escape(str(meta.get('onnxruntime')))}, "
        f"{meta.get('threads')} thread(s), batch 1, at {html.escape(str(meta.get('resolution')))}, median of "
        f"{meta.get('repeats')} profiled runs after {meta.get('warmup')} warm-up; Cityscapes configurations, random "
        "weights. Left: ms per run; right: shares of the profiled node time. onnxruntime fuses a convolution's "
        "BatchNorm (and some activations) into it, so their time counts as convolution; LayerNorm stays "
        "normalisation.")
    return _figure_html(
        "time_breakdown", "Where the time goes", caption,
        _table_html(table, ("network", "measured_ms", "profiled_ms", "coverage", *shown))
        + "<p>Cells: ms per run (share of <i>profiled_ms</i>). <i>measured_ms</i>: median wall clock of a plain "
        "session (no profiler) run in turn with the profiled one; <i>profiled_ms</i>: median per run of the "
        "profiler's node times, which the categories add up to; <i>coverage</i>: their ratio (below 100%: time "
        "between nodes; above: the profiled session runs slower than the plain one, the profiler's own cost). "
        "Categories with no time in any network are left out.</p>")


#: the columns of int8_fidelity.csv
FIDELITY_COLUMNS = ("network", "weights", "resolution", "argmax_agreement_pct", "fp32_miou", "int8_miou", "miou_change",
                    "images", "float_ops")


def int8_fidelity_rows(networks: Sequence[tuple[str, NetworkSpec]], resolution: tuple[int, int],
                       attrs: dict[str, Any], log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """How far int8 strays from fp32 (:mod:`reports.fidelity`): for each compared network at
    ``resolution`` (random weights, seed 0), the share of pixels of 8 synthetic validation
    images that keep their fp32 class (int8 calibrated on 8 synthetic training images); and for
    each network ``evit-nas validate`` trained for the study (its checkpoint), the mIoU on its
    validation data in fp32 and in int8."""
    import torch

    from latency_tables.quantize import QuantCalibration
    from nas.data import image_arrays, open_dataset
    from nas.validate import open_datasets
    from search_space.create import build_network

    from .fidelity import FIDELITY_IMAGES, argmax_fidelity, miou_change

    def images(split):
        data = open_dataset("synthetic", split, tuple(resolution), seed=0, length=FIDELITY_IMAGES)
        return QuantCalibration(f"synthetic {split}", image_arrays(data, FIDELITY_IMAGES))

    calibration, held_out = images("train"), images("val")
    size = "x".join(map(str, resolution))
    rows = []
    log(f"int8 fidelity of {len(networks)} network(s) at {size}")
    for label, spec in networks:
        torch.manual_seed(0)
        result = argmax_fidelity(build_network(spec), tuple(resolution), calibration, held_out)
        rows.append({"network": label, "weights": "random (seed 0)", "resolution": size,
                     "argmax_agreement_pct": result["argmax_agreement_pct"], "images": FIDELITY_IMAGES,
                     "float_ops": " ".join(f"{op}x{n}" for op, n in result["float_ops"].items())})
    names = sorted({v["network"] for k, v in attrs.items() if k.startswith("validation:") and isinstance(v, dict)})
    for name, (model, record) in trained_networks(attrs, names).items():
        train_set, val_set = open_datasets(record["dataset"], record["resolution"])
        result = miou_change(model, train_set, val_set, tuple(record["resolution"]))
        rows.append({"network": name, "weights": f"trained {record['steps']} steps on {record['dataset']}",
                     "resolution": "x".join(map(str, record["resolution"])), "fp32_miou": result["fp32_miou"],
                     "int8_miou": result["int8_miou"], "miou_change": result["miou_change"], "images": result["images"],
                     "float_ops": " ".join(f"{op}x{n}" for op, n in result["float_ops"].items())})
    return rows


def _fidelity_html(rows: list[dict[str, Any]], resolution: str) -> str:
    return ('<section id="int8-fidelity"><h2>int8 against fp32</h2>'
            + _table_html(rows, FIDELITY_COLUMNS)
            + f"<p>The table is int8 (onnxruntime static quantization, QDQ, per-channel int8 weights, uint8 "
            f"activations). <b>argmax_agreement_pct</b>: share of output pixels whose class is the same in int8 as in "
            f"fp32 at {resolution}, on synthetic validation images, int8 calibrated on synthetic training images "
            "(random weights: no trained weights can be downloaded here). <b>fp32_miou, int8_miou</b>: networks "
            "trained by <code>evit-nas validate</code> for this study, evaluated as ONNX models on their validation data "
            "at the training size. <b>float_ops</b>: operators onnxruntime runs in fp32 (no int8 kernel). "
            '<a href="int8_fidelity.csv">int8_fidelity.csv</a></p></section>')


def write_page(out_dir: Path, meta: dict[str, Any], parts: list[str]) -> Path:
    info = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>evit-nas report: {html.escape(str(meta.get('study')))}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}}img{{max-width:100%}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%;text-align:left}}
figcaption{{color:#333;font-size:90%}}</style></head>
<body><h1>evit-nas report</h1><table>{info}</table>
{''.join(parts)}
<p>MACs are multiply-accumulates (the papers call them FLOPs). Published numbers come from published.csv with
their sources; latencies say whether they are predicted by the latency table or measured here.</p>
</body></html>
"""
    path = out_dir / "index.html"
    write_atomic(path, page)
    return path


def write_report(study: optuna.Study, table: LatencyTable, out_dir: str | Path, *, warmup: int = 2, repeats: int = 10,
                 compare: Sequence[str] | None = None, remote: Any = None, backbones: bool = True,
                 feature_resolutions: Sequence[tuple[int, int]] = FEATURE_RESOLUTIONS,
                 breakdown: Sequence[str] = BREAKDOWN_NETWORKS, fidelity: bool = True,
                 speed_claims: str | Path | None = None,
                 progress: Callable[[str], Any] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure what is missing, draw every figure, write ``index.html``; returns a summary.

    ``compare`` limits the measured comparison networks (default: B0-B3 and every peer);
    ``remote`` (a ``latency_tables.remote.SSHTarget``) measures on the table's device over SSH;
    ``backbones`` adds the ImageNet backbone claim; ``feature_resolutions`` (at least 3 sizes;
    empty: no feature table) are the sizes of the feature table's complexity exponents;
    ``breakdown`` names the networks of "Where the time goes" (onnxruntime's profiler, on
    this machine only: left out with ``remote``; empty: no such section); ``fidelity``, for
    an int8 table, adds how far each compared network's int8 version strays from fp32;
    ``speed_claims`` (the JSON of ``benchmarks/speed_claims.py``) adds the full-resolution
    speedups with their confidence intervals, as measured on the machine it names.

    Raises:
        ReportError: a bad option, or a study, table or report folder that does not fit.
    """
    if feature_resolutions and len(set(map(tuple, feature_resolutions))) < 3:
        raise ReportError(f"the feature table fits exponents over at least 3 input sizes; got "
                          f"{' '.join('x'.join(map(str, r)) for r in feature_resolutions)}")
    unknown = [n for n in breakdown if n not in EFFICIENTVIT + PEERS]
    if unknown:
        raise ReportError(f"cannot break down the time of {', '.join(unknown)}; choose among "
                          f"{', '.join(EFFICIENTVIT + PEERS)}")
    claims = read_speed_claims(speed_claims) if speed_claims else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    attrs = study.user_attrs
    if not attrs.get("objectives"):
        raise ReportError(f"study {study.study_name!r} was not made by evit-nas search (no objectives recorded)")
    if tuple(attrs.get("table_meta", {}).get("resolution", ())) != tuple(table.resolution):
        raise ReportError(f"the study was searched with a table at {attrs.get('table_meta', {}).get('resolution')}, "
                          f"not {list(table.resolution)}; give its table with --table")
    trials = study_trials(study)
    if not trials:
        raise ReportError(f"study {study.study_name!r} has no completed trials; run evit-nas search first")
    resolution = "x".join(map(str, table.resolution))
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    validated_front = [(f"trial{int(k.split(':')[1]):05d}", trial_result(by_number[int(k.split(':')[1])]).arch)
                       for k in sorted(attrs) if k.startswith("validation:") and k.split(":")[1].isdigit()
                       and int(k.split(":")[1]) in by_number]
    networks = comparison_networks(compare) + validated_front
    rows, timing = measured_latencies(out_dir, networks, table, warmup, repeats, remote, progress, log)
    measured = {r["name"]: r for r in rows}
    log("drawing the figures")
    figure_published_macs(out_dir)
    figure_published_latency(out_dir, measured, resolution, table.meta["device"])
    proxy_name = attrs.get("proxy", "params")
    proxy = make_proxy(proxy_name, table.resolution)
    references = []
    space_classes = trial_result(by_number[trials[0]["trial"]]).arch.num_classes
    for name in EFFICIENTVIT:
        spec = model_spec(name, "cityscapes").replace(num_classes=space_classes)
        latency = predict_or_none(table, spec, table.resolution)
        if latency is not None:
            references.append({"network": name, "latency_ms": latency, "proxy": proxy(spec)})
    figure_search(out_dir, trials, attrs.get("budget_ms"), proxy_name, references)
    validation = validation_rows(study, table, measured)
    figure_validation(out_dir, validation)
    predictor = figure_predictor(out_dir, [r for r in rows if r["kind"] == "efficientvit"])
    ratios = speedups(measured)
    write_csv(out_dir / "speedups.csv", tuple(ratios[0]), ratios)
    mobile = mobile_points(measured, resolution)
    write_csv(out_dir / "mobile_points.csv", tuple(mobile[0]), mobile)
    threads, device = int(table.meta["threads"]), table.meta["device"]
    breakdown_part, breakdown_rows = "", []
    if breakdown and remote is not None:
        log("leaving out 'Where the time goes': onnxruntime's profiler runs on this machine only, not over --remote")
    elif breakdown:
        breakdown_rows, breakdown_meta = time_breakdown(out_dir / "time_breakdown.csv", list(dict.fromkeys(breakdown)),
                                                        table.resolution, device, threads, warmup, repeats, log,
                                                        table.precision)
        figure_time_breakdown(out_dir, breakdown_rows, device)
        breakdown_part = _breakdown_html(breakdown_rows, breakdown_meta)
    extra_parts = []
    backbone_claim: list[dict[str, Any]] = []
    if backbones:
        sizes = [(n, model_spec(n), default_resolution(n)) for n in BACKBONES]
        timed = measured_at_sizes(out_dir / "backbones_measured.csv", sizes, device, threads, warmup, repeats, remote,
                                  progress, log)
        backbone_table, backbone_claim = backbone_rows(timed)
        figure_backbones(out_dir, backbone_table, device)
        write_csv(out_dir / "backbone_claim.csv", tuple(backbone_claim[0]), backbone_claim)
        extra_parts.append(_figure_html(
            "backbones", "ImageNet backbones: the paper's claim against EfficientNet-B6",
            f"Published ImageNet top-1 (official repositories, papers) against end-to-end latency measured on "
            f"{html.escape(str(device))} with onnxruntime, {threads} thread(s), batch 1, each classifier at its "
            "official input size (EfficientViT B1-B3 at 288x288, EfficientNet-B6 at 528x528). Nothing is trained here.",
            "<h3>The backbone claim: published and measured here</h3>"
            + _table_html(backbone_claim, ("claim", "published", "measured_here", "note"))
            + '<p><a href="backbone_claim.csv">backbone_claim.csv</a></p>'))
    features: list[dict[str, Any]] = []
    if feature_resolutions:
        known = set(list_models())
        from .features import FEATURE_NETWORKS

        pairs = [(family, name) for family, name in FEATURE_NETWORKS.items() if name in known]
        sizes = [(name, model_spec(name, "cityscapes"), tuple(size)) for _, name in pairs for size in feature_resolutions]
        timed = measured_at_sizes(out_dir / "features_measured.csv", sizes, device, threads, *FEATURE_TIMING, remote,
                                  progress, log)
        trained = trained_networks(attrs, [name for _, name in pairs])
        features = feature_rows(timed, pairs, [tuple(r) for r in feature_resolutions], trained)
        write_csv(out_dir / "features.csv", tuple(features[0]), features)
        columns = tuple(features[0])
        extra_parts.append(
            '<section id="features"><h2>The poster\'s feature table, measured</h2>'
            + _table_html(features, columns)
            + f"<p>One network per family (Cityscapes configuration). <b>Exponents</b>: slope of log(cost) on "
            f"log(pixels) over {html.escape(features[0]['resolutions'])} (1 = linear in pixels); MACs by fvcore, "
            f"latency measured on {html.escape(str(device))}, {threads} thread(s) (median of {FEATURE_TIMING[1]} "
            f"visits after {FEATURE_TIMING[0]} warm-up). <b>ERF</b>: share of input "
            "pixels whose gradient on the central output pixel exceeds 1% (0.01) or 0.01% (0.0001) of the largest, "
            "at the smallest size, for the randomly initialised network and, where <code>evit-nas validate</code> "
            "trained it for this study, the briefly trained one (<i>trained_by</i>: steps and data set; empty: not "
            "trained). <b>ms per G MACs</b>: measured "
            "latency over fvcore MACs at the largest size (lower: the device runs its MACs faster). "
            '<b>Multi-scale</b>: the architecture, stated. <a href="features.csv">features.csv</a></p></section>')
    meta = {"study": study.study_name, "device": table.meta.get("device"), "cpu": table.meta.get("cpu"),
            "arch": table.meta.get("arch"), "threads": table.meta.get("threads"), "resolution": resolution,
            "precision": table.precision,
            "table": f"{attrs.get('table')} (onnxruntime {table.meta.get('onnxruntime')}, {table.meta.get('date')})",
            "measured here": f"onnxruntime {timing.get('onnxruntime')}, {timing.get('warmup')} warm-up + "
                             f"{timing.get('repeats')} timed runs, {timing.get('date')}",
            "budget_ms": attrs.get("budget_ms"), "objectives": ",".join(attrs.get("objectives", [])),
            "proxy": proxy_name, "trials": len(trials), "package_version": package_version(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    feasible = sum(t["feasible"] for t in trials)
    # the mobile column only where a pair has published mobile points (no peer has one yet)
    mobile_column = ("published_mobile_speedup",) if any(r["published_mobile_speedup"] for r in ratios) else ()
    speedup_columns = ("efficientvit", "peer", "dataset", "published_orin_speedup", *mobile_column,
                       "measured_speedup_here", "measured_p10_p90_range", "efficientvit_ms_here", "peer_ms_here")
    front_size = sum(t["on_front"] for t in trials)
    if claims is not None:
        figure_speed_claims(out_dir, claims)
        extra_parts.insert(0, _figure_html(
            "speed_claims", "The speed claims at the published resolutions",
            f"Speedups of EfficientViT over its peers at Cityscapes 1024x2048 and ADE20K 512x512, fp32 and int8, "
            f"measured by <code>benchmarks/speed_claims.py</code> on {html.escape(str(claims.get('cpu')))} "
            f"({html.escape(str(claims.get('machine')))}; onnxruntime {html.escape(str(claims.get('onnxruntime')))}, "
            f"{claims.get('threads')} thread(s), batch 1, {claims.get('rounds')} interleaved rounds, "
            f"{html.escape(str(claims.get('date')))}), not necessarily this report's device. Bars: bootstrap 95% "
            "interval of the ratio of medians over paired rounds. Stars: published (Jetson AGX Orin, TensorRT fp16).",
            _table_html(claims["speedups"], SPEED_CLAIM_COLUMNS)))
    fidelity_rows: list[dict[str, Any]] = []
    if fidelity and table.precision == "int8":
        fidelity_rows = int8_fidelity_rows(networks, table.resolution, attrs, log)
        write_csv(out_dir / "int8_fidelity.csv", FIDELITY_COLUMNS, fidelity_rows)
        extra_parts.insert(0, _fidelity_html(fidelity_rows, resolution))
    parts = [
        _figure_html("published_macs", "Published mIoU against MACs",
                     "Published single-scale mIoU and MACs from the papers and official repositories (Cityscapes at "
                     "1024x2048, ADE20K at 512x512): the EfficientViT paper's comparison. Nothing here is measured."),
        _figure_html("published_latency", "Published mIoU against latency measured here",
                     f"The same published mIoU against end-to-end latency measured on {html.escape(str(meta['device']))} "
                     f"({html.escape(str(meta['cpu']))}) with onnxruntime, {meta['threads']} thread(s), batch 1, at "
                     f"{resolution} (not the papers' resolutions). Peers are measured, never predicted.",
                     "<h3>Speedups: published (Jetson AGX Orin, TensorRT fp16, full resolution) and measured here</h3>"
                     + _table_html(ratios, speedup_columns) + _mobile_html(mobile, resolution)),
        *([breakdown_part] if breakdown_part else []),
        _figure_html("search", "Search",
                     f"Predicted latency (latency table) against the proxy ({html.escape(proxy_name)}) for all "
                     f"{len(trials)} completed trials: {feasible} within the {meta['budget_ms']} ms budget, "
                     f"{front_size} on the feasible Pareto front. Stars: EfficientViT B0-B3 where the table covers them."),
        _figure_html("validation", "Validation by brief training",
                     f"mIoU after the same brief training recipe for {len(validation)} network(s): searched networks "
                     "and B0 at their predicted latency, peers at their measured latency. Brief training gives a rough, "
                     "noisy ranking (seed luck matters at this length) and is far from published accuracy."),
        _figure_html("latency_predictor", "Latency table accuracy",
                     f"Prediction against end-to-end measurement for {predictor['networks']} EfficientViT networks "
                     f"(B0-B3 and validated front networks the table covers): MAPE {predictor['mape_pct']}%, "
                     f"{predictor['within_10pct']} within ±10%."),
        *extra_parts,
    ]
    page = write_page(out_dir, meta, parts)
    return {"index": str(page), "speedups": ratios, "predictor": predictor, "validated": len(validation),
            "trials": len(trials), "measured": len(rows), "backbone_claim": backbone_claim, "features": features,
            "mobile_points": mobile, "time_breakdown": breakdown_rows, "int8_fidelity": fidelity_rows}
