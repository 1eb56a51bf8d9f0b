"""Would timing a few blocks here fix the adaptation? An offline study (issue 24 step 1).

``--adapt-from`` keeps the source device's block latencies and fits a calibration on a few
whole networks timed here. Its remaining error is per network: the two CPUs' block costs
differ in ways a dozen whole networks cannot correct. This study asks whether timing the
*blocks* of those networks here (about 40 s at 256x512) and learning each block's ratio
(this CPU over the source) from them would correct the rest of the table.

It needs a full table of this machine (``evit-nas profile --resolution 256x512 --threads 1``)
and the plain-loop timings of the 12 held-out networks recorded by
``adapt_stability.py`` (the median over every adaptation of every run: a steady truth).
Offline and quick; no timing happens here. For each method it predicts the held-out
networks and prints the mean bias, the share within ±10% and MAPE against that truth:

- ``full``: the full local table (the ceiling of any adaptation);
- ``adapted``: the source's rows with a calibration fitted on the adaptation's networks,
  as ``--adapt-from`` does (their latencies read from the full local table, which predicts
  whole networks within about 2% here, in place of timings);
- ``blocks``: the same, after the source's rows are corrected by the adaptation networks'
  blocks (their local latency) as ``--adapt-blocks`` does
  (``latency_tables.adapt.block_ratio_rows``: the other rows' ratios predicted by a ridge
  regression fitted on the measured ones).

Also printed: how the ratio varies by kind, and how well the regression predicts the
ratios of blocks it did not see.

    python benchmarks/block_ratio_study.py --local benchmarks/results/tables/vm_amd_epyc_256x512_t1_fp32.csv
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brief_runs import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SOURCE = ROOT / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv"
JUDGED = ("adapt_stability_w0.json", "adapt_stability_w60.json", "adapt_stability_w60_f6.json")


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict:
    errors = 100 * (predicted / truth - 1)
    return {"bias_pct": round(float(errors.mean()), 2), "within_10_pct": round(float(np.mean(np.abs(errors) <= 10) * 100), 1),
            "mape_pct": round(float(np.mean(np.abs(errors))), 2), "worst_pct": round(float(errors[np.argmax(np.abs(errors))]), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", type=Path, required=True, help="a full table of this machine (same resolution)")
    parser.add_argument("--source", type=Path, default=SOURCE, help="the table to adapt (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "block_ratio_study.json")
    args = parser.parse_args(argv)
    from latency_tables.adapt import adaptation_networks, block_ratio_rows
    from latency_tables.table import LatencyTable, fit_calibration
    from search_space import SearchSpace
    from search_space.blocks import network_blocks

    source, local = LatencyTable.load(args.source), LatencyTable.load(args.local)
    space = SearchSpace.default()
    common = [key for key in source.rows if key in local.rows]
    ratio = {key: local.rows[key]["median_ms"] / source.rows[key]["median_ms"] for key in common}
    by_kind = {}
    for key, value in ratio.items():
        by_kind.setdefault(key.kind, []).append(value)
    kinds = {kind: {"blocks": len(v), "median": round(statistics.median(v), 3),
                    "p10": round(float(np.percentile(v, 10)), 3), "p90": round(float(np.percentile(v, 90)), 3)}
             for kind, v in sorted(by_kind.items())}
    for kind, row in kinds.items():
        print(f"{kind:>12}: {row['blocks']:4d} blocks, ratio here/source median {row['median']:.2f} "
              f"(p10 {row['p10']:.2f}, p90 {row['p90']:.2f})")

    timed = adaptation_networks(source, space, 6, front_networks=6)  # what --adapt-from times, by default
    measured_keys = list(dict.fromkeys(key for spec in timed for _, key in network_blocks(spec, source.resolution)))
    here = {key: local.rows[key] for key in measured_keys if key in local.rows}
    hybrid = LatencyTable(dict(source.meta), block_ratio_rows(source, here), source.calibration, path="hybrid")
    unseen = [key for key in common if key not in here]
    truth_ratio = np.array([ratio[k] for k in unseen])
    ratio_error = 100 * (np.array([hybrid.rows[k]["median_ms"] / source.rows[k]["median_ms"] for k in unseen])
                         / truth_ratio - 1)
    one_ratio = statistics.median(ratio[k] for k in here)
    print(f"\nblocks of the {len(timed)} adaptation networks: {len(here)}; the other {len(unseen)} blocks' "
          f"ratio predicted with MAPE {np.mean(np.abs(ratio_error)):.1f}% (one ratio for all: "
          f"{np.mean(np.abs(100 * (one_ratio / truth_ratio - 1))):.1f}%)")

    timings = np.array([local.predict_ms(spec) for spec in timed])  # stand-ins for the adaptation's timings
    prior = source.calibration.coefficients
    adapted = LatencyTable(dict(source.meta), dict(source.rows),
                           fit_calibration(np.array([source.features(s) for s in timed]), timings, prior=prior), "adapted")
    hybrid.calibration = fit_calibration(np.array([hybrid.features(s) for s in timed]), timings, prior=prior)

    judged = [json.loads((RESULTS / name).read_text()) for name in JUDGED]
    held = {f"net{i:02d}": space.sample(9000 + i) for i in range(judged[0]["held_out"])}
    truth = np.array([statistics.median(run["measured_ms"][n] for report in judged for run in report["adaptations"])
                      for n in held])
    methods = {name: scores(np.array([table.predict_ms(s) for s in held.values()]), truth)
               for name, table in (("full", local), ("adapted", adapted), ("blocks", hybrid))}
    print(f"\n{len(held)} held-out networks, truth: the median of {sum(len(r['adaptations']) for r in judged)} "
          "plain-loop timings each")
    for name, row in methods.items():
        print(f"{name:>8}: bias {row['bias_pct']:+.1f}%, {row['within_10_pct']:.0f}% within ±10%, "
              f"MAPE {row['mape_pct']:.1f}%, worst {row['worst_pct']:+.1f}%")
    write_json(args.out, {
        "command": "python benchmarks/block_ratio_study.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "source": str(args.source.relative_to(ROOT)) if args.source.is_relative_to(ROOT) else str(args.source),
        "local": str(args.local.relative_to(ROOT)) if args.local.is_relative_to(ROOT) else str(args.local),
        "cpu": local.meta.get("cpu"), "onnxruntime": local.meta.get("onnxruntime"), "threads": local.meta.get("threads"),
        "ratio_by_kind": kinds, "adaptation_networks": len(timed), "measured_blocks": len(here),
        "unseen_blocks": len(unseen), "ratio_mape_pct": round(float(np.mean(np.abs(ratio_error))), 2),
        "one_ratio_mape_pct": round(float(np.mean(np.abs(100 * (one_ratio / truth_ratio - 1)))), 2),
        "held_out": len(held), "methods": methods})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
