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
   typical speed ratio, kept in shape below 10 networks unless leave-one-out clearly
   rejects it (``trusted_prior``), and from 10 on pulled with a cross-validated strength;
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
from .timing import Timing

__all__ = ["DEFAULT_NETWORKS", "DEFAULT_REPEATS", "adaptation_networks", "adapt_table"]

#: networks timed on the new device by default
DEFAULT_NETWORKS = 6
#: timed visits per network by default: whole networks run for 15 ms and more, so a median
#: of 10 visits is as steady as the 20 a block gets (``benchmarks/adapt_accuracy.py --repeats``)
DEFAULT_REPEATS = 10
#: the random networks the timed ones are picked from (by predicted latency)
CANDIDATES = 400


def _ranked_candidates(source: LatencyTable, space: SearchSpace, seed: int) -> list[ArchSpec]:
    candidates = list(dict.fromkeys(space.sample(seed * 100_003 + i) for i in range(CANDIDATES)))
    return sorted(candidates, key=source.predict_ms)


def _spread(ranked: list[ArchSpec], count: int) -> list[ArchSpec]:
    """``count`` networks evenly spaced by rank, fastest and slowest included. The picks for
    ``2 * count - 1`` contain those for ``count``: each round of a budget fills the gaps."""
    if count < 2:
        raise ProfileError(f"--networks {count}: adapting needs at least 2 networks timed on the new device")
    picks = [ranked[round(i * (len(ranked) - 1) / (count - 1))] for i in range(count)]
    return list(dict.fromkeys(picks))


def adaptation_networks(source: LatencyTable, space: SearchSpace, count: int, seed: int = 0) -> list[ArchSpec]:
    """``count`` networks of ``space`` spread evenly (by rank) over the source table's
    predicted latency of ``CANDIDATES`` random networks, fastest and slowest included."""
    return _spread(_ranked_candidates(source, space, seed), count)


def _next_round(ranked: list[ArchSpec], timed: list[ArchSpec], count: int, cost: Callable[[ArchSpec], float],
                seconds_left: float) -> tuple[list[ArchSpec], int]:
    """The networks of the next round that fit in ``seconds_left``: those that the spread of
    ``2 * count - 1`` adds to ``timed``, or an even subset of them. Returns (picks, new count)."""
    count = 2 * count - 1
    new = [spec for spec in _spread(ranked, count) if spec not in timed]
    while new and sum(map(cost, new)) > seconds_left:
        new = new[::2] if len(new) > 1 else []
    return new, count


def adapt_table(
    source: LatencyTable,
    output: str | Path,
    *,
    space: SearchSpace,
    networks: int = DEFAULT_NETWORKS,
    budget_s: float | None = None,
    seed: int = 0,
    device: str,
    threads: int,
    warmup: int = 3,
    repeats: int = DEFAULT_REPEATS,
    remote: SSHTarget | None = None,
    export_progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    other_threads: bool = False,
) -> LatencyTable:
    """Time ``networks`` networks on the new device and write the adapted table to ``output``.

    With ``budget_s``, more networks are timed while the budget lasts, in rounds that fill
    the gaps of the spread (6, then up to 5 more, then up to 10 more, ...). A round's cost is
    estimated from the round before it (seconds per millisecond of predicted latency), and a
    round that would not fit is cut to an even subset, or skipped: the whole run stays within
    the budget unless the first round alone exceeds it.

    The thread count must be the source table's: adapting a 1-thread table to 2 threads was
    measured to fail (MAPE 20-70% on held-out networks; ``benchmarks/adapt_accuracy.py
    --threads 2``), since threads speed blocks up by very different factors. ``other_threads``
    allows it anyway, for measuring exactly that.

    Raises:
        ProfileError: another thread count than the source's; a device that cannot time; a
            budget that is not positive.
        TableError: the source table does not fit ``space``.
    """
    if threads != int(source.meta["threads"]) and not other_threads:
        raise ProfileError(f"{source.path} was measured with {source.meta['threads']} thread(s), not {threads}; a table "
                           "does not adapt across thread counts (measured: 1 -> 2 threads fails). Adapt a table of "
                           f"{threads} thread(s), or profile this device fully with --threads {threads}")
    if budget_s is not None and budget_s <= 0:
        raise ProfileError(f"--budget-minutes {budget_s / 60:g}: the budget must be positive")
    output = Path(output)
    started = time.monotonic()
    if source.meta.get("coverage") == "space":
        source.check(space_fingerprint=space.fingerprint())
    ranked = _ranked_candidates(source, space, seed)
    work = output.with_name(output.name + ".work")
    specs: list[ArchSpec] = []
    results: dict[str, dict[str, float]] = {}
    meta: dict = {}
    rounds: list[dict] = []
    round_specs, count = _spread(ranked, networks), networks
    while round_specs:
        round_started = time.monotonic()
        meta, round_results, _ = measure_networks(
            round_specs, source.resolution, work_dir=work / f"round{len(rounds) + 1}", device=device,
            timing=Timing(warmup, repeats, threads, source.precision, remote), export_progress=export_progress)  # int8 networks calibrated on unit-normal inputs: their latency does not depend on it
        seconds = time.monotonic() - round_started
        # the reference's rows are per round: keep each network's row (with its round's ref_ms)
        results.update({network_id(spec): round_results[network_id(spec)] for spec in round_specs})
        specs += round_specs
        rounds.append({"networks": len(round_specs), "seconds": round(seconds, 1)})
        if budget_s is None:
            break
        # seconds of this round (export, the reference, start-up included) per ms of predicted latency
        per_ms = seconds / sum(source.predict_ms(spec) for spec in round_specs)
        # 5% of the budget is kept for the fit and the write, so the whole run stays within it
        left = 0.95 * budget_s - (time.monotonic() - started)
        round_specs, count = _next_round(ranked, specs, count, lambda s: per_ms * source.predict_ms(s), left)
        if log is not None and round_specs:
            log(f"{left:.0f} s of the budget left: timing {len(round_specs)} more network(s)")
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
            "budget_seconds": budget_s,
            "rounds": rounds,
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
