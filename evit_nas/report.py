"""Commands that put everything together: ``report`` (figures and an HTML page for a
study) and ``demo`` (search, validate and report on built-in defaults)."""

from __future__ import annotations

import argparse
import math
import time
from os import cpu_count
from pathlib import Path
from typing import Any

from search_space.spec import SEG_DATASETS

from .args import (PRECISION_CHOICES, CLIError, add_json, add_remote, add_timing, host_name, parse_resolution,
                   print_json, remote_target, resolve, timing_arg, warn_about_table)
from .progress import Progress
from .search import search_progress

#: the table the demo searches on, shipped in latency_tables/
DEMO_TABLE = "x86_64_xeon_2core_256x512_t1.csv"
DEMO_RESOLUTION = (128, 256)
#: the feature table's input sizes: the report's default (the issue's 256x512 to 1024x2048) and the demo's (smaller, to
#: keep `demo --full` within minutes on a small CPU; the page says which sizes were used)
FEATURE_SIZES = ((256, 512), (512, 1024), (1024, 2048))
DEMO_FEATURE_SIZES = ((64, 128), (128, 256), (256, 512))
#: the networks the demo compares by default (Cityscapes configurations only): the speedup pairs B0/SegFormer-B0,
#: B1/SegNeXt-T and B3/SegNeXt-S and their neighbours, about 0.7 s per timed visit of all of them at 256x512 on one
#: core; `demo --full` compares every network in both configurations but HRFormer-B
DEMO_COMPARE = ("efficientvit_seg_b0", "efficientvit_seg_b1", "efficientvit_seg_b2", "efficientvit_seg_b3",
                "segformer_b0", "segformer_b1", "segnext_t", "segnext_s")
DEMO_DATASETS = ("cityscapes",)
#: left out of `demo --full`'s comparison unless named with --compare: HRFormer-B (56M weights) alone took
#: about 80 s of a 10-minute demo on the 2-core AMD VM
DEMO_SKIPPED = ("hrformer_b",)
#: the networks of the report's "Where the time goes" (onnxruntime's profiler): the report's default (B1 and B3
#: against SegNeXt-T/S and SegFormer-B0) and the demo's (the three light ones: B3 and SegNeXt-S are profiled
#: about 2 x (warm-up + repeats) times each, the slowest part of that section)
BREAKDOWN = ("efficientvit_seg_b1", "efficientvit_seg_b3", "segnext_t", "segnext_s", "segformer_b0")
DEMO_BREAKDOWN = ("efficientvit_seg_b1", "segnext_t", "segformer_b0")
#: the demo's stages, as its timing summary names them
STAGES = ("adapt", "search", "validate", "report")
# The demo's budget: 50 ms, or more where too few of the space's networks meet 50 ms on the
# adapted table (a slower or busy machine): the latency that a share q of them meets, q such
# that the search's random start (its first min(trials, 50) trials: NSGA-II's first
# generation) misses every feasible network with probability at most DEMO_MISS_RISK. Under
# load a fixed 50 ms once left 40 trials with no feasible network at all.
DEMO_BUDGET_MS = 50.0
DEMO_MISS_RISK = 0.01
NSGA2_POPULATION = 50


