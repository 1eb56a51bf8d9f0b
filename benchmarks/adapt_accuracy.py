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
        --networks 6 12 24 --samples 40 [--full]

Writes ``benchmarks/results/adapt_accuracy_<source>_<cpu>.json``; the CPU model, onnxruntime
version and threads are recorded with the figures.
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
from latency_tables.validate import Summary, compare, held_out_networks  # noqa: E402
from search_space import SearchSpace  # noqa: E402
from search_space.records import cpu_model, write_atomic  # noqa: E402


def judge(table: LatencyTable, networks, results, rescale: bool) -> dict:
    summary = compare(table, networks, results, rescale)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(summary).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="the table to adapt")
    parser.add_argument("--networks", type=int, nargs="+", default=[6, 12, 24], help="networks timed per adaptation")
    parser.add_argument("--samples", type=int, default=40, help="random held-out networks (default: 40)")
    parser.add_argument("--seed", type=int, default=1, help="held-out sampling seed (default: 1)")
    parser.add_argument("--full", action="store_true", help="also build a full table here (the time yardstick)")
    parser.add_argument("--device", default="this-machine")
    parser.add_argument("--threads", type=int, help="threads on this machine (default: the source table's); another "
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
                                            device=args.device, threads=threads)
        report["onnxruntime"] = meta.get("onnxruntime")
        report["unadapted_source_vs_raw"] = judge(source, held_out, results, rescale=False)
        report["unadapted_source_rescaled_by_b0"] = judge(source, held_out, results, rescale=True)
        print(f"unadapted source, raw timings: {Summary(**report['unadapted_source_vs_raw']).line()}", flush=True)
        report["adapted"] = []
        for count in args.networks:
            started = time.monotonic()
            table = adapt_table(source, work / f"adapted{count}.csv", space=space, networks=count, seed=0,
                                device=args.device, threads=threads, other_threads=True)
            seconds = time.monotonic() - started
            entry = {"networks": count, "seconds": round(seconds, 1), "fit_mape": table.calibration.fit_mape,
                     "cv_mape": table.calibration.cv_mape, "prior_weight": table.calibration.prior_weight,
                     "held_out": judge(table, held_out, results, rescale=True)}
            report["adapted"].append(entry)
            print(f"adapted with {count:>3} networks ({seconds:5.0f} s): {Summary(**entry['held_out']).line()}", flush=True)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
