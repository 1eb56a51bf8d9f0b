"""Build a latency table: export a bundle, time it (here or over SSH), import the results.

The work folder (``TABLE.work/``) keeps the bundle and the partial results until the
table is written, so an interrupted profile resumes where it stopped; an existing table
is extended (its rows kept) rather than replaced.
"""

from __future__ import annotations

import logging
import shutil
import time
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search_space import ArchSpec, BlockKey, SearchSpace
from search_space.records import package_version, read_csv
from search_space.registry import model_spec

from .bundle import ProfileError, export_bundle, run_locally
from .quantize import QuantCalibration, summarise_float_ops
from .remote import SSHTarget, check_remote, run_remote
from .table import LatencyTable, TableError, fit_calibration
from .timing import Timing

__all__ = ["REFERENCE_NETWORK", "ProfilePlan", "import_results", "profile_table", "measure_networks", "plan_profile", "export_plan",
           "calibrate", "calibration_sample", "official_networks", "read_results", "reference_spec", "speed_factor"]

log = logging.getLogger(__name__)

#: Fewer fully covered calibration networks than this: the table stays a plain sum (and says so).
MIN_CALIBRATION_NETWORKS = 3
#: The network timed alongside every chunk to track the device's speed.
REFERENCE_NETWORK = "efficientvit_seg_b0"


def reference_spec() -> ArchSpec:
    return model_spec(REFERENCE_NETWORK, "cityscapes")


def read_results(path: str | Path, manifest: dict) -> tuple[dict, dict[str, dict[str, float]]]:
    """Results of a bundle: (metadata, id -> numbers). Checks that they belong to it."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"results file not found: {path}")
    meta, rows = read_csv(path)
    if meta.get("bundle") != manifest["bundle_id"]:
        raise ProfileError(f"{path} holds results of another bundle ({meta.get('bundle')}, not {manifest['bundle_id']})")
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        try:
            out[row["id"]] = {k: float(v) for k, v in row.items() if k != "id" and v not in ("", None)}
        except (TypeError, ValueError):
            raise ProfileError(f"{path}: damaged row for {row.get('id')}; delete the file and time again") from None
    return meta, out


def speed_factor(reference_ms: float, row: dict[str, float]) -> float:
    """Factor that rescales a timing to the device's typical speed: the reference network's
    typical latency over its median in the chunk the row was timed in (1 without one)."""
    return reference_ms / row["ref_ms"] if row.get("ref_ms") else 1.0


def typical_reference_ms(results: dict[str, dict[str, float]]) -> float:
    """The reference network's median over a whole run (its median in each chunk, medianed):
    the device's typical speed, to which every timing of the run is rescaled."""
    refs = [r["ref_ms"] for r in results.values() if r.get("ref_ms")]
    return float(statistics.median(refs)) if refs else 0.0


def new_table_meta(device_meta: dict[str, Any], *, resolution: Sequence[int], reference_ms: float,
                   space_fingerprint: str | None, coverage: str) -> dict[str, Any]:
    """The metadata of a new table for the device whose timing metadata (the agent's
    results file) is ``device_meta``: what produced it, and its reference speed."""
    return {
        "version": 1,
        **{k: device_meta[k] for k in ("device", "cpu", "arch", "os", "python", "numpy", "onnxruntime", "threads",
                                        "cpu_count", "date") if k in device_meta},
        "resolution": list(resolution),
        "package_version": package_version(),
        "space_fingerprint": space_fingerprint,
        "coverage": coverage,
        "warmup": device_meta.get("warmup"), "repeats": device_meta.get("repeats"),
        "reference": {"network": REFERENCE_NETWORK, "median_ms": round(reference_ms, 6)},
    }


