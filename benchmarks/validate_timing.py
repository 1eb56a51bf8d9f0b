"""Wall time of a brief validation, as a user runs it: a search on the shipped latency table,
then ``evit-nas validate --top-k 3`` on its front (plus the B0 reference), on this machine.

Target: 3 networks validated in at most 10 minutes on a 2-core CPU. Prints and saves
(``results/validate_timing.json`` and ``results/validate_timing.csv``) the wall time, the
time per network and the training throughput in images/s.

    python benchmarks/validate_timing.py                       # 128x256, 400 steps
    python benchmarks/validate_timing.py --resolution 256x512  # the latency table's size
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search_space.records import write_atomic  # noqa: E402  (after the path set-up, as the other benchmarks)

RESULTS = ROOT / "benchmarks" / "results"
TABLE = ROOT / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv"


def run(args: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "evit_nas", *args], check=False, cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"evit-nas {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", default="128x256", help="training resolution (default 128x256)")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400, as evit-nas validate)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--out", default=str(RESULTS / "validate_timing"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="evit-nas-timing-"))
    try:
        journal = work / "search.journal"
        run(["search", "--table", str(TABLE), "--budget-ms", str(args.budget_ms), "--trials", "300",
             "--storage", str(journal), "--study", "timing", "--json"])
        start = time.perf_counter()
        out = json.loads(run(["validate", "--storage", str(journal), "--study", "timing", "--top-k", str(args.top_k),
                              "--resolution", args.resolution, "--steps", str(args.steps), "--batch-size",
                              str(args.batch_size), "--no-progress", "--out", str(work / "validation"), "--json"]))
        wall = time.perf_counter() - start
        rows = out["rows"]
        front = [r for r in rows if r["trial"] is not None]
        summary = {
            "resolution": args.resolution, "steps": args.steps, "batch_size": args.batch_size, "top_k": args.top_k,
            "wall_s": round(wall, 1),
            "front_networks_s": round(sum(r["train_s"] + r["eval_s"] for r in front), 1),
            "reference_s": round(sum(r["train_s"] + r["eval_s"] for r in rows if r["trial"] is None), 1),
            "train_images_per_s": {r["network"]: r["train_images_per_s"] for r in rows},
            "miou": {r["network"]: round(r["miou"], 2) for r in rows},
            "latency_ms": {r["network"]: r["latency_ms"] for r in rows},
            "macs": {r["network"]: r["macs"] for r in rows},
            "device": rows[0]["device"],
        }
        target = Path(args.out)
        stem = target.with_name(f"{target.name}_{args.resolution}")
        write_atomic(stem.with_suffix(".json"), json.dumps(summary, indent=2) + "\n")
        write_atomic(stem.with_suffix(".csv"), (work / "validation" / "results.csv").read_bytes())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"validate --top-k {args.top_k} at {args.resolution}, {args.steps} steps of {args.batch_size}: "
          f"{summary['wall_s']:.0f} s wall ({summary['front_networks_s']:.0f} s for the {len(front)} front networks, "
          f"{summary['reference_s']:.0f} s for the B0 reference) on {summary['device']}")
    for name, speed in summary["train_images_per_s"].items():
        print(f"  {name:<22} {summary['miou'][name]:5.1f}% mIoU  {speed:6.1f} images/s  "
              f"{summary['macs'][name] / 1e6:7.1f} M MACs")
    print(f"target: 3 networks in <= 600 s -> {'met' if summary['front_networks_s'] <= 600 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
