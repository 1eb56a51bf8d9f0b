"""End-to-end latency of named networks (EfficientViT or peers), timed with the table protocol.

Networks are exported whole to ONNX and timed with onnxruntime here or over SSH, exactly
as a table's calibration networks are (``build.measure_networks``: interleaved visits,
warm-up, median and p10/p90, and a reference network timed in every chunk to follow the
machine's speed). Peers are outside the search space, so they are only ever measured;
EfficientViT networks are also paired with a table's prediction when one is given.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_space.cost import count_macs, count_params
from search_space.network import NetworkSpec, PeerSpec

from .build import measure_networks, speed_factor, typical_reference_ms
from .bundle import network_id
from .quantize import QuantCalibration
from .table import LatencyTable, TableError
from .timing import Timing

__all__ = ["MEASURE_COLUMNS", "measure", "measurement_rows", "predict_or_none"]

#: the columns of a measurement row, in order
MEASURE_COLUMNS = ("name", "kind", "summary", "resolution", "macs", "params", "measured_ms", "raw_measured_ms",
                   "p10_ms", "p90_ms", "predicted_ms")


def measure(
    networks: Sequence[tuple[str, NetworkSpec]],
    resolution: tuple[int, int],
    *,
    work_dir: str | Path,
    device: str,
    timing: Timing = Timing(),
    table: LatencyTable | None = None,
    export_progress: Any = None,
    calibration: QuantCalibration | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time ``networks`` (label, spec) end to end at ``resolution`` (H, W), batch 1, as
    ``timing`` says (visits, threads, precision, here or over SSH; a table of another
    precision is refused; int8 networks are calibrated on ``calibration``, see :mod:`.quantize`).

    ``measured_ms`` is the median rescaled to the device's typical speed by the reference
    network (to ``table``'s reference latency when a table is given, so it compares with
    the table's predictions; otherwise to the reference's median over this run);
    ``raw_measured_ms`` is as timed. ``predicted_ms`` is the table's prediction for an
    EfficientViT network whose blocks the table has, else None.

    Returns:
        (one row per network, the timing's metadata, with ``precision`` and, for int8, the
        operators each network keeps in fp32 as ``float_ops``: label -> {op type: count}).
    """
    if table is not None:
        table.check(precision=timing.precision)
    meta, results, manifest = measure_networks([s for _, s in networks], resolution, work_dir=work_dir, device=device,
                                               timing=timing, export_progress=export_progress, calibration=calibration)
    meta = {**meta, "precision": timing.precision}
    if timing.precision != "fp32":
        by_id = {e["id"]: e.get("float_ops", {}) for e in manifest["entries"]}
        meta["float_ops"] = {label: by_id[network_id(spec)] for label, spec in networks}
        meta["calibration"] = manifest.get("calibration")
    rows = measurement_rows(networks, results, resolution, table)
    shutil.rmtree(work_dir, ignore_errors=True)
    return rows, meta


def measurement_rows(networks: Sequence[tuple[str, NetworkSpec]], results: dict[str, dict[str, float]],
                     resolution: tuple[int, int], table: LatencyTable | None = None) -> list[dict[str, Any]]:
    """One row per network (:data:`MEASURE_COLUMNS`) from timings already taken (``results``:
    network id -> timing row of ``build.measure_networks``), rescaled to ``table``'s
    reference speed when a table is given, else to the reference's median over the run."""
    reference_ms = table.meta["reference"]["median_ms"] if table is not None else typical_reference_ms(results)
    rows = []
    for name, spec in networks:
        r = results[network_id(spec)]
        factor = speed_factor(reference_ms, r) if reference_ms else 1.0
        rows.append({
            "name": name,
            "kind": "peer" if isinstance(spec, PeerSpec) else "efficientvit",
            "summary": spec.summary(),
            "resolution": f"{resolution[0]}x{resolution[1]}",
            "macs": count_macs(spec, resolution),
            "params": count_params(spec),
            "measured_ms": r["median_ms"] * factor,
            "raw_measured_ms": r["median_ms"],
            "p10_ms": r["p10_ms"] * factor,
            "p90_ms": r["p90_ms"] * factor,
            "predicted_ms": predict_or_none(table, spec, resolution),
        })
    return rows


def predict_or_none(table: LatencyTable | None, spec: NetworkSpec, resolution: tuple[int, int]) -> float | None:
    """``table``'s prediction for ``spec`` at ``resolution``; None for a peer, another
    resolution, or a network whose blocks the table lacks."""
    if table is None or isinstance(spec, PeerSpec) or tuple(table.resolution) != tuple(resolution):
        return None
    try:
        return table.predict_ms(spec, resolution)
    except TableError:  # a block the table lacks (a network outside its space)
        return None
