"""Adapt a latency table to a new device from a few whole networks timed there.

A full profile times every block of the space (hundreds of models) on the device. Most of
what separates two CPUs is a different speed, with some kinds of block (attention, the
head's upsampling, depthwise convolutions) faster or slower than others; that much is
learnt from a few networks timed end to end. So ``evit-nas profile --adapt-from SOURCE``:

1. picks networks of the space spread over the source table's latency range (the fastest
   to the slowest of a random sample; B0 is timed in every chunk anyway, as the reference);
2. times them end to end on the new device with the table protocol (here or over SSH);
3. fits the new device's calibration with :func:`latency_tables.transfer.fit_transfer`:
   the features of each network are read from the *source* table (block latencies summed
   per kind, blocks, input MB, 1), the prior is the source's calibration rescaled by the
   typical speed ratio, and the pull towards it is chosen by cross-validation;
4. writes a table for the new device: its metadata (device, CPU, onnxruntime, threads,
   the reference network's latency there, the measured networks), the source's block rows
   (latencies of the source device: the calibration maps them to the new one), and
   ``adapted_from`` (the source table, what was measured, the fit's quality).

The adapted table predicts, searches and validates like any table; it cannot be extended
with more blocks (its rows belong to another device), only adapted again or replaced by a
full profile.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from search_space.space import SearchSpace
from search_space.spec import ArchSpec

from .build import measure_networks, new_table_meta, speed_factor, typical_reference_ms
from .bundle import ProfileError, network_id
from .remote import SSHTarget
from .table import FEATURES, LatencyTable, fit_calibration

__all__ = ["DEFAULT_NETWORKS", "adaptation_networks", "adapt_table"]

#: networks timed on the new device by default
DEFAULT_NETWORKS = 6
#: the random networks the timed ones are picked from (by predicted latency)
CANDIDATES = 400


def adaptation_networks(source: LatencyTable, space: SearchSpace, count: int, seed: int = 0) -> list[ArchSpec]:
    """``count`` networks of ``space`` spread evenly (by rank) over the source table's
    predicted latency of ``CANDIDATES`` random networks, fastest and slowest included."""
    if count < 2:
        raise ProfileError(f"--networks {count}: adapting needs at least 2 networks timed on the new device")
    candidates = list(dict.fromkeys(space.sample(seed * 100_003 + i) for i in range(CANDIDATES)))
    ranked = sorted(candidates, key=source.predict_ms)
    picks = [ranked[round(i * (len(ranked) - 1) / (count - 1))] for i in range(count)]
    return list(dict.fromkeys(picks))


def adapt_table(
    source: LatencyTable,
    output: str | Path,
    *,
    space: SearchSpace,
    networks: int = DEFAULT_NETWORKS,
    seed: int = 0,
    device: str,
    threads: int,
    warmup: int = 3,
    repeats: int = 20,
    remote: SSHTarget | None = None,
    export_progress: Callable[[int, int], None] | None = None,
    other_threads: bool = False,
) -> LatencyTable:
    """Time ``networks`` networks on the new device and write the adapted table to ``output``.

    The thread count must be the source table's: adapting a 1-thread table to 2 threads was
    measured to fail (MAPE 20-70% on held-out networks; ``benchmarks/adapt_accuracy.py
    --threads 2``), since threads speed blocks up by very different factors. ``other_threads``
    allows it anyway, for measuring exactly that.

    Raises:
        ProfileError: another thread count than the source's; a device that cannot time.
        TableError: the source table does not fit ``space``.
    """
    if threads != int(source.meta["threads"]) and not other_threads:
        raise ProfileError(f"{source.path} was measured with {source.meta['threads']} thread(s), not {threads}; a table "
                           "does not adapt across thread counts (measured: 1 -> 2 threads fails). Adapt a table of "
                           f"{threads} thread(s), or profile this device fully with --threads {threads}")
    output = Path(output)
    started = time.monotonic()
    if source.meta.get("coverage") == "space":
        source.check(space_fingerprint=space.fingerprint())
    specs = adaptation_networks(source, space, networks, seed)
    work = output.with_name(output.name + ".work")
    meta, results, _ = measure_networks(specs, source.resolution, work_dir=work, device=device, threads=threads,
                                        warmup=warmup, repeats=repeats, remote=remote, export_progress=export_progress)
    reference_ms = typical_reference_ms(results)
    measured = [results[network_id(spec)]["median_ms"] * speed_factor(reference_ms, results[network_id(spec)])
                for spec in specs]
    features = np.array([source.features(spec) for spec in specs])
    prior = source.calibration.coefficients
    calibration = fit_calibration(features, np.array(measured), prior=prior)
    table_meta = new_table_meta(meta, resolution=source.resolution, reference_ms=reference_ms,
                                space_fingerprint=source.meta.get("space_fingerprint"),
                                coverage=source.meta.get("coverage", "space"))
    table_meta.update({
        "adapted_from": {
            "table": str(source.path),
            **{k: source.meta.get(k) for k in ("device", "cpu", "arch", "onnxruntime", "threads", "date")},
            "reference_ms": source.meta["reference"]["median_ms"],
            "prior": {name: prior[name] for name in FEATURES},
            "networks_timed": len(specs),
            "rows": "block latencies of the source device; the calibration maps them to this one",
        },
        "calibration_networks": [{"spec": spec.to_dict(), "median_ms": round(ms, 6),
                                  "raw_median_ms": round(results[network_id(spec)]["median_ms"], 6)}
                                 for spec, ms in zip(specs, measured)],
    })
    table = LatencyTable(table_meta, dict(source.rows), calibration, path=str(output))
    table.meta["build_seconds"] = round(time.monotonic() - started, 1)
    table.save(output)
    shutil.rmtree(work, ignore_errors=True)
    return LatencyTable.load(output)