def import_results(
    manifest: dict,
    results_path: str | Path,
    base: LatencyTable | None = None,
) -> LatencyTable:
    """Turn a bundle's results into a LatencyTable (extending ``base`` when given).

    Raises:
        ProfileError: results of another bundle, or incomplete.
        TableError: ``base`` does not match the new measurements.
    """
    meta, results = read_results(results_path, manifest)
    missing = [e["id"] for e in manifest["entries"] if e["id"] not in results]
    if missing:
        raise ProfileError(
            f"{results_path} covers {len(manifest['entries']) - len(missing)} of {len(manifest['entries'])} entries; "
            "run the timing again to finish it (it resumes)"
        )
    if base is not None:
        if base.meta.get("adapted_from"):
            raise TableError(f"{base.path} was adapted from another device's table (its rows are that device's "
                             "block latencies), so it cannot be extended with blocks timed here; write a new table "
                             "with another -o path, or adapt again")
        base.check(resolution=manifest["resolution"], threads=int(meta["threads"]), arch=meta["arch"],
                   onnxruntime=meta["onnxruntime"], precision=manifest.get("precision", "fp32"))
        reference_ms = float(base.meta["reference"]["median_ms"])
        rows = dict(base.rows)
        networks = list(base.meta.get("calibration_networks", []))
        table_meta = dict(base.meta)
    else:
        reference_ms = typical_reference_ms(results)
        rows, networks = {}, []
        table_meta = new_table_meta(meta, resolution=manifest["resolution"], reference_ms=reference_ms,
                                    space_fingerprint=manifest.get("space_fingerprint"),
                                    coverage=manifest.get("coverage", "space"))
        table_meta["precision"] = manifest.get("precision", "fp32")
        if "calibration" in manifest:
            table_meta["quantization_calibration"] = manifest["calibration"]
    for entry in manifest["entries"]:
        row = results[entry["id"]]
        factor = speed_factor(reference_ms, row)
        if entry["type"] == "block":
            rows[BlockKey.from_dict(entry["key"])] = {
                "median_ms": row["median_ms"] * factor,
                "p10_ms": row["p10_ms"] * factor,
                "p90_ms": row["p90_ms"] * factor,
                "runs": row["runs"],
                "raw_median_ms": row["median_ms"],
                "ref_ms": row.get("ref_ms", 0.0),
            }
        else:
            networks = [n for n in networks if n["spec"] != entry["spec"]]
            networks.append({"spec": entry["spec"], "median_ms": round(row["median_ms"] * factor, 6),
                             "raw_median_ms": round(row["median_ms"], 6)})
    table_meta["calibration_networks"] = networks
    if manifest.get("precision", "fp32") != "fp32":
        table_meta["int8_float_ops"] = summarise_float_ops(manifest["entries"])
    if base is not None and table_meta.get("coverage") != manifest.get("coverage", "space"):
        table_meta["coverage"] = "space + networks"
    table = LatencyTable(table_meta, rows, path="the new table")
    return calibrate(table)


def calibrate(table: LatencyTable) -> LatencyTable:
    """Fit the table's calibration to its calibration networks (those fully covered)."""
    rows, measured = [], []
    for net in table.meta.get("calibration_networks", []):
        try:
            rows.append(table.features(ArchSpec.from_dict(net["spec"])))
        except TableError:
            continue
        measured.append(net["median_ms"])
    if len(measured) >= MIN_CALIBRATION_NETWORKS:
        table.calibration = fit_calibration(np.array(rows), np.array(measured))
        table.meta.pop("calibration_note", None)
    else:
        table.meta["calibration_note"] = (f"{len(measured)} calibration network(s) with every block in the table, "
                                          f"{MIN_CALIBRATION_NETWORKS} needed")
    return table


@dataclass
class ProfilePlan:
    """What one ``evit-nas profile`` run measures."""

    resolution: tuple[int, int]
    blocks: list[BlockKey]
    networks: list[ArchSpec]
    space_fingerprint: str | None
    coverage: str
    precision: str = "fp32"
    calibration: QuantCalibration | None = None


def official_networks(space: SearchSpace) -> list[tuple[str, ArchSpec]]:
    """EfficientViT-B0..B3 (Cityscapes layout, the space's classes) that ``space`` holds."""
    out = []
    for b in range(4):
        name = f"efficientvit_seg_b{b}"
        try:
            spec = model_spec(name, "cityscapes")
        except ValueError:
            continue
        spec = spec.replace(num_classes=space.num_classes)
        if space.contains(spec):
            out.append((name, spec))
    return out


def calibration_sample(space: SearchSpace, count: int, seed: int = 0) -> list[ArchSpec]:
    """The ``count`` networks a table of ``space`` is calibrated on: EfficientViT-B0..B3
    where the space holds them, then random networks of the space (``seed``).

    B0 sits in the space's smallest corner, which random draws do not come near (at
    128x256 on a 2-core AMD EPYC, B0 takes 2.4 ms in int8 and the smallest of 50 random
    networks 3.8 ms); a table calibrated on random networks only overpredicted it by 26%.
    """
    anchors = [spec for _, spec in official_networks(space)][:count]
    out = list(anchors)
    draw = 0
    while len(out) < count and draw < 100 * count:  # (a tiny space may hold fewer networks)
        spec = space.sample(10_000 + seed * 100_003 + draw)
        draw += 1
        if spec not in out:
            out.append(spec)
    return out


