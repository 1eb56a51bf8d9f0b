"""The paper's ImageNet backbone claims, re-measured: EfficientViT-B3 (288x288) against
EfficientNet-B6 (528x528), "2.9x MACs reduction without performance loss" and "7.9x
measured speedup on Qualcomm Snapdragon 8Gen1 CPU".

For each classifier pair: fvcore MACs at the official sizes (``search_space.cost.count_macs``),
parameters, the published top-1 and MACs (``search_space/peers/published.csv``), and the
end-to-end latency of each network on this CPU with onnxruntime (batch 1, the table
protocol of ``evit-nas latency measure``: warm-up, then interleaved timed visits with the
speed reference; median). The two networks run at different sizes, so they are timed in
alternating rounds (``--rounds``), and the ratio is given per round and as the median.

    python benchmarks/backbone_claims.py                    # about 5 minutes on one core
    python benchmarks/backbone_claims.py --rounds 5 --repeats 20

Writes ``results/backbone_claims.json`` with the CPU model, onnxruntime version and threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency_tables.measure import measure  # noqa: E402
from latency_tables.timing import Timing  # noqa: E402
from reports.backbones import BACKBONE_CLAIM  # noqa: E402
from search_space.cost import count_macs, count_params  # noqa: E402
from search_space.peers import published  # noqa: E402
from search_space.records import write_atomic  # noqa: E402
from search_space.registry import default_resolution, model_spec  # noqa: E402
from evit_nas.args import parse_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def published_row(name: str, size: tuple[int, int]) -> dict:
    rows = [r for r in published(name) if r["resolution_hw"] == f"{size[0]}x{size[1]}"]
    return rows[0] if rows else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default: 3)")
    parser.add_argument("--repeats", type=int, default=20, help="timed visits per network and round (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed visits per network and round (default: 3)")
    parser.add_argument("--threads", type=parse_threads, default=1, help="onnxruntime threads (default: 1)")
    parser.add_argument("--out", default=str(RESULTS / "backbone_claims.json"))
    args = parser.parse_args()

    results = []
    meta: dict = {}
    for ours, base, macs_claim, speed_claim, where in [BACKBONE_CLAIM]:
        our_size, base_size = default_resolution(ours), default_resolution(base)
        entry = {"ours": ours, "ours_resolution": list(our_size), "baseline": base, "baseline_resolution": list(base_size),
                 "published_macs_ratio": macs_claim, "published_speedup": speed_claim, "published_speedup_on": where}
        for role, name, size in (("ours", ours, our_size), ("baseline", base, base_size)):
            spec = model_spec(name)
            row = published_row(name, size)
            entry[f"{role}_macs"] = count_macs(spec, size)
            entry[f"{role}_params"] = count_params(spec)
            entry[f"{role}_published_top1"] = row.get("top1")
            entry[f"{role}_published_macs_g"] = row.get("macs_g")
        ours_ms, base_ms = [], []
        with tempfile.TemporaryDirectory() as work:
            for r in range(args.rounds):
                for name, size, into in ((ours, our_size, ours_ms), (base, base_size, base_ms)):
                    rows, meta = measure([(name, model_spec(name))], size, work_dir=Path(work) / f"{name}-{r}",
                                         device="here", timing=Timing(args.warmup, args.repeats, args.threads))
                    into.append(rows[0]["raw_measured_ms"])
                    print(f"round {r + 1}: {name} at {size[0]}x{size[1]}: {into[-1]:.1f} ms", flush=True)
        ratios = [b / o for o, b in zip(ours_ms, base_ms)]
        entry.update({
            "ours_ms": ours_ms, "baseline_ms": base_ms, "speedup_per_round": ratios,
            "measured_speedup": statistics.median(ratios),
            "measured_macs_ratio": entry["baseline_macs"] / entry["ours_macs"],
        })
        results.append(entry)
        print(f"{ours} vs {base}: MACs ratio {entry['measured_macs_ratio']:.2f}x (published {macs_claim}x), "
              f"latency ratio {entry['measured_speedup']:.2f}x on this CPU (published {speed_claim}x on {where}; "
              f"rounds {', '.join(f'{x:.2f}' for x in ratios)})")
    out = {"cpu": meta.get("cpu"), "arch": meta.get("arch"), "onnxruntime": meta.get("onnxruntime"),
           "threads": args.threads, "date": meta.get("date"), "rounds": args.rounds, "repeats": args.repeats,
           "warmup": args.warmup, "latency": "median end-to-end ms, batch 1, raw (not rescaled)",
           "macs": "fvcore multiply-accumulates, batch 1", "command": "python " + " ".join(["benchmarks/backbone_claims.py", *sys.argv[1:]]),
           "pairs": results}
    write_atomic(Path(args.out), json.dumps(out, indent=1))
    print(f"wrote {args.out} ({out['cpu']}, onnxruntime {out['onnxruntime']}, {args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
