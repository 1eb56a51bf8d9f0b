"""The EfficientViT poster's feature table, measured on this machine at the report's
default sizes (256x512, 512x1024, 1024x2048): the same code as ``evit-nas report``'s
feature table (``reports.features.feature_rows``), without a study.

    python benchmarks/feature_table.py                  # about 5 minutes on one core
    python benchmarks/feature_table.py --resolutions 128x256 256x512 512x1024
    python benchmarks/feature_table.py --trained evit-nas-demo/validation   # + ERF of briefly trained networks

``--trained DIR``: a folder ``evit-nas validate`` wrote (``results.csv`` + ``checkpoints/``):
its briefly trained networks of the table's families get their effective receptive field
too, at the smallest size (the report does the same from the study's records).

Writes ``results/feature_table.{csv,json}`` (and keeps the timings in
``results/feature_table_measured.csv``, reused by a rerun on the same machine), with the
CPU model, onnxruntime version and threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.validate import trained_in  # noqa: E402
from latency_tables.timing import Timing  # noqa: E402
from reports.features import FEATURE_RESOLUTIONS, FEATURE_TIMING, feature_networks, feature_rows  # noqa: E402
from reports.measured import measured_at_sizes  # noqa: E402
from search_space.records import read_csv, write_atomic, write_csv  # noqa: E402
from search_space.registry import list_models  # noqa: E402
from evit_nas.args import parse_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", nargs="+", type=size, default=list(FEATURE_RESOLUTIONS))
    parser.add_argument("--threads", type=parse_threads, default=1)
    parser.add_argument("--trained", type=Path, metavar="DIR", help="a validate output folder (results.csv, checkpoints/)")
    args = parser.parse_args()
    pairs, sizes = feature_networks(args.resolutions, list_models())
    cache = RESULTS / "feature_table_measured.csv"
    timed = measured_at_sizes(cache, sizes, platform.node() or "here", Timing(*FEATURE_TIMING, threads=args.threads))
    rows = feature_rows(timed, pairs, args.resolutions, trained_in(args.trained, [n for _, n in pairs]) if args.trained else None)
    meta, _ = read_csv(cache)
    info = {"trained_from": str(args.trained) if args.trained else None, "cpu": meta.get("cpu"), "onnxruntime": meta.get("onnxruntime"), "threads": args.threads,
            "date": meta.get("date"), "command": "python " + " ".join(["benchmarks/feature_table.py", *sys.argv[1:]])}
    write_csv(RESULTS / "feature_table.csv", tuple(rows[0]), rows, info)
    write_atomic(RESULTS / "feature_table.json", json.dumps({**info, "rows": rows}, indent=1))
    for r in rows:
        print(f"{r['family']:<13} MACs^{r['macs_exponent']:.2f} latency^{r['latency_exponent']:.2f} "
              f"ERF>1% {r['erf_share_above_0.01']:.3f} ERF>0.01% {r['erf_share_above_0.0001']:.3f} "
              f"{r['ms_per_gmac']:.2f} ms/GMAC at {r['ms_per_gmac_at']}")
    print(f"on {info['cpu']}, onnxruntime {info['onnxruntime']}, {args.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