def _add_comparison(p: argparse.ArgumentParser, demo: bool = False) -> None:
    """Timing options (the table protocol: with fewer visits the demo's latency panel swung by
    ±10% between runs on the AMD VM), which networks to compare, and the opt-in sections."""
    g = p.add_argument_group("measuring EfficientViT B0-B3 and the peers on this machine")
    add_timing(g)
    g.add_argument("--compare", nargs="+", metavar="NAME",
                   help="measure only these of efficientvit_seg_b0..b3, segformer_b0..b3, segnext_t/s, hrformer_s/b "
                   + (f"(default: {' '.join(DEMO_COMPARE)}; with --full all but {' '.join(DEMO_SKIPPED)})" if demo
                      else "(default: all; the large SegFormers and HRFormers take a while on a small CPU)"))
    g.add_argument("--datasets", nargs="+", choices=SEG_DATASETS, metavar="DATASET",
                   help="dataset configurations of the compared networks: cityscapes, ade20k (default: "
                   + ("cityscapes; with --full both)" if demo else "both)"))
    g.add_argument("--precision", choices=PRECISION_CHOICES,
                   help="the deployment precision the networks are measured in: the table's (a table of another "
                   "precision is refused; build one with `evit-nas profile --precision`)")
    g.add_argument("--no-int8-fidelity", action="store_true",
                   help="with an int8 table: leave out how far each network's int8 output strays from fp32")
    g = p.add_argument_group("the paper, reproduced (opt-in sections: minutes on a small CPU)")
    g.add_argument("--full", action="store_true",
                   help="add every reproduction section: --backbones, --features and --breakdown"
                   + (", and compare every network in both dataset configurations" if demo else ""))
    g.add_argument("--backbones", action="store_true",
                   help="add the ImageNet backbone claim (EfficientViT-B1..B3 at 288x288 against EfficientNet-B6 at "
                   "528x528, each timed at its official size)")
    g.add_argument("--no-backbones", action="store_true", help="leave out the backbone claim (with --full)")
    g.add_argument("--features", action="store_true",
                   help="add the poster's feature table (complexity exponents, receptive field, ms per G MACs)")
    g.add_argument("--feature-resolutions", nargs="+", type=parse_resolution, metavar="HxW",
                   help="input sizes (at least 3) of the feature table's complexity exponents; implies --features "
                   f"(default: {' '.join(f'{h}x{w}' for h, w in (DEMO_FEATURE_SIZES if demo else FEATURE_SIZES))})")
    g.add_argument("--no-features", action="store_true", help="leave out the feature table (with --full)")
    g.add_argument("--breakdown", nargs="*", metavar="NAME",
                   help="add 'Where the time goes': these networks (alone: "
                   f"{' '.join(DEMO_BREAKDOWN if demo else BREAKDOWN)}), each profiled with onnxruntime's profiler "
                   "on this machine")
    g.add_argument("--no-breakdown", action="store_true", help="leave out 'Where the time goes' (with --full)")
    g.add_argument("--speed-claims", metavar="JSON",
                   help="add the full-resolution speedups with 95%% intervals that benchmarks/speed_claims.py measured "
                   "(its speed_claims.json; the machine it names, not necessarily this one)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="figures and an HTML page: the search against B0-B3, SegFormer and SegNeXt",
                       description="Write PNG + SVG figures, the CSV behind each, and OUT/index.html, in this order: "
                       "the search's trials and Pareto front, the validated networks' mIoU, the latency table's "
                       "accuracy, and published mIoU against latency measured here for EfficientViT B0-B3, SegFormer "
                       "B0-B3, SegNeXt T/S and HRFormer S/B (all timed end to end with the table protocol), then the "
                       "paper's published points. The heavier reproduction sections (the backbone claim, the feature "
                       "table, where the time goes) are added with --full or one by one. The networks are timed on "
                       "the device of the study's table: this machine, or the device over SSH with --remote. "
                       "Measurements are kept in OUT/measured.csv and reused by the next report.")
    p.add_argument("--storage", help="Optuna storage of the study (default: evit-nas.journal)")
    p.add_argument("--study", required=True, help="study name (from evit-nas search)")
    p.add_argument("-o", "--output", default="report", help="report folder (default: report)")
    p.add_argument("--table", help="the study's latency table, if it is no longer where the study says")
    _add_comparison(p)
    add_json(p, "machine-readable summary")
    add_remote(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="adapt, search, validate and report on built-in defaults (about 5 minutes)",
                       description="The whole job on built-in defaults: adapt the shipped x86 table to this machine "
                       "(a few networks timed here), search the default space for a latency budget on it, train the "
                       "best few front networks (and EfficientViT-B0) briefly on the procedural dataset, measure B0-B3 "
                       "and SegFormer/SegNeXt here (Cityscapes configurations), and write the report. --full adds "
                       "every network in both configurations and the paper's reproduction sections (about 10 more "
                       "minutes on 2 cores). Rerun to resume: finished steps are reused.")
    p.add_argument("--out", default="evit-nas-demo", help="folder for the study, checkpoints and report (default: evit-nas-demo)")
    p.add_argument("--table", help=f"latency table (default: the shipped {DEMO_TABLE})")
    p.add_argument("--adapt-networks", type=int, default=6,
                   help="networks timed here to adapt the table to this machine (default: 6)")
    p.add_argument("--adapt-window", type=float, default=60.0, metavar="SECONDS",
                   help="seconds the adaptation's networks are timed for, in repeated passes, so that the table's "
                   "scale is not a moment's speed of the machine (default: 60; 0: one pass)")
    p.add_argument("--no-adapt", action="store_true", help="search on the table as it is (another machine's latencies)")
    p.add_argument("--budget-ms", type=float, default=None,
                   help="latency budget in ms (default: 50, or more where too few of the space's networks meet 50 "
                   "ms on this machine for the search's first random trials to hold a feasible one)")
    p.add_argument("--trials", type=int, default=300, help="search trials (default: 300)")
    p.add_argument("--top-k", type=int, default=2, help="front networks to train (default: 2)")
    p.add_argument("--steps", type=int, default=150, help="training steps per network (default: 150)")
    p.add_argument("--train-peers", nargs="*", metavar="PEER", default=["segformer_b0"],
                   help="peers to train with the same recipe, for the validation figure (default: segformer_b0, about "
                   "2x B0's training time here; segnext_t takes about 6x; `--train-peers` alone: none)")
    _add_comparison(p, demo=True)
    p.set_defaults(func=cmd_demo)


