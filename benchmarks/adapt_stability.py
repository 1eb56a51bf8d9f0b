"""Does a short adaptation hold when a user times the networks afterwards with a plain loop?

Five adaptations in a row (``--adaptations``) of the shipped table to this machine
(``latency_tables.adapt.adapt_table``, as ``evit-nas profile --adapt-from`` runs it, with
``--window`` seconds of repeated passes; 0 = the single pass of before). Right after each
one, ``--networks`` random networks of the space that no adaptation times are timed with a
plain onnxruntime loop (one default session alone, 10 warm-up runs, median of 40: what a
user's application sees), and the adapted table's prediction is judged against that, in
absolute milliseconds: each adaptation's mean bias and share within ±10%, and how far the
adaptations' biases spread. With ``--fronts``, the last adaptation also searches the default
space at each budget of ``--budgets`` and judges every network of each feasible front the
same way: the networks a user would ship.

    python benchmarks/adapt_stability.py --window 60 --adaptations 5 --networks 12 --fronts

``--resolution 512x1024`` adapts the 256x512 table to another input size (issue 24 step 3)
and judges there, with budgets to match (``--budgets``).

Each adaptation's table is kept beside the results (``<results stem>_tables/adaptedN.csv``),
and every kept table is judged on the fronts' timings too (``by_adaptation``): the fronts are
searched on the last adaptation's table, but how the others score on them separates one
adaptation's scale from the method. ``--full-table CSV`` judges a full table of this machine
with the same timings, beside each adaptation and front: what a full profile reaches under the
same judge. ``--refit RESULTS`` refits the kept tables' calibrations offline at other pulls
towards the source's (``--weights``) and judges them by the file's own timings.

Targets (issue 24): each adaptation >= 90% within ±10%, the biases spread by at most 4
points, every front network within ±10%. The machine's own drift is in
``machine_drift.json`` (``benchmarks/machine_drift.py``). Run it on a quiet CPU; the record
names the CPU, onnxruntime and threads.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brief_runs import write_json  # noqa: E402
from thread_timing import export_files, time_alone  # noqa: E402

from evit_nas.args import parse_resolution  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SOURCE = ROOT / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv"


def plain_ms(specs: dict, resolution: tuple[int, int], work: Path, threads: int, passes: int = 1,
             record: dict | None = None) -> dict[str, float]:
    """Each network timed alone with a plain default onnxruntime session (exported once); with
    ``passes`` > 1, that many passes over all the networks, each network's median of them (a
    slow minute of the machine then hits one pass, not the judgement). ``record`` receives each
    pass's timings (``passes_ms``) and the passes' spread per network (``pass_spread_pct``:
    slowest over fastest pass, minus 1)."""
    paths = export_files(specs, resolution, work)
    runs = [time_alone(paths, threads, spinning=True) for _ in range(passes)]
    if record is not None:
        record["passes_ms"] = [{n: round(ms, 3) for n, ms in run.items()} for run in runs]
        record["pass_spread_pct"] = {n: round(100 * (max(r[n] for r in runs) / min(r[n] for r in runs) - 1), 2)
                                     for n in specs}
    return {n: statistics.median(r[n] for r in runs) for n in specs}


def judge(table, specs: dict, measured: dict[str, float]) -> dict:
    errors = {n: 100 * (table.predict_ms(specs[n]) / measured[n] - 1) for n in specs}
    values = list(errors.values())
    return {"bias_pct": round(statistics.mean(values), 2), "worst_pct": round(max(values, key=abs), 2),
            "within_10_pct": round(100 * sum(abs(e) <= 10 for e in values) / len(values), 1),
            "errors_pct": {n: round(e, 2) for n, e in errors.items()},
            "measured_ms": {n: round(measured[n], 3) for n in specs}}


def judge_drift(runs: list[dict]) -> dict | None:
    """How far the judge itself moved: each later adaptation's plain timings of the same
    held-out networks against the first's (median, lowest and highest change in %). No table
    can be judged more closely than this."""
    if len(runs) < 2:
        return None
    first = runs[0]["measured_ms"]
    changes = sorted(100 * (run["measured_ms"][n] / first[n] - 1) for run in runs[1:] for n in first)
    return {"median_pct": round(statistics.median(changes), 2), "min_pct": round(changes[0], 2),
            "max_pct": round(changes[-1], 2)}


def fronts(table, space, budgets: list[float], trials: int, work: Path) -> dict[str, dict | str]:
    """budget -> the feasible front's networks, or why there is none (a budget below the
    table's fastest network: the machine may have run slow while the table was adapted)."""
    from nas.search import fastest_network, front, run_search, trial_result

    out: dict[str, dict | str] = {}
    fastest_ms = fastest_network(space, table)[1]
    for budget in budgets:
        if budget < fastest_ms:
            out[f"{budget:g}"] = f"below the table's fastest network ({fastest_ms:.2f} ms)"
            continue
        study = run_search(table, space, budget_ms=budget, trials=trials, storage=str(work / f"s{budget:g}.journal"),
                           study_name=f"front-{budget:g}", table_path=str(table.path))
        specs = {f"b{budget:g}_t{t.number:05d}": trial_result(t).arch for t in front(study)}
        out[f"{budget:g}"] = specs
    return out


