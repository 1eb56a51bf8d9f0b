"""Does a ``--blocks-from`` table hold at a large input size? And if not, why?

Issue 24 step 4. ``latency_per_resolution.py`` once found a ``--blocks-from`` table at
512x1024 biased by +15.7% against its own networks timed again. This benchmark repeats that
check and records what could explain a bias:

1. profiles the blocks of ``--networks`` random networks (the same draw as
   ``latency_per_resolution.py --seed 1``) at ``--resolution``, keeping the agent's results;
2. lists the reference network's median in every chunk (the speed every row is rescaled
   to): block chunks against the networks' chunk, and the run's typical speed;
3. times the same networks again in a separate run (the table protocol), and compares each
   with the table's prediction and with its own timing inside the profile.

Printed: per network the timing inside the profile, the timing again, the prediction; the
bias and share within ±10% of the prediction against the timing again; how far the
reference moved between chunks. Run it on a quiet CPU; the record names the CPU,
onnxruntime and threads.

    python benchmarks/blocks_from_check.py --resolution 512x1024
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brief_runs import write_json  # noqa: E402

from evit_nas.args import parse_resolution, parse_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=parse_resolution, default=(512, 1024), metavar="HxW")
    parser.add_argument("--networks", type=int, default=12, help="random networks whose blocks are profiled")
    parser.add_argument("--seed", type=int, default=1, help="the draw of latency_per_resolution.py (default 1)")
    parser.add_argument("--threads", type=parse_threads, default=1)
    parser.add_argument("--out", help="results JSON (default: results/blocks_from_check_HxW.json)")
    args = parser.parse_args(argv)
    if args.networks < 2:
        parser.error("--networks must be >= 2")
    from latency_tables.build import measure_networks, plan_profile, profile_table, read_results
    from latency_tables.bundle import network_id
    from latency_tables.table import LatencyTable
    from latency_tables.timing import Timing
    from search_space import SearchSpace
    from search_space.records import cpu_model

    resolution = tuple(args.resolution)
    space = SearchSpace.default()
    networks = [space.sample(50_000 + args.seed * 1000 + i) for i in range(args.networks)]
    work = Path(tempfile.mkdtemp(prefix="evitnas-blocks-from-"))
    try:
        began = time.monotonic()
        table = profile_table(work / "blocks.csv", plan_profile(resolution, space, blocks_from=networks),
                              device="here", threads=args.threads, keep_work=True)
        build_s = time.monotonic() - began
        bundle = work / "blocks.csv.work"
        manifest = json.loads((bundle / "bundle" / "manifest.json").read_text())
        meta, rows = read_results(sorted(bundle.glob("results-*.csv"))[0], manifest)
        kinds = {entry["id"]: entry["type"] for entry in manifest["entries"]}
        chunks: dict[float, list[str]] = {}
        for entry_id, row in rows.items():
            chunks.setdefault(row["ref_ms"], []).append(kinds.get(entry_id, "?"))
        chunk_list = [{"ref_ms": round(ref, 3), "blocks": k.count("block"), "networks": k.count("network")}
                      for ref, k in chunks.items()]
        _, again, _ = measure_networks(networks, resolution, work_dir=work / "again", device="here",
                                       timing=Timing(threads=args.threads))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    typical = table.meta["reference"]["median_ms"]
    again_ref = statistics.median(row["ref_ms"] for row in again.values())
    per_network = []
    for i, spec in enumerate(networks):
        timed = next(n for n in table.meta["calibration_networks"] if n["spec"] == spec.to_dict())
        later = again[network_id(spec)]
        # the later run rescaled to the table's typical speed, as the table's rows are
        later_ms = later["median_ms"] * typical / later["ref_ms"]
        predicted = table.predict_ms(spec)
        per_network.append({"network": f"net{i:02d}", "in_profile_ms": round(timed["median_ms"], 3),
                            "in_profile_raw_ms": round(timed["raw_median_ms"], 3), "again_raw_ms": round(later["median_ms"], 3),
                            "again_ms": round(later_ms, 3), "predicted_ms": round(predicted, 3),
                            "error_pct": round(100 * (predicted / later_ms - 1), 2)})
    errors = [row["error_pct"] for row in per_network]
    block_refs = [c["ref_ms"] for c in chunk_list if c["networks"] == 0]
    network_refs = [c["ref_ms"] for c in chunk_list if c["networks"] > 0]
    report = {"command": "python benchmarks/blocks_from_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cpu": cpu_model(), "onnxruntime": meta.get("onnxruntime"), "threads": args.threads,
              "resolution": list(resolution), "networks": args.networks, "build_seconds": round(build_s, 1),
              "reference_ms": typical, "again_reference_ms": round(again_ref, 3),
              "block_chunk_ref_ms": {"min": min(block_refs), "median": statistics.median(block_refs), "max": max(block_refs)},
              "network_chunk_ref_ms": network_refs, "chunks": chunk_list,
              "bias_pct": round(statistics.mean(errors), 2),
              "within_10_pct": round(100 * sum(abs(e) <= 10 for e in errors) / len(errors), 1),
              "worst_pct": max(errors, key=abs), "per_network": per_network}
    for row in per_network:
        print(f"{row['network']}: in the profile {row['in_profile_ms']:.1f} ms, again {row['again_ms']:.1f} ms "
              f"(raw {row['again_raw_ms']:.1f}), predicted {row['predicted_ms']:.1f} ms ({row['error_pct']:+.1f}%)")
    print(f"\nreference B0: typical {typical:.1f} ms; block chunks {min(block_refs):.1f} to {max(block_refs):.1f} ms; "
          f"the networks' chunk {', '.join(f'{r:.1f}' for r in network_refs)} ms; timed again {again_ref:.1f} ms")
    print(f"{cpu_model()}, onnxruntime {meta.get('onnxruntime')}, {args.threads} thread(s), "
          f"{resolution[0]}x{resolution[1]}: bias {report['bias_pct']:+.1f}%, {report['within_10_pct']:.0f}% within ±10%, "
          f"worst {report['worst_pct']:+.1f}%")
    write_json(Path(args.out) if args.out else RESULTS / "blocks_from_check_{}x{}.json".format(*resolution), report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