def _adapted_table(source: Any, out: Path, networks: int, window_s: float = 60.0) -> tuple[Path, Any]:
    """The demo's table adapted to this machine: ``out/adapted_HOST_HxW_tT.csv``, made
    once (a rerun on the same machine reuses it; on another CPU it is made again)."""
    from latency_tables.adapt import adapt_table, blocks_by_default
    from latency_tables.table import LatencyTable
    from search_space.records import cpu_model
    from search_space.space import SearchSpace

    h, w = source.resolution
    threads = int(source.meta["threads"])
    path = out / f"adapted_{host_name()}_{h}x{w}_t{threads}.csv"
    done = LatencyTable.load(path) if path.is_file() else None
    if done is not None and done.meta.get("cpu") == cpu_model():
        print(f"step 1/4, adapt: already done ({path})")
        return path, done
    blocks = blocks_by_default(source)  # as profile --adapt-from does
    print(f"step 1/4, adapt: timing {networks} networks here (and up to {networks} like a search's front)"
          + (", then their blocks," if blocks else "") + f" to adapt {Path(source.path).name} "
          f"({source.meta.get('cpu')}) to this machine ({cpu_model()})")
    table = adapt_table(source, path, space=SearchSpace.default("cityscapes"), networks=networks, device=host_name(),
                        threads=threads, export_progress=Progress("export", "network"), window_s=window_s,
                        front_networks=networks, time_blocks=blocks)
    cal = table.calibration
    quality = f"leave-one-out MAPE {cal.cv_mape}%" if cal.cv_mape is not None else f"fit MAPE {cal.fit_mape}%"
    uncertainty = table.meta["adapted_from"].get("scale_uncertainty_pct")
    scale = "" if uncertainty is None else f"; the table's scale ±{uncertainty:.1f}%"
    print(f"  wrote {path}: {quality} on the {cal.networks} networks timed here{scale}")
    return path, table


def _study_table(args: argparse.Namespace, study: Any) -> Any:
    from latency_tables.table import LatencyTable

    path = args.table or study.user_attrs.get("table")
    if not path or not Path(path).is_file():
        raise CLIError(f"the study's latency table {path!r} is not here; give it with --table FILE")
    return LatencyTable.load(path)


