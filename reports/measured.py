"""The report's end-to-end measurements, taken once and shared by every section.

The sections need networks timed end to end: the comparison (EfficientViT B0-B3 and the
peers at the table's input size), the latency table's accuracy (B0-B3 and the validated
front networks, at the same size), the feature table (one network per family at several
sizes) and the backbone claim (classifiers at their official sizes). They all go through
:func:`measured_at_sizes` into one file, ``measured.csv`` in the report folder, one row per
(network, input size): a network the comparison timed at the table's size is not timed
again for the feature table, and a later report with the same device, thread count and
precision reuses every row. Each input size is timed as one interleaved group with the
table protocol (``latency_tables.measure``).

Measurements are labelled with the machine that took them: this host and its CPU, or the
table's device when timed over SSH. They are rescaled to the table's reference speed (and
paired with its predictions) only when the table was measured on that same machine: the
report never turns another machine's numbers into ones "measured here".
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latency_tables.measure import MEASURE_COLUMNS, measure
from latency_tables.table import LatencyTable
from latency_tables.timing import Timing
from search_space.errors import EvitNasError
from search_space.network import NetworkSpec, PeerSpec
from search_space.peers import PEERS
from search_space.records import cpu_model, package_version, read_csv, write_csv
from search_space.registry import model_datasets, model_spec
from search_space.spec import DATASETS, SEG_DATASETS

__all__ = ["EFFICIENTVIT", "COLUMNS", "ReportError", "comparison_networks", "measured_at_sizes", "measuring_device",
           "read_measured", "table_of_this_machine"]

EFFICIENTVIT = tuple(f"efficientvit_seg_b{i}" for i in range(4))
#: the columns of measured.csv: a measurement row and the visits it was taken with
COLUMNS = (*MEASURE_COLUMNS, "warmup", "repeats")
_NUMBERS = ("macs", "params", "warmup", "repeats")


class ReportError(EvitNasError, ValueError):
    """A report that cannot be made; the message says what to change."""


def comparison_networks(names: Sequence[str] | None = None, datasets: Sequence[str] = SEG_DATASETS
                        ) -> list[tuple[str, NetworkSpec]]:
    """EfficientViT B0-B3 and every peer (or only ``names`` of them), in each configuration
    of ``datasets`` that exists, labelled ``name@dataset``.

    Raises:
        ReportError: a name that is neither EfficientViT B0-B3 nor a peer, or an unknown dataset.
    """
    known = EFFICIENTVIT + PEERS
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise ReportError(f"cannot compare with {', '.join(unknown)}; choose among {', '.join(known)}")
    bad = [d for d in datasets if d not in SEG_DATASETS]
    if bad or not datasets:
        raise ReportError(f"cannot compare on {', '.join(bad) or 'no dataset'}; choose among {', '.join(SEG_DATASETS)}")
    chosen = [n for n in known if names is None or n in names]
    out: list[tuple[str, NetworkSpec]] = []
    for dataset in (d for d in SEG_DATASETS if d in datasets):
        info = DATASETS[dataset]
        out += [(f"{n}@{dataset}", model_spec(n, dataset)) for n in chosen if n in EFFICIENTVIT
                and dataset in model_datasets(n)]
        out += [(f"{n}@{dataset}", PeerSpec(n, info.num_classes)) for n in chosen if n in PEERS]
    return out


def measuring_device(table: LatencyTable, timing: Timing) -> str:
    """The name measurements are labelled with: the table's device when timed on it over
    SSH, else this host's name."""
    return str(table.meta["device"]) if timing.remote is not None else (platform.node() or "here").split(".")[0]


def table_of_this_machine(table: LatencyTable, timing: Timing) -> bool:
    """Whether ``table`` was measured where ``timing`` times (over SSH: its device; here: the
    same CPU model), so its predictions and reference speed compare with the measurements."""
    return timing.remote is not None or table.meta.get("cpu") == cpu_model()


def read_measured(path: Path, device: str, timing: Timing) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metadata, rows with numbers parsed) of a measurement file ({}, [] when absent).

    Raises:
        ReportError: the file holds measurements of another device, CPU, thread count or
            precision.
    """
    if not path.is_file():
        return {}, []
    meta, rows = read_csv(path)
    found = (str(meta.get("device")), str(meta.get("threads")), str(meta.get("precision", "fp32")))
    if found != (device, str(timing.threads), timing.precision):
        raise ReportError(f"{path} holds {found[2]} measurements on {meta.get('device')} with {meta.get('threads')} "
                          f"thread(s), not {timing.precision} on {device} with {timing.threads}; write this report to "
                          "another -o folder (or delete that file to measure again)")
    if timing.remote is None and meta.get("cpu") not in (None, cpu_model()):
        raise ReportError(f"{path} holds measurements taken on a {meta.get('cpu')}, not on this machine's "
                          f"{cpu_model()}; write this report to another -o folder (or delete that file)")
    return meta, [{k: (float(v) if k.endswith("_ms") or k in _NUMBERS else v) if v not in ("", None) else None
                   for k, v in row.items()} for row in rows]


def measured_at_sizes(path: Path, networks: Sequence[tuple[str, NetworkSpec, tuple[int, int]]], device: str,
                      timing: Timing, table: LatencyTable | None = None, progress: Callable[[str], Any] | None = None,
                      log: Callable[[str], None] = print) -> dict[tuple[str, str], dict[str, Any]]:
    """End-to-end latencies of (label, spec, input size) triples, each size timed as one
    interleaved group as ``timing`` says; rows already in ``path`` (same device, threads
    and precision, at least as many timed visits) are reused, the new ones added.

    ``table``, where given, rescales the rows at its input size to its reference speed and
    adds its predictions (pass it only when it was measured on the same machine).

    Returns:
        every row of the file by (label, "HxW").

    Raises:
        ReportError: ``path`` holds measurements of another device, CPU, thread count or precision.
    """
    meta, rows = read_measured(path, device, timing)
    done = {(r["name"], r["resolution"]): r for r in rows}

    def fresh(label: str, size: str) -> bool:
        row = done.get((label, size))
        return row is not None and (row.get("repeats") is None or row["repeats"] >= timing.repeats)

    groups: dict[tuple[int, int], list[tuple[str, NetworkSpec]]] = {}
    for label, spec, size in networks:
        if not fresh(label, f"{size[0]}x{size[1]}") and (label, spec) not in groups.get(tuple(size), []):
            groups.setdefault(tuple(size), []).append((label, spec))
    for (height, width), group in groups.items():
        log(f"measuring {len(group)} network(s) end to end at {height}x{width}, {timing.threads} thread(s), "
            f"{timing.precision}, on {timing.where} ({len(done)} row(s) already in {path})")
        rescale = table if table is not None and tuple(table.resolution) == (height, width) else None
        new, info = measure(group, (height, width), work_dir=path.parent / "measure.work", device=device, timing=timing,
                            table=rescale, export_progress=progress and progress("export"))
        done.update({(r["name"], r["resolution"]): {**r, "warmup": timing.warmup, "repeats": timing.repeats}
                     for r in new})
        meta = {"device": device, "threads": timing.threads, "precision": timing.precision, "cpu": info.get("cpu"),
                "arch": info.get("arch"), "onnxruntime": info.get("onnxruntime"), "package_version": package_version(),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_csv(path, COLUMNS, list(done.values()), meta)
    return done
