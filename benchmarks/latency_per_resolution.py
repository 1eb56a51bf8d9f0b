"""Latency prediction accuracy per resolution on this machine: a full table and a
``--blocks-from`` table at each resolution, judged against end-to-end timings taken
independently of the table builds.

For each ``--resolution``:

- full: every block of the default space plus 40 calibration networks are profiled here
  (the build time is recorded), then ``--samples`` random held-out networks plus B0-B3 are
  timed end to end in a separate run and predicted;
- blocks-from: the blocks of ``--blocks-from-networks`` random networks only (the way a
  user profiles just what their candidates need) are profiled, calibrated on those
  networks, and the same networks are timed again, independently, and predicted.

Prints and writes (``benchmarks/results/latency_per_resolution_<cpu>.json``) the share
within ±5% and ±10%, MAPE and Spearman for each, with the CPU model, onnxruntime version
and threads. Targets (issue 12): >= 95% within ±10% and >= 80% within ±5%.

    python benchmarks/latency_per_resolution.py --resolution 128x256 256x512 --samples 40
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

from latency_tables.build import measure_networks, plan_profile, profile_table  # noqa: E402
from latency_tables.table import LatencyTable  # noqa: E402
from latency_tables.timing import Timing  # noqa: E402
from latency_tables.validate import compare, held_out_networks  # noqa: E402
from search_space import SearchSpace  # noqa: E402
from search_space.records import cpu_model, write_atomic  # noqa: E402
from evit_nas.args import parse_threads  # noqa: E402


def rounded(summary) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(summary).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", nargs="+", default=["128x256", "256x512"], help="HxW, one or more")
    parser.add_argument("--samples", type=int, default=40, help="random held-out networks for the full table")
    parser.add_argument("--blocks-from-networks", type=int, default=12, help="networks of the --blocks-from table")
    parser.add_argument("--seed", type=int, default=1, help="held-out sampling seed (default: 1)")
    parser.add_argument("--threads", type=parse_threads, default=1)
    args = parser.parse_args()
    space = SearchSpace.default()
    report: dict = {"cpu": cpu_model(), "threads": args.threads, "samples": args.samples, "seed": args.seed,
                    "resolutions": {}}
    work = Path(tempfile.mkdtemp(prefix="latency-res-"))
    try:
        for text in args.resolution:
            resolution = tuple(int(v) for v in text.split("x"))
            entry: dict = {}
            started = time.monotonic()
            path = work / f"full_{text}.csv"
            profile_table(path, plan_profile(resolution, space), device="this-machine", threads=args.threads)
            full = LatencyTable.load(path)
            entry["full_build_seconds"] = round(time.monotonic() - started, 1)
            held_out = held_out_networks(space, full, args.samples, args.seed)
            meta, results, _ = measure_networks([s for _, s in held_out], resolution, work_dir=work / f"t{text}",
                                                device="this-machine", timing=Timing(threads=args.threads))
            report["onnxruntime"] = meta.get("onnxruntime")
            entry["full"] = rounded(compare(full, held_out, results))
            entry["full"]["calibration_cv_mape"] = full.calibration.cv_mape
            print(f"{text} full table ({entry['full_build_seconds']:.0f} s), {len(held_out)} held-out: "
                  f"±5% {entry['full']['within_5']:.0f}%  ±10% {entry['full']['within_10']:.0f}%  "
                  f"MAPE {entry['full']['mape']:.2f}%", flush=True)
            networks = [(f"net{i}", space.sample(50_000 + args.seed * 1000 + i))
                        for i in range(args.blocks_from_networks)]
            started = time.monotonic()
            path = work / f"blocks_{text}.csv"
            profile_table(path, plan_profile(resolution, space, blocks_from=[s for _, s in networks]),
                          device="this-machine", threads=args.threads)
            partial = LatencyTable.load(path)
            entry["blocks_from_build_seconds"] = round(time.monotonic() - started, 1)
            _, again, _ = measure_networks([s for _, s in networks], resolution, work_dir=work / f"b{text}",
                                           device="this-machine", timing=Timing(threads=args.threads))
            entry["blocks_from"] = rounded(compare(partial, networks, again))
            entry["blocks_from"]["calibration_networks"] = partial.calibration.networks
            print(f"{text} --blocks-from table of {len(networks)} networks ({entry['blocks_from_build_seconds']:.0f} s), "
                  f"timed again: ±5% {entry['blocks_from']['within_5']:.0f}%  ±10% {entry['blocks_from']['within_10']:.0f}%"
                  f"  MAPE {entry['blocks_from']['mape']:.2f}%", flush=True)
            report["resolutions"][text] = entry
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cpu = re.sub(r"[^A-Za-z0-9]+", "_", report["cpu"]).strip("_").lower()
    out = ROOT / "benchmarks" / "results" / f"latency_per_resolution_{cpu}.json"
    if out.is_file():  # keep the other resolutions measured on this CPU
        earlier = json.loads(out.read_text())
        report["resolutions"] = {**earlier.get("resolutions", {}), **report["resolutions"]}
    write_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"on {report['cpu']}, onnxruntime {report.get('onnxruntime')}, {args.threads} thread(s); wrote "
          f"{out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