def _print_speedups(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'EfficientViT':<22}{'peer':<15}{'dataset':<12}{'published Orin':>15}{'measured here':>15}")
    for r in rows:
        pub = "" if r["published_orin_speedup"] is None else f"{r['published_orin_speedup']:.2f}x"
        here = "" if r["measured_speedup_here"] is None else f"{r['measured_speedup_here']:.2f}x"
        print(f"{r['efficientvit']:<22}{r['peer']:<15}{r['dataset']:<12}{pub:>15}{here:>15}")


def _check_sections(args: argparse.Namespace) -> None:
    """Refuse contradicting section options (before any work)."""
    for on, off, flag in ((args.backbones, args.no_backbones, "backbones"),
                          (args.features or args.feature_resolutions, args.no_features, "features"),
                          (args.breakdown is not None, args.no_breakdown, "breakdown")):
        if on and off:
            raise CLIError(f"--{flag} and --no-{flag} contradict each other; give one of them")
    if args.feature_resolutions is not None and len(set(args.feature_resolutions)) < 3:
        raise CLIError("--feature-resolutions: give at least 3 different sizes (the exponents are fitted over them)")


def _sections(args: argparse.Namespace, default_sizes: tuple[tuple[int, int], ...],
              default_breakdown: tuple[str, ...]) -> Any:
    """The report's opt-in sections (``reports.report.Sections``) from the command line."""
    from reports.report import Sections

    _check_sections(args)
    features = (args.full or args.features or args.feature_resolutions) and not args.no_features
    breakdown = (args.full or args.breakdown is not None) and not args.no_breakdown
    return Sections(backbones=(args.full or args.backbones) and not args.no_backbones,
                    feature_resolutions=tuple(args.feature_resolutions or default_sizes) if features else (),
                    breakdown=tuple(args.breakdown or default_breakdown) if breakdown else (),
                    speed_claims=args.speed_claims, fidelity=not args.no_int8_fidelity)


def cmd_report(args: argparse.Namespace) -> int:
    import sys

    from nas.search import load_study
    from reports.report import write_report

    sections = _sections(args, FEATURE_SIZES, BREAKDOWN)
    study = load_study(args.storage, args.study)
    table = _study_table(args, study)
    table.check(precision=args.precision)
    warn_about_table(table, remote_target(args))
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    summary = write_report(study, table, args.output, timing=timing_arg(args), compare=args.compare,
                           datasets=args.datasets or SEG_DATASETS, sections=sections,
                           progress=lambda what: Progress(what, "network"), log=say)
    if args.json:
        print_json(summary)
        return 0
    _print_speedups(summary["speedups"])
    print(f"\nreport: {summary['index']}")
    if summary["left_out"]:
        print("left out (opt-in): " + "; ".join(summary["left_out"]) + ". Add them all with --full.")
    return 0


def _demo_report(args: argparse.Namespace, study: Any, table: Any, out: Path) -> dict[str, Any]:
    """Step 4: the report, on the demo's networks (all of them with --full)."""
    from reports.measured import EFFICIENTVIT
    from reports.report import write_report
    from search_space.peers import PEERS

    if args.full:
        compare = args.compare or [n for n in EFFICIENTVIT + PEERS if n not in DEMO_SKIPPED]
        datasets = args.datasets or SEG_DATASETS
    else:
        compare, datasets = args.compare or list(DEMO_COMPARE), args.datasets or DEMO_DATASETS
    print(f"step 4/4, report: measure {len(compare)} network(s) ({', '.join(datasets)}) end to end, draw the figures")
    return write_report(study, table, out / "report", timing=timing_arg(args), compare=compare, datasets=datasets,
                        sections=_sections(args, DEMO_FEATURE_SIZES, DEMO_BREAKDOWN),
                        progress=lambda what: Progress(what, "network"))


