"""Adapting a table to this machine (``evit-nas profile --adapt-from``): accuracy against
the time spent, next to the unadapted source table and a full profile of this machine.

Held-out networks (random networks of the space, seed ``--seed``, plus B0-B3) are timed
end to end once on this machine with the table protocol. The source table is adapted with
each of ``--networks`` counts (each adaptation times its own networks, which are not the
held-out ones), and every table predicts the held-out networks: share within ±5% and ±10%,
MAPE, against the measurements rescaled to each table's reference speed (the unadapted
source: against the raw timings, since its reference is another machine's). With
``--full`` a full profile of this machine at the same resolution is built and judged the
same way, and its build time is the yardstick for the adaptation's (goal: at most 10%).

    python benchmarks/adapt_accuracy.py --source latency_tables/x86_64_xeon_2core_256x512_t1.csv \\
        --networks 3 4 6 8 12 24 --repeats 10 20 --budget-minutes 0.5 1 --samples 40 [--full]

Every count of ``--networks`` is adapted with every count of ``--repeats`` (timed visits per
network), and each ``--budget-minutes`` runs ``profile --adapt-from --budget-minutes`` (6
networks, then more while the budget lasts): accuracy against the seconds spent, a curve.

Writes ``benchmarks/results/adapt_accuracy_<source>_<cpu>.json`` and, with matplotlib, the
curve as a PNG beside it; the CPU model, onnxruntime version and threads are recorded with
the figures.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency_tables.adapt import adapt_table  # noqa: E402
from latency_tables.build import measure_networks, plan_profile, profile_table  # noqa: E402
from latency_tables.table import LatencyTable  # noqa: E402
from latency_tables.timing import Timing  # noqa: E402
from latency_tables.validate import Summary, compare, held_out_networks  # noqa: E402
from search_space import SearchSpace  # noqa: E402
from search_space.records import cpu_model, write_atomic  # noqa: E402
from evit_nas.args import parse_threads  # noqa: E402


def judge(table: LatencyTable, networks, results, rescale: bool) -> dict:
    summary = compare(table, networks, results, rescale)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(summary).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="the table to adapt")
    parser.add_argument("--networks", type=int, nargs="+", default=[6, 12, 24], help="networks timed per adaptation")
    parser.add_argument("--repeats", type=int, nargs="+", default=[10], help="timed visits per network (default: 10)")
    parser.add_argument("--budget-minutes", type=float, nargs="*", default=[], help="adaptations with a time budget")
    parser.add_argument("--samples", type=int, default=40, help="random held-out networks (default: 40)")
    parser.add_argument("--seed", type=int, default=1, help="held-out sampling seed (default: 1)")
    parser.add_argument("--full", action="store_true", help="also build a full table here (the time yardstick)")
    parser.add_argument("--device", default="this-machine")
    parser.add_argument("--threads", type=parse_threads, help="threads on this machine (default: the source table's); another "
                        "count than the source's measures the transfer between thread counts")
    args = parser.parse_args()
    source = LatencyTable.load(args.source)
    space = SearchSpace.default()
    threads = args.threads or int(source.meta["threads"])
    work = Path(tempfile.mkdtemp(prefix="adapt-bench-"))
    report: dict = {"source": args.source.name, "source_cpu": source.meta.get("cpu"), "resolution": list(source.resolution),
                    "threads": threads, "cpu": cpu_model(), "samples": args.samples, "seed": args.seed}
    try:
        held_out = held_out_networks(space, source, args.samples, args.seed)
        print(f"timing {len(held_out)} held-out networks here ({report['cpu']}), {threads} thread(s)", flush=True)
        meta, results, _ = measure_networks([s for _, s in held_out], source.resolution, work_dir=work / "held-out",
                                            device=args.device, timing=Timing(threads=threads))
        report["onnxruntime"] = meta.get("onnxruntime")
        report["unadapted_source_vs_raw"] = judge(source, held_out, results, rescale=False)
        report["unadapted_source_rescaled_by_b0"] = judge(source, held_out, results, rescale=True)
        print(f"unadapted source, raw timings: {Summary(**report['unadapted_source_vs_raw']).line()}", flush=True)
        report["adapted"] = []
        runs = [{"networks": n, "repeats": r} for r in args.repeats for n in args.networks]
        runs += [{"networks": 6, "repeats": args.repeats[0], "budget_minutes": m} for m in args.budget_minutes]
        for i, run in enumerate(runs):
            started = time.monotonic()
            budget = run.get("budget_minutes")
            table = adapt_table(source, work / f"adapted{i}.csv", space=space, networks=run["networks"], seed=0,
                                device=args.device, threads=threads, repeats=run["repeats"],
                                budget_s=budget * 60 if budget else None, other_threads=True)
            seconds = time.monotonic() - started
            entry = {**run, "networks_timed": table.calibration.networks, "seconds": round(seconds, 1),
                     "fit_mape": table.calibration.fit_mape, "cv_mape": table.calibration.cv_mape,
                     "prior_weight": table.calibration.prior_weight,
                     "held_out": judge(table, held_out, results, rescale=True)}
            report["adapted"].append(entry)
            what = f"{budget:g} min budget, {entry['networks_timed']:>3} networks" if budget else \
                f"{run['networks']:>3} networks"
            print(f"adapted ({what}, {run['repeats']} visits, {seconds:5.0f} s): {Summary(**entry['held_out']).line()}",
                  flush=True)
        if args.full:
            started = time.monotonic()
            path = work / "full.csv"
            profile_table(path, plan_profile(source.resolution, space), device=args.device, threads=threads)
            full = LatencyTable.load(path)
            report["full_profile"] = {"seconds": round(time.monotonic() - started, 1),
                                      "held_out": judge(full, held_out, results, rescale=True)}
            print(f"full profile here ({report['full_profile']['seconds']:.0f} s): "
                  f"{Summary(**report['full_profile']['held_out']).line()}", flush=True)
            for entry in report["adapted"]:
                entry["share_of_full_profile_time"] = round(entry["seconds"] / report["full_profile"]["seconds"], 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cpu = re.sub(r"[^A-Za-z0-9]+", "_", report["cpu"]).strip("_").lower()
    out = ROOT / "benchmarks" / "results" / f"adapt_accuracy_{args.source.stem}_to_{cpu}_t{threads}.json"
    write_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    plot(report, out.with_suffix(".png"))
    return 0


def plot(report: dict, path: Path) -> None:
    """Share of held-out networks within ±5% and ±10% against the adaptation's seconds."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    runs = sorted(report["adapted"], key=lambda e: e["seconds"])
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for key, label in (("within_10", "within ±10%"), ("within_5", "within ±5%")):
        ax.plot([e["seconds"] for e in runs], [e["held_out"][key] for e in runs], "o-", label=label)
    full = report.get("full_profile")
    if full:
        ax.axvline(full["seconds"] * 0.1, color="grey", ls=":", label="10% of a full profile")
    ax.set_xscale("log")
    ax.set_xlabel("adaptation time (s)")
    ax.set_ylabel(f"held-out networks (%), n={runs[0]['held_out']['networks']}" if runs else "%")
    ax.set_title(f"{report['source']} adapted to {report['cpu']}, {report['threads']} thread(s)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
