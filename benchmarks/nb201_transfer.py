"""Latency transfer between real devices from a few measured networks: NAS-Bench-201.

The measured end-to-end latencies of all 15,625 NAS-Bench-201 networks on several devices
(HELP / HW-NAS-Bench, see ../shared/data/README.md) test the transfer that ``evit-nas
profile --adapt-from`` uses, ``latency_tables.transfer.fit_transfer``, on real hardware
pairs: for each sample count, that many networks are drawn at random as "measured on the
target device", the transfer is fitted to them, and the rest are predicted. Printed per
sample count (mean and spread over ``--draws`` random draws): the share of the remaining
networks within ±10% of their measured latency, the Spearman rank correlation, and the
same for the plain rescaled source latency. The anchor: HELP reports Spearman 0.890 on the
Raspberry Pi 4 with 10 samples.

Features of a network (a cell of 6 edges, each none / skip / 1x1 conv / 3x3 conv / 3x3
average pool): the source latency on cells with a path from input to output, the number of
each operation on such paths, and whether the cell has one at all (a cell without one
computes nothing; some devices' measurements drop it).

    python benchmarks/nb201_transfer.py --data ../shared/data/nb201_latency/latency_ms.csv \\
        --source gold_6226 --target raspi4 --samples 10 20 50 100
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency_tables.transfer import fit_transfer, relative_errors  # noqa: E402
from latency_tables.validate import spearman  # noqa: E402
from search_space.records import read_csv, write_atomic  # noqa: E402

OPS = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect")
HELP_SPEARMAN_10 = 0.890  # HELP (NeurIPS 2021), Raspberry Pi 4, NAS-Bench-201, 10 samples


def live_operations(arch: str) -> list[str]:
    """The operations of a cell that lie on a path from its input (node 0) to its output
    (node 3); ``|op~from|`` edges, nodes separated by ``+``."""
    edges = []
    for to, part in enumerate(arch.strip("|").split("+"), 1):
        for edge in filter(None, part.strip("|").split("|")):
            op, source = edge.split("~")
            if op != "none":
                edges.append((int(source), to, op))
    reached = {0}
    for node in (1, 2, 3):
        if any(s in reached and t == node for s, t, _ in edges):
            reached.add(node)
    reaching = {3}
    for node in (2, 1, 0):
        if any(s == node and t in reaching for s, t, _ in edges):
            reaching.add(node)
    return [op for s, t, op in edges if s in reached and t in reaching]


def features(arch: str, source_ms: float) -> list[float]:
    live = live_operations(arch)
    alive = 1.0 if live else 0.0
    return [source_ms * alive, *(float(live.count(op)) for op in OPS), alive, 1.0 - alive]


#: the prior: the source latency (rescaled by fit_transfer), nothing else
PRIOR = np.array([1.0, 0, 0, 0, 0, 0, 0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="latency_ms.csv (shared/data/nb201_latency)")
    parser.add_argument("--source", default="gold_6226", help="source device column (default: gold_6226)")
    parser.add_argument("--target", default="raspi4", help="target device column (default: raspi4)")
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 20, 50, 100], help="measured target networks")
    parser.add_argument("--draws", type=int, default=20, help="random draws per sample count (default: 20)")
    parser.add_argument("--trusted-prior", action="store_true", help="fit as --adapt-from does below 10 networks "
                        "(fit_transfer(trusted_prior=True)): the source's shape is kept unless the data halve the error")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "nb201_transfer.json")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"{args.data}: no such file; pass the NAS-Bench-201 latency CSV with --data")
    _, rows = read_csv(args.data)
    for column in (args.source, args.target):
        if column not in rows[0]:
            parser.error(f"no device column {column!r}; the file has {', '.join(list(rows[0])[2:])}")
    x = np.array([features(r["arch"], float(r[args.source])) for r in rows])
    target = np.array([float(r[args.target]) for r in rows])
    print(f"{len(rows)} networks; source {args.source}, target {args.target}; {args.draws} random draws per count")
    print(f"{'samples':>8}{'within ±10%':>16}{'Spearman':>16}{'rescaled source: ±10%':>25}{'Spearman':>10}")
    results = []
    for n in args.samples:
        draws = []
        for draw in range(args.draws):
            order = np.random.default_rng(draw).permutation(len(rows))
            measured, rest = order[:n], order[n:]
            fit = fit_transfer(x[measured], target[measured], PRIOR, trusted_prior=args.trusted_prior)
            predicted = fit.predict(x[rest])
            baseline = x[rest] @ (PRIOR * fit.scale)
            draws.append([np.mean(np.abs(relative_errors(predicted, target[rest])) <= 0.10) * 100,
                          spearman(predicted, target[rest]),
                          np.mean(np.abs(relative_errors(baseline, target[rest])) <= 0.10) * 100,
                          spearman(baseline, target[rest])])
        d = np.array(draws)
        mean, std = d.mean(0), d.std(0)
        results.append({"samples": n, "within_10_pct": round(mean[0], 1), "within_10_pct_std": round(std[0], 1),
                        "spearman": round(mean[1], 3), "spearman_std": round(std[1], 3),
                        "rescaled_source_within_10_pct": round(mean[2], 1), "rescaled_source_spearman": round(mean[3], 3)})
        print(f"{n:>8}{mean[0]:>10.1f}% ±{std[0]:>4.1f}{mean[1]:>10.3f} ±{std[1]:.3f}{mean[2]:>24.1f}%{mean[3]:>10.3f}",
              flush=True)
    print(f"HELP (published): Spearman {HELP_SPEARMAN_10} with 10 samples on the Raspberry Pi 4")
    write_atomic(args.out, json.dumps({"data": str(args.data.name), "source": args.source, "target": args.target, "trusted_prior": args.trusted_prior,
                                       "draws": args.draws, "features": ["source_ms if the cell computes",
                                                                         *[f"live {op}" for op in OPS], "alive", "dead"],
                                       "help_spearman_10_samples": HELP_SPEARMAN_10, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