def _demo_budget(table, trials: int) -> float:
    """50 ms, or the latency that enough of the space meets for a short search to start with
    a feasible network (see DEMO_MISS_RISK)."""
    from nas.search import sampled_latencies
    from search_space.space import SearchSpace

    start = min(trials, NSGA2_POPULATION)
    needed = 1 - DEMO_MISS_RISK ** (1 / start)  # the share of feasible networks the random start needs
    latencies = sampled_latencies(SearchSpace.default("cityscapes"), table)
    share = sum(ms <= DEMO_BUDGET_MS for ms in latencies) / len(latencies)
    if share >= needed:
        return DEMO_BUDGET_MS
    budget = float(math.ceil(latencies[math.ceil(needed * len(latencies))]))
    print(f"only {100 * share:.1f}% of the space's networks meet {DEMO_BUDGET_MS:g} ms on this table (this machine is "
          f"slower than the table's source, or busy): the budget is {budget:g} ms, which {100 * needed:.0f}% of them "
          f"meet, so that the search's first {start} random trials hold a feasible network; choose one with --budget-ms")
    return budget


def cmd_demo(args: argparse.Namespace) -> int:
    import latency_tables
    from latency_tables.table import LatencyTable

    started = time.monotonic()
    _check_sections(args)  # contradicting options fail before any work
    timing_arg(args)
    table_path = Path(args.table) if args.table else Path(latency_tables.__file__).with_name(DEMO_TABLE)
    table = LatencyTable.load(table_path)  # a bad table fails before the heavy imports
    from nas.search import run_search
    from nas.validate import Entry, default_recipe, front_entries, open_datasets, validate
    from search_space.space import SearchSpace

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    stage = time.monotonic()
    if args.no_adapt:
        print(f"step 1/4, adapt: skipped (--no-adapt); searching on {table_path.name} as it is")
        warn_about_table(table)
    else:
        table_path, table = _adapted_table(table, out, args.adapt_networks, args.adapt_window)
    seconds["adapt"], stage = time.monotonic() - stage, time.monotonic()
    storage = str(out / "demo.journal")
    if args.budget_ms is None:
        args.budget_ms = _demo_budget(table, args.trials)
    name = f"demo-budget{args.budget_ms:g}ms"
    print(f"step 2/4, search: {args.trials} trials for a {args.budget_ms:g} ms budget on {table.meta['device']} "
          f"({table_path.name}); study {name!r} in {storage}")
    progress = search_progress()
    study = run_search(table, SearchSpace.default("cityscapes"), budget_ms=args.budget_ms, trials=args.trials,
                       objectives="proxy,latency", sampler="nsga2", storage=storage, study_name=name,
                       seed=0, table_path=str(table_path),
                       progress=lambda done, total, feasible, size: progress(done, total, feasible=feasible, front=size))
    seconds["search"], stage = time.monotonic() - stage, time.monotonic()
    entries = front_entries(study, args.top_k)
    entries += [Entry(*resolve(n, "cityscapes", peers=True)) for n in args.train_peers]
    recipe = default_recipe("synthetic", DEMO_RESOLUTION, args.steps, 8, 0)
    train_set, val_set = open_datasets("synthetic", DEMO_RESOLUTION)
    print(f"step 3/4, validate: {len(entries)} network(s) + EfficientViT-B0, {args.steps} steps of batch 8 on the procedural "
          f"dataset at {DEMO_RESOLUTION[0]}x{DEMO_RESOLUTION[1]}")
    validate(entries, train_set, val_set, dataset="synthetic", recipe=recipe, work_dir=out / "validation", study=study,
             progress=Progress("train", "step"))
    seconds["validate"], stage = time.monotonic() - stage, time.monotonic()
    summary = _demo_report(args, study, table, out)
    seconds["report"] = time.monotonic() - stage
    _print_speedups([r for r in summary["speedups"] if r["measured_speedup_here"] is not None] or summary["speedups"])
    total = time.monotonic() - started
    print(f"\ntiming: " + ", ".join(f"{s} {seconds[s]:.0f} s" for s in STAGES)
          + f"; demo {total:.0f} s in all, on {cpu_count()} core(s)")
    print(f"demo finished in {total:.0f} s; report: {summary['index']}")
    if not args.full:
        print(f"the full version (every network in both configurations, the backbone claim, the feature table, where "
              f"the time goes; about 10 more minutes on 2 cores): evit-nas demo --full --out {args.out}")
    return 0