def brief(judged: dict) -> dict:
    """A judgement's headline figures: mean bias, worst error, share within ±10%."""
    return {k: judged[k] for k in ("bias_pct", "worst_pct", "within_10_pct")}


def tables_folder(results: Path) -> Path:
    """Where the adapted tables of a results file are kept: ``<stem>_tables/adaptedN.csv``."""
    return results.with_name(results.stem + "_tables")


def every_adaptation(kept: Path, count: int, specs: dict, measured: dict[str, float]) -> list[dict]:
    """Each kept adaptation's table judged by the same timings of ``specs`` (the fronts are
    searched on the last one's table, but any of them could have been the user's): how much of
    a front's error is that one adaptation's, and how much the method's."""
    from latency_tables.table import LatencyTable

    return [{"adaptation": i, **brief(judge(LatencyTable.load(kept / f"adapted{i}.csv"), specs, measured))}
            for i in range(1, count + 1)]


def refit(results: Path, weights: list[float]) -> int:
    """Refit each kept adaptation's calibration at each pull towards its source's and judge it
    by the file's own plain timings (held-out networks; fronts for the last adaptation where
    the file keeps their specs). Nothing is timed."""
    import json

    import numpy as np

    from latency_tables.table import LatencyTable, fit_calibration
    from search_space import ArchSpec, SearchSpace

    report = json.loads(results.read_text())
    space = SearchSpace.default()
    held = {f"net{i:02d}": space.sample(9000 + i) for i in range(report["held_out"])}
    folder = tables_folder(results)
    rows = []
    for weight in [None, *weights]:
        entry: dict = {"prior_weight": weight, "adaptations": []}
        for run in report["adaptations"]:
            path = folder / f"adapted{run['adaptation']}.csv"
            if not path.is_file():
                raise SystemExit(f"{path} is missing: --refit needs the tables the run kept")
            table = LatencyTable.load(path)
            networks = table.meta["calibration_networks"]
            features = np.array([table.features(ArchSpec.from_dict(n["spec"])) for n in networks])
            cal = fit_calibration(features, np.array([n["median_ms"] for n in networks]),
                                  prior=table.meta["adapted_from"]["prior"], prior_weight=weight)
            refitted = LatencyTable(table.meta, table.rows, cal, str(path))
            entry["adaptations"].append({"adaptation": run["adaptation"], "prior_weight": cal.prior_weight,
                                         **brief(judge(refitted, held, run["measured_ms"]))})
            if run is report["adaptations"][-1]:
                entry["fronts"] = {}
                for budget, front in (report.get("fronts") or {}).items():
                    if "specs" in front:
                        specs = {n: ArchSpec.from_dict(d) for n, d in front["specs"].items()}
                        entry["fronts"][budget] = brief(judge(refitted, specs, front["measured_ms"]))
        biases = [a["bias_pct"] for a in entry["adaptations"]]
        entry["bias_spread_points"] = round(max(biases) - min(biases), 2)
        entry["min_within_10_pct"] = min(a["within_10_pct"] for a in entry["adaptations"])
        rows.append(entry)
        label = "cross-validated" if weight is None else f"pull {weight:g}"
        print(f"{label:>16}: within ±10% " + ", ".join(f"{a['within_10_pct']:.0f}%" for a in entry["adaptations"])
              + f"; biases {min(biases):+.1f}% to {max(biases):+.1f}% (spread {entry['bias_spread_points']:.1f})"
              + "".join(f"; front {b} ms {f['within_10_pct']:.0f}%" for b, f in entry.get("fronts", {}).items()))
    report["refit"] = rows
    write_json(results, report)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SOURCE, help="the table to adapt (default: the shipped one)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of repeated passes (default 60; 0: one)")
    parser.add_argument("--adaptations", type=int, default=5)
    parser.add_argument("--front-networks", type=int, default=0,
                        help="networks like a search's front timed beside the 6 spread ones (default 0)")
    parser.add_argument("--networks", type=int, default=12, help="random held-out networks (default 12)")
    parser.add_argument("--seed", type=int, default=9000, help="first sample seed of the held-out networks")
    parser.add_argument("--fronts", action="store_true", help="judge the last adaptation's search fronts too")
    parser.add_argument("--budgets", type=float, nargs="+", default=[20.0, 50.0, 100.0])
    parser.add_argument("--trials", type=int, default=300, help="search trials per budget (default 300)")
    parser.add_argument("--resolution", type=parse_resolution, metavar="HxW",
                        help="adapt to this input size (default: the source's) and judge there")
    parser.add_argument("--adapt-blocks", action=argparse.BooleanOptionalAction, default=False,
                        help="also time the timed networks' blocks, correct every row and keep the source's "
                        "calibration in shape (profile --adapt-blocks, the CLI's default for fp32 tables)")
    parser.add_argument("--full-table", type=Path, metavar="CSV", help="a full table of this machine, judged by the "
                        "same plain timings beside each adaptation: what a full profile reaches under the same judge")
    parser.add_argument("--rederive", metavar="JSON", help="only recompute the derived fields (judge_drift, each "
                        "kept adaptation on the fronts) of an existing results file from its own timings")
    parser.add_argument("--refit", metavar="JSON", help="offline: refit the calibration of each adaptation kept beside "
                        "JSON (its _tables folder) at each pull towards the source's (--weights), and judge it by the "
                        "file's own plain timings; adds 'refit' to JSON")
    parser.add_argument("--weights", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0],
                        help="with --refit: the pulls tried")
    parser.add_argument("--out", help="results JSON (default: results/adapt_stability_w<WINDOW>[_fN][_HxW].json)")
    args = parser.parse_args(argv)
    if args.rederive:
        import json

        from search_space import ArchSpec

        report = json.loads(Path(args.rederive).read_text())
        report["judge_drift"] = judge_drift(report["adaptations"])
        kept = tables_folder(Path(args.rederive))
        for front in (report.get("fronts") or {}).values():
            if "specs" in front and kept.is_dir():
                specs = {n: ArchSpec.from_dict(d) for n, d in front["specs"].items()}
                front["by_adaptation"] = every_adaptation(kept, len(report["adaptations"]), specs, front["measured_ms"])
        write_json(Path(args.rederive), report)
        return 0
    if args.refit:
        return refit(Path(args.refit), args.weights)
    if args.window < 0 or args.adaptations < 1 or args.networks < 1:
        parser.error("--window must be >= 0, --adaptations and --networks >= 1")
    import onnxruntime as ort

    from latency_tables.adapt import adapt_table
    from latency_tables.table import LatencyTable
    from search_space import SearchSpace
    from search_space.records import cpu_model

    source = LatencyTable.load(args.source)
    resolution = tuple(args.resolution) if args.resolution else source.resolution
    threads = int(source.meta["threads"])
    space = SearchSpace.default()
    held = {f"net{i:02d}": space.sample(args.seed + i) for i in range(args.networks)}
    work = Path(tempfile.mkdtemp(prefix="evitnas-adapt-stability-"))
    full = LatencyTable.load(args.full_table) if args.full_table else None
    if full is not None and (full.resolution != resolution or int(full.meta["threads"]) != threads):
        parser.error(f"--full-table {args.full_table} is for {full.resolution} at {full.meta['threads']} thread(s), "
                     f"not {resolution} at {threads}")
    out = Path(args.out) if args.out else RESULTS / (f"adapt_stability_w{args.window:g}"
                                                     + (f"_f{args.front_networks}" if args.front_networks else "")
                                                     + ("_blocks" if args.adapt_blocks else "")
                                                     + ("" if resolution == source.resolution
                                                        else "_{}x{}".format(*resolution)) + ".json")
    kept = tables_folder(out)
    kept.mkdir(parents=True, exist_ok=True)
    runs = []
    table = None
    for i in range(args.adaptations):
        began = time.monotonic()
        table = adapt_table(source, work / f"adapted{i}.csv", space=space, device="here", threads=threads,
                            window_s=args.window, front_networks=args.front_networks, resolution=resolution,
                            time_blocks=args.adapt_blocks)
        seconds = time.monotonic() - began
        shutil.copyfile(table.path, kept / f"adapted{i + 1}.csv")
        measured = plain_ms(held, resolution, work, threads)
        result = judge(table, held, measured)
        if full is not None:
            result["full_table"] = {k: v for k, v in judge(full, held, measured).items() if k != "measured_ms"}
        adapted = table.meta["adapted_from"]
        runs.append({"adaptation": i + 1, "seconds": round(seconds, 1), "passes": adapted["rounds"][0].get("passes", 1),
                     "scale_uncertainty_pct": adapted.get("scale_uncertainty_pct"),
                     "reference_ms": table.meta["reference"]["median_ms"], **result})
        u = runs[-1]["scale_uncertainty_pct"]
        print(f"adaptation {i + 1}: {seconds:.0f} s, {runs[-1]['passes']} pass(es)"
              + ("" if u is None else f", scale ±{u:.1f}%") + f"; plain loop afterwards: bias {result['bias_pct']:+.1f}%, "
              f"{result['within_10_pct']:.0f}% within ±10%, worst {result['worst_pct']:+.1f}%", flush=True)
    biases = [r["bias_pct"] for r in runs]
    report = {"command": "python benchmarks/adapt_stability.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cpu": cpu_model(), "onnxruntime": ort.__version__, "threads": threads,
              "resolution": list(resolution), "source_resolution": list(source.resolution), "source": str(args.source.relative_to(ROOT))
              if args.source.is_relative_to(ROOT) else str(args.source), "window_s": args.window,
              "front_networks": args.front_networks, "adapt_blocks": args.adapt_blocks, "held_out": args.networks, "adaptations": runs,
              "bias_spread_points": round(max(biases) - min(biases), 2),
              "min_within_10_pct": min(r["within_10_pct"] for r in runs), "judge_drift": judge_drift(runs)}
    print(f"\n{cpu_model()}, onnxruntime {ort.__version__}, {threads} thread(s), window {args.window:g} s: biases "
          f"{min(biases):+.1f}% to {max(biases):+.1f}% (spread {report['bias_spread_points']:.1f} points; target <= 4), "
          f"worst share within ±10% {report['min_within_10_pct']:.0f}% (target >= 90%)")
    if args.fronts and table is not None:
        report["fronts"] = {}
        write_json(out, report)  # the adaptations are kept even if a front fails
        for budget, specs in fronts(table, space, args.budgets, args.trials, work).items():
            if isinstance(specs, str):
                print(f"front at {budget} ms: skipped, {specs}", flush=True)
                report["fronts"][budget] = {"networks": 0, "skipped": specs}
                continue
            if not specs:
                print(f"front at {budget} ms: no feasible network in {args.trials} trials", flush=True)
                report["fronts"][budget] = {"networks": 0}
                continue
            measured = plain_ms(specs, resolution, work, threads)
            result = judge(table, specs, measured)
            if full is not None:
                result["full_table"] = {k: v for k, v in judge(full, specs, measured).items() if k != "measured_ms"}
            result["specs"] = {n: spec.to_dict() for n, spec in specs.items()}
            result["by_adaptation"] = every_adaptation(kept, len(runs), specs, measured)
            report["fronts"][budget] = {"networks": len(specs), **result}
            print(f"front at {budget} ms: {len(specs)} networks, {result['within_10_pct']:.0f}% within ±10%, "
                  f"bias {result['bias_pct']:+.1f}%, worst {result['worst_pct']:+.1f}%"
                  + ("" if full is None else f" (the full table: {result['full_table']['within_10_pct']:.0f}% within "
                     f"±10%, bias {result['full_table']['bias_pct']:+.1f}%)"), flush=True)
    if full is not None:
        report["full_table"] = str(args.full_table)
    report["tables"] = str(kept.relative_to(ROOT)) if kept.is_relative_to(ROOT) else str(kept)
    write_json(out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