def plan_profile(
    resolution: tuple[int, int],
    space: SearchSpace,
    *,
    blocks_from: Sequence[ArchSpec] = (),
    calibration_networks: int = 40,
    seed: int = 0,
    existing: LatencyTable | None = None,
    precision: str = "fp32",
    calibration: QuantCalibration | None = None,
) -> ProfilePlan:
    """Choose the blocks and end-to-end networks to time, in ``precision`` (int8 networks
    calibrated on ``calibration``).

    With ``blocks_from``, only those networks' blocks are timed and the networks
    themselves calibrate; otherwise every block of the space, and ``calibration_networks``
    networks of the space (:func:`calibration_sample` with ``seed``; validation samples with
    other seeds).
    Rows already in ``existing`` are not timed again.
    """
    if existing is not None:
        existing.check(precision=precision)  # an existing table is only ever extended in its own precision
    if blocks_from:
        keys = [k for spec in blocks_from for k in space.blocks(spec, resolution)]
        networks = list(dict.fromkeys(blocks_from))
        fingerprint, coverage = None, "networks"
    else:
        keys = space.unique_blocks(resolution)
        networks = calibration_sample(space, calibration_networks, seed)
        fingerprint, coverage = space.fingerprint(), "space"
        keys = keys + [k for n in networks for k in space.blocks(n, resolution)]
    keys = list(dict.fromkeys(keys))
    if existing is not None:
        keys = [k for k in keys if k not in existing.rows]
        done = {repr(n["spec"]) for n in existing.meta.get("calibration_networks", [])}
        networks = [n for n in networks if repr(n.to_dict()) not in done]
    return ProfilePlan(resolution, keys, networks, fingerprint, coverage, precision, calibration)


def export_plan(directory: str | Path, plan: ProfilePlan, progress: Callable[[int, int], None] | None = None) -> dict:
    """Export the bundle of a profile plan (its blocks, calibration networks and the
    reference network) to ``directory``; returns its manifest."""
    info: dict[str, Any] = {"purpose": "table", "coverage": plan.coverage}
    if plan.space_fingerprint:
        info["space_fingerprint"] = plan.space_fingerprint
    return export_bundle(directory, plan.resolution, blocks=plan.blocks, networks=plan.networks,
                         reference=reference_spec(), info=info, progress=progress, precision=plan.precision,
                         calibration=plan.calibration)


def measure_networks(
    networks: Sequence[ArchSpec],
    resolution: tuple[int, int],
    *,
    work_dir: str | Path,
    device: str,
    timing: Timing,
    export_progress: Callable[[int, int], None] | None = None,
    calibration: QuantCalibration | None = None,
    repetition: int = 0,
) -> tuple[dict, dict[str, dict[str, float]], dict]:
    """Time whole networks end to end with the table protocol, as ``timing`` says (visits,
    threads, precision, here or over SSH; int8: calibrated on ``calibration``, see :mod:`.quantize`).
    ``repetition`` > 0 times the same networks again (the export is reused), into a results
    file of its own.

    Returns:
        (results metadata, with ``timing_seconds``: the agent's wall time; network id ->
        numbers; manifest).
    """
    if timing.remote is not None:
        check_remote(timing.remote)  # an unreachable device fails now, not after the export
    manifest = export_bundle(Path(work_dir) / "bundle", resolution, networks=networks, reference=reference_spec(),
                             info={"purpose": "networks"}, progress=export_progress, precision=timing.precision,
                             calibration=calibration)
    began = time.monotonic()
    results = _time_bundle(manifest, Path(work_dir), device, timing.threads, timing.warmup, timing.repeats,
                           timing.remote, repetition)
    meta, rows = read_results(results, manifest)
    return {**meta, "timing_seconds": round(time.monotonic() - began, 2)}, rows, manifest


def _time_bundle(manifest, work: Path, device, threads, warmup, repeats, remote, repetition: int = 0) -> Path:
    """Time the bundle in ``work/bundle`` into ``work/results-<bundle id>.csv`` (resumed if
    it is there; results of other bundles in the same folder are left alone); a repetition
    into ``results-<bundle id>-repeat<N>.csv``."""
    bundle_dir = work / "bundle"
    results = work / (f"results-{manifest['bundle_id']}" + (f"-repeat{repetition}" if repetition else "") + ".csv")
    timing = {"device": device, "threads": threads, "warmup": warmup, "repeats": repeats}
    if remote is not None:
        run_remote(remote, bundle_dir, manifest, results, **timing)
    else:
        run_locally(bundle_dir, results, **timing)
    return results


def profile_table(
    output: str | Path,
    plan: ProfilePlan,
    *,
    device: str,
    threads: int,
    warmup: int = 3,
    repeats: int = 20,
    remote: SSHTarget | None = None,
    keep_work: bool = False,
    export_progress: Callable[[int, int], None] | None = None,
) -> LatencyTable:
    """Measure ``plan`` and write (or extend) the table at ``output``, atomically.

    The work folder ``output.work/`` holds the bundle and partial results until the table
    is written; it is removed afterwards unless ``keep_work``.
    """
    output = Path(output)
    if remote is not None:
        check_remote(remote)  # an unreachable device fails now, not after minutes of export
    started = time.monotonic()
    base = LatencyTable.load(output) if output.exists() else None
    work = output.with_name(output.name + ".work")
    bundle_dir = work / "bundle"
    manifest = export_plan(bundle_dir, plan, progress=export_progress)
    results = _time_bundle(manifest, work, device, threads, warmup, repeats, remote)
    table = import_results(manifest, results, base)
    table.meta["build_seconds"] = round(time.monotonic() - started + float(table.meta.get("build_seconds", 0)), 1)
    table.save(output)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return LatencyTable.load(output)


