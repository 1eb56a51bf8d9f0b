"""``evit-nas report``: where a search's networks stand against EfficientViT B0-B3,
SegFormer and SegNeXt, as PNG + SVG figures, the CSV behind each, and one ``index.html``.

The page, in order (each section in its own module):

1. the user's search: every trial and the feasible Pareto front (``search.py``);
2. the validated networks' mIoU after brief training (``validation.py``), and for a study of
   the accuracy-aware loop, its rounds (``loop.py``);
3. the latency table's accuracy against end-to-end measurement (``predictor.py``);
4. the comparison with SegFormer and SegNeXt: published mIoU against latency measured here,
   and the published speedups next to those measured here (``comparison.py``);
5. for an int8 table, how far int8 strays from fp32 (``fidelity.py``);
6. the paper, reproduced: published mIoU against MACs and the published mobile points
   (``published.py``), and, opt-in (:class:`Sections`, ``--full``), the speed claims at the
   published resolutions (``speed_claims.py``), where the time goes (``breakdown.py``), the
   ImageNet backbone claim (``backbones.py``) and the poster's feature table (``features.py``).

Every network is timed once, through the shared measurement of ``measured.py``
(``measured.csv``, reused by a later report); the time breakdown keeps its profiles in
``time_breakdown.csv``. Nothing estimated is shown as measured: peers are measured here and
never predicted; published numbers are labelled "published"; latencies say whether they are
predicted by the table or measured, and where.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna

from latency_tables.table import LatencyTable
from latency_tables.timing import Timing
from search_space.peers import PEERS
from search_space.records import package_version
from search_space.registry import list_models
from search_space.spec import SEG_DATASETS

from .breakdown import BREAKDOWN_NETWORKS
from .features import FEATURE_RESOLUTIONS
from .measured import (EFFICIENTVIT, ReportError, comparison_networks, measured_at_sizes, measuring_device,
                       table_of_this_machine)
from .page import write_page

__all__ = ["Sections", "write_report"]


@dataclass(frozen=True)
class Sections:
    """The opt-in sections of the paper's reproduction; none by default, all with :meth:`full`.

    Attributes:
        backbones: the ImageNet backbone claim (four classifiers timed at their official sizes).
        feature_resolutions: input sizes (at least 3) of the feature table; empty: no feature table.
        breakdown: networks of "Where the time goes" (onnxruntime's profiler, this machine
            only); empty: no such section.
        speed_claims: the JSON of ``benchmarks/speed_claims.py`` (measured on the machine it names).
        fidelity: for an int8 table, how far each compared network's int8 output strays from fp32.
    """

    backbones: bool = False
    feature_resolutions: tuple[tuple[int, int], ...] = ()
    breakdown: tuple[str, ...] = ()
    speed_claims: str | None = None
    fidelity: bool = True

    @classmethod
    def full(cls, feature_resolutions: Sequence[tuple[int, int]] = FEATURE_RESOLUTIONS,
             breakdown: Sequence[str] = BREAKDOWN_NETWORKS, **kwargs: Any) -> Sections:
        """Every reproduction section."""
        return cls(backbones=True, feature_resolutions=tuple(map(tuple, feature_resolutions)),
                   breakdown=tuple(breakdown), **kwargs)

    def check(self) -> None:
        """Raises ReportError: fewer than 3 feature sizes, or a network the breakdown does not know."""
        if self.feature_resolutions and len(set(map(tuple, self.feature_resolutions))) < 3:
            raise ReportError(f"the feature table fits exponents over at least 3 input sizes; got "
                              f"{' '.join('x'.join(map(str, r)) for r in self.feature_resolutions)}")
        unknown = [n for n in self.breakdown if n not in EFFICIENTVIT + PEERS]
        if unknown:
            raise ReportError(f"cannot break down the time of {', '.join(unknown)}; choose among "
                              f"{', '.join(EFFICIENTVIT + PEERS)}")


@dataclass
class _Page:
    """The page as it is assembled: section HTML in order, the summary, what was left out."""
    parts: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)


def _checked_study(study: optuna.Study, table: LatencyTable) -> list[dict[str, Any]]:
    from .search import study_trials

    attrs = study.user_attrs
    if not attrs.get("objectives"):
        raise ReportError(f"study {study.study_name!r} was not made by evit-nas search (no objectives recorded)")
    if tuple(attrs.get("table_meta", {}).get("resolution", ())) != tuple(table.resolution):
        raise ReportError(f"the study was searched with a table at {attrs.get('table_meta', {}).get('resolution')}, "
                          f"not {list(table.resolution)}; give its table with --table")
    trials = study_trials(study)
    if not trials:
        raise ReportError(f"study {study.study_name!r} has no completed trials; run evit-nas search first")
    return trials


def write_report(study: optuna.Study, table: LatencyTable, out_dir: str | Path, *, timing: Timing = Timing(),
                 compare: Sequence[str] | None = None, datasets: Sequence[str] = SEG_DATASETS,
                 sections: Sections = Sections(), progress: Callable[[str], Any] | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure what is missing (once, shared by every section), draw every figure, write
    ``index.html``; returns a summary.

    ``timing`` gives the visits and, with ``remote`` (a ``latency_tables.remote.SSHTarget``),
    the table's device to time on over SSH; threads and precision are the table's. ``compare``
    limits the comparison networks (default: B0-B3 and every peer), ``datasets`` their
    configurations; ``sections`` adds the paper's reproduction sections.

    Raises:
        ReportError: a bad option, or a study, table or report folder that does not fit.
    """
    from .breakdown import breakdown_section, time_breakdown
    from .comparison import comparison_section
    from .predictor import predictor_section
    from .published import published_sections
    from .search import search_section
    from .validation import validated_front, validation_rows, validation_section

    sections.check()
    timing = timing.for_table(table)
    claims = None
    if sections.speed_claims:
        from .speed_claims import read_speed_claims

        claims = read_speed_claims(sections.speed_claims)
    networks = comparison_networks(compare, datasets)
    out_dir = Path(out_dir)
    trials = _checked_study(study, table)
    out_dir.mkdir(parents=True, exist_ok=True)
    resolution = "x".join(map(str, table.resolution))
    device = measuring_device(table, timing)
    here = table_of_this_machine(table, timing)
    front_networks = validated_front(study)
    store = out_dir / "measured.csv"

    # every measurement first, into one file, so that all sections draw from the same rows
    requests = [([(n, s, tuple(table.resolution)) for n, s in networks + front_networks], timing)]
    if sections.feature_resolutions:
        from .features import FEATURE_TIMING, feature_networks

        pairs, feature_requests = feature_networks([tuple(s) for s in sections.feature_resolutions], list_models())
        requests.append((feature_requests, timing.visits(*FEATURE_TIMING)))
    if sections.backbones:
        from .backbones import backbone_networks

        requests.append((backbone_networks(), timing))
    for wanted, how in requests:
        rows = measured_at_sizes(store, wanted, device, how, table if here else None, progress, log)
    measured = {label: r for (label, size), r in rows.items() if size == resolution}
    cpu = _meta_cpu(store) or "unknown CPU"
    log("drawing the figures")
    page = _Page()
    page.parts.append(search_section(out_dir, study, table, trials))
    validation = validation_rows(study, table, measured)
    page.parts.append(validation_section(out_dir, validation, device))
    if study.user_attrs.get("loop"):
        from .loop import loop_section

        page.parts.append(loop_section(out_dir, study.user_attrs["loop"]))
    ours = [measured[n] for n, _ in networks + front_networks if measured[n]["kind"] == "efficientvit"]
    part, predictor = predictor_section(out_dir, ours, here, f"{table.meta.get('device')} ({table.meta.get('cpu')})")
    page.parts.append(part)
    part, ratios = comparison_section(out_dir, measured, resolution, device, cpu, timing.threads)
    page.parts.append(part)
    fidelity_rows: list[dict[str, Any]] = []
    if sections.fidelity and table.precision == "int8":
        from .fidelity import fidelity_section, int8_fidelity_rows

        fidelity_rows = int8_fidelity_rows(networks, table.resolution, study.user_attrs, log)
        _write_fidelity(out_dir, fidelity_rows)
        page.parts.append(fidelity_section(fidelity_rows, resolution))
    parts, mobile = published_sections(out_dir, measured, resolution)
    page.parts += parts
    if claims is not None:
        from .speed_claims import speed_claims_section

        page.parts.append(speed_claims_section(out_dir, claims))
    breakdown_rows: list[dict[str, Any]] = []
    if sections.breakdown and timing.remote is not None:
        log("leaving out 'Where the time goes': onnxruntime's profiler runs on this machine only, not over --remote")
    elif sections.breakdown:
        breakdown_rows, breakdown_meta = time_breakdown(out_dir / "time_breakdown.csv",
                                                        list(dict.fromkeys(sections.breakdown)), table.resolution,
                                                        device, timing, log)
        page.parts.append(breakdown_section(out_dir, breakdown_rows, breakdown_meta))
    else:
        page.left_out.append("where the time goes (--breakdown)")
    backbone_claim: list[dict[str, Any]] = []
    if sections.backbones:
        from .backbones import backbones_section

        part, backbone_claim = backbones_section(out_dir, rows, device, timing.threads)
        page.parts.append(part)
    else:
        page.left_out.append("the ImageNet backbone claim (--backbones)")
    features: list[dict[str, Any]] = []
    if sections.feature_resolutions:
        features = _features(out_dir, study, sections.feature_resolutions, pairs, rows, timing, device, page)
    else:
        page.left_out.append("the poster's feature table (--features)")
    meta = {"study": study.study_name, "table": f"{study.user_attrs.get('table')} (onnxruntime "
            f"{table.meta.get('onnxruntime')}, {table.meta.get('date')})",
            "table measured on": f"{table.meta.get('device')} ({table.meta.get('cpu')}, {table.meta.get('arch')})",
            "measured here": f"{device} ({cpu}), {timing.describe()}, at {resolution}",
            "budget_ms": study.user_attrs.get("budget_ms"), "objectives": ",".join(study.user_attrs["objectives"]),
            "proxy": study.user_attrs.get("proxy", "params"), "trials": len(trials),
            "package_version": package_version(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    index = write_page(out_dir, meta, page.parts, _notes(page.left_out))
    return {"index": str(index), "speedups": ratios, "predictor": predictor, "validated": len(validation),
            "trials": len(trials), "measured": len(rows), "backbone_claim": backbone_claim, "features": features,
            "mobile_points": mobile, "time_breakdown": breakdown_rows, "int8_fidelity": fidelity_rows,
            "left_out": page.left_out}


def _meta_cpu(path: Path) -> str | None:
    from search_space.records import read_csv

    return str(read_csv(path)[0].get("cpu")) if path.is_file() else None


def _write_fidelity(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    from search_space.records import write_csv

    from .fidelity import FIDELITY_COLUMNS

    write_csv(out_dir / "int8_fidelity.csv", FIDELITY_COLUMNS, rows)


def _features(out_dir: Path, study: optuna.Study, sizes: Sequence[tuple[int, int]], pairs: list[tuple[str, str]],
              measured: dict[tuple[str, str], dict[str, Any]], timing: Timing, device: str, page: _Page
              ) -> list[dict[str, Any]]:
    """The feature table's section from the shared measurement (``measured``: rows by
    (label, size)); ``pairs``: its (family, network) pairs."""
    from search_space.records import write_csv

    from .features import feature_rows, features_section
    from .validation import trained_networks

    trained = trained_networks(study.user_attrs, [name for _, name in pairs])
    rows = feature_rows(measured, pairs, [tuple(s) for s in sizes], trained)
    write_csv(out_dir / "features.csv", tuple(rows[0]), rows)
    page.parts.append(features_section(rows, device, timing.threads))
    return rows


def _notes(left_out: Sequence[str]) -> str:
    omitted = ("Left out of this report: " + "; ".join(html.escape(s) for s in left_out) + ". "
               "<code>evit-nas report --full</code> adds every reproduction section (minutes on a small CPU). "
               if left_out else "")
    return (omitted + "MACs are multiply-accumulates (the papers call them FLOPs). Published numbers come from "
            "published.csv with their sources; latencies say whether they are predicted by the latency table or "
            "measured, and on which machine.")
