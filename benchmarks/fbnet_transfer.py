"""Adapting a per-block latency table to a new device from a few end-to-end timings, on real
ARM devices: the FBNet space (MBConv networks).

The data (../shared/data/README.md, ``fbnet_latency``): 5,000 networks of the FBNet space, 22
MBConv layers each (k3/k5 depthwise, expansion 1/3/6, optional group-2 pointwise, or skip),
timed on Intel Xeons, on a Raspberry Pi 4 and a Pixel 3 (sums of per-block lookup tables,
exactly additive), and end to end on three phones (Pixel 2, Samsung A50, Essential PH-1; whole
milliseconds).

The method, per source -> target pair:

1. The networks are split once (``--seed``): ``--judged`` of them (1,000) are held out and
   every figure is measured on them; the other 4,000 form the pool. No fit below sees a
   judged network.
2. The source device's per-block table (ms per position and op, skip = 0, plus a fixed ms
   for the stem and head): an additive per-position model fitted on the pool's source
   column. For the Raspberry Pi 4 and the Pixel 3 this recovers their lookup tables exactly
   (0.00% error on the judged networks); for a Xeon it is what profiling that device's
   blocks would give (about 2-3% error on the judged networks, printed).
3. ``n`` networks drawn at random from the pool are "measured on the target"; the project's
   own transfer, ``latency_tables.transfer.fit_transfer`` (the fit behind ``evit-nas
   profile --adapt-from``), is fitted to them with ``reject_outliers`` (the phones' timings
   hold a few disturbed runs: about 5-10% of the Samsung A50's networks run 15-55% slower
   than any additive model says), and predicts the judged networks. Features of a network,
   read from the source table: its source ms in each of the 7 stages (resolution and width
   change between stages, and a phone's speed-up over the source differs by stage), its
   source ms in k5 blocks (the depthwise kernel's cost ratio differs by CPU), its number of
   blocks of each expansion class (e1, e1_g2, e3, e6: per-layer overheads), and 1 (fixed
   ms). The prior is the source table as it is (1 on every stage column, the source's fixed
   ms on the constant), rescaled to the target's speed, so ``features . prior`` is the
   source latency. This set was chosen by measurement while writing this script, over
   simpler ones (the source ms and per-op counts of benchmarks/nb201_transfer.py; the stage
   ms alone): with 50 networks it was 0.8-1.5 MAPE points better than either on the Samsung
   A50, and as good or better (up to 1 point) on the Pixel 2 and the Essential PH-1.
   With 10 networks none of them helps on the noisy phones: leave-one-out on 10 noisy
   timings picks too free a fit, and the rescaled source (below) is as good or better.
4. Baseline: the source latency, rescaled by the median target / source ratio of the ``n``
   networks. Ceiling: the additive per-position model fitted (by the same code, same
   outlier rule) on the whole pool of 4,000 target networks. The README's ceiling (plain
   least squares, first 4,000 networks, last 1,000 judged) is printed beside it as a
   reproduction.

Printed per sample count (mean ± std over ``--draws`` random draws of the measured
networks): the share of judged networks within ±10% of their measured latency (%), the mean
absolute percentage error (MAPE, %), the Spearman rank correlation; the rescaled source's
share and MAPE; the distance of the transfer's MAPE from the ceiling's (points). The issue's
target: within 1.5 points of the ceiling with 50 networks.

Measured (benchmarks/results/fbnet_transfer.json and .log, 20 draws): the target is met on
all three phones from all three sources (Raspberry Pi 4, Pixel 3, Xeon Gold 6226), by
0.5-1.0 points on the Samsung A50 and the Pixel 2 and 1.25-1.4 points on the Essential
PH-1, whose timings are the noisiest (its ceiling is 9.8% MAPE, and its speed drifts by
about 15% along the order the networks were measured in). Between the Xeons it is met from
the Gold 6226; it is not met where the target is a CPU of another kind than the source
(ARM table -> Xeon, Xeon -> ARM table, Pi 4 <-> Pixel 3): those targets' ceilings are low
(0-2%), and even fitted on all 4,000 pool networks these 13 features reach only 2.0-3.7%
MAPE there; the two devices' per-block costs differ in a pattern that a per-stage, per-kernel
and per-expansion rescaling of the source does not capture.

    python benchmarks/fbnet_transfer.py --data ../shared/data/fbnet_latency/latency_ms.csv \\
        --source pixel3 --target samsung_a50 --samples 10 20 50 100
    python benchmarks/fbnet_transfer.py --data ../shared/data/fbnet_latency/latency_ms.csv \\
        --source raspi4 pixel3 gold_6226 --target all --samples 10 20 50 100 --draws 20 \\
        --json benchmarks/results/fbnet_transfer.json    # the results file: every pair
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency_tables.transfer import fit_transfer, relative_errors  # noqa: E402
from latency_tables.validate import spearman  # noqa: E402
from search_space.records import RecordError, read_csv, write_atomic  # noqa: E402

#: layers per stage of the FBNet space (HW-NAS-Bench, CIFAR-100 input): within a stage every
#: layer after the first has the same shape (the Raspberry Pi 4's table has identical rows there)
STAGES = (1, 4, 4, 4, 4, 4, 1)
LAYERS = sum(STAGES)
SKIP = "skip"
KERNELS = ("k3", "k5")
#: the issue's target: the transfer's MAPE within this many points of the ceiling ...
TARGET_POINTS = 1.5
#: ... with this many measured target networks
TARGET_SAMPLES = 50
NOT_DEVICES = ("arch_index", "arch")


class Networks:
    """The networks of the CSV as arrays: ``onehot`` (networks, layers, ops), ops without skip."""

    def __init__(self, archs: list[str]) -> None:
        layers = [arch.split() for arch in archs]
        bad = next((i for i, ops in enumerate(layers) if len(ops) != LAYERS), None)
        if bad is not None:
            raise ValueError(f"network {bad}: {len(layers[bad])} layers, the FBNet space has {LAYERS}")
        self.ops = sorted({op for ops in layers for op in ops} - {SKIP})
        unknown = [op for op in self.ops if op.split("_")[0] not in KERNELS]
        if unknown:
            raise ValueError(f"unknown ops {', '.join(unknown)}; expected k3_.../k5_... or {SKIP}")
        column = {op: j for j, op in enumerate(self.ops)}
        self.onehot = np.zeros((len(layers), LAYERS, len(self.ops)))
        for i, ops in enumerate(layers):
            for position, op in enumerate(ops):
                if op != SKIP:
                    self.onehot[i, position, column[op]] = 1
        #: expansion classes (e1, e1_g2, e3, e6): an op without its kernel
        self.classes = sorted({op.split("_", 1)[1] for op in self.ops})

    def design(self) -> np.ndarray:
        """The additive per-position model's columns: one per (position, op), skip = 0, then 1."""
        n = len(self.onehot)
        return np.c_[self.onehot.reshape(n, -1), np.ones(n)]

    def features(self, table_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(features, prior, names) of every network, read from a source table (the
        coefficients of :meth:`design`: ms per position and op, then the fixed ms)."""
        block_ms = self.onehot * table_ms[:-1].reshape(LAYERS, len(self.ops))[None]
        bounds = np.cumsum((0,) + STAGES)
        stage_ms = [block_ms[:, a:b].sum((1, 2)) for a, b in zip(bounds[:-1], bounds[1:])]
        k5 = [j for j, op in enumerate(self.ops) if op.startswith("k5")]
        counts = [self.onehot[:, :, [j for j, op in enumerate(self.ops) if op.split("_", 1)[1] == c]].sum((1, 2))
                  for c in self.classes]
        x = np.column_stack([*stage_ms, block_ms[:, :, k5].sum((1, 2)), *counts, np.ones(len(block_ms))])
        prior = np.r_[np.ones(len(STAGES)), 0.0, np.zeros(len(self.classes)), table_ms[-1]]
        names = ([f"source ms in stage {s + 1}" for s in range(len(STAGES))] + ["source ms in k5 blocks"]
                 + [f"{c} blocks" for c in self.classes] + ["1 (fixed ms)"])
        return x, prior, names


def additive_fit(design: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """The per-position additive model (ms per block, then fixed ms) of these networks, by the
    same fit as the transfer (relative least squares, outliers left out), with no prior."""
    return fit_transfer(design, latency_ms, np.zeros(design.shape[1]), rescale_prior=False, prior_weight=0.0,
                        reject_outliers=True).coefficients


def scores(predicted: np.ndarray, measured: np.ndarray) -> tuple[float, float, float]:
    """(share within ±10% (%), MAPE (%), Spearman)."""
    errors = np.abs(relative_errors(predicted, measured))
    return float(np.mean(errors <= 0.10) * 100), float(np.mean(errors) * 100), spearman(predicted, measured)


def evaluate(nets: Networks, source_ms: np.ndarray, target_ms: np.ndarray, pool: np.ndarray, judged: np.ndarray,
             samples: list[int], draws: int) -> dict:
    """The figures of one source -> target pair (see the module docstring)."""
    design = nets.design()
    source_table = additive_fit(design[pool], source_ms[pool])
    x, prior, names = nets.features(source_table)
    ceiling = scores(design[judged] @ additive_fit(design[pool], target_ms[pool]), target_ms[judged])
    first, last = np.arange(len(x) - len(judged)), np.arange(len(x) - len(judged), len(x))
    plain = np.linalg.lstsq(design[first], target_ms[first], rcond=None)[0]
    result = {"source_table_mape_pct": round(scores(design[judged] @ source_table, source_ms[judged])[1], 2),
              "features": names,
              "ceiling": {"within_10_pct": round(ceiling[0], 1), "mape_pct": round(ceiling[1], 2),
                          "spearman": round(ceiling[2], 3)},
              "readme_ceiling_mape_pct": round(scores(design[last] @ plain, target_ms[last])[1], 2),
              "samples": []}
    for n in samples:
        rows = []
        for draw in range(draws):
            measured = np.random.default_rng(draw).permutation(pool)[:n]
            fit = fit_transfer(x[measured], target_ms[measured], prior, reject_outliers=True)
            baseline = x[judged] @ (prior * fit.scale)
            rows.append([*scores(fit.predict(x[judged]), target_ms[judged]),
                         *scores(baseline, target_ms[judged]), len(fit.outliers)])
        mean, std = np.nanmean(rows, axis=0), np.nanstd(rows, axis=0)
        result["samples"].append({
            "samples": n, "within_10_pct": round(mean[0], 1), "within_10_pct_std": round(std[0], 1),
            "mape_pct": round(mean[1], 2), "mape_pct_std": round(std[1], 2),
            "spearman": round(mean[2], 3), "spearman_std": round(std[2], 3),
            "rescaled_source_within_10_pct": round(mean[3], 1), "rescaled_source_mape_pct": round(mean[4], 2),
            "rescaled_source_spearman": round(mean[5], 3), "outliers_left_out": round(mean[6], 1),
            "mape_above_ceiling_points": round(mean[1] - ceiling[1], 2)})
    at_target = [s for s in result["samples"] if s["samples"] == TARGET_SAMPLES]
    result["target_met"] = bool(at_target[0]["mape_above_ceiling_points"] <= TARGET_POINTS) if at_target else None
    return result


def table_lines(source: str, target: str, result: dict) -> list[str]:
    c = result["ceiling"]
    lines = [f"{source} -> {target}: source table error on the judged networks {result['source_table_mape_pct']:.2f}% MAPE; "
             f"ceiling (additive, {target} on the pool) ±10% {c['within_10_pct']:.1f}%, MAPE {c['mape_pct']:.2f}%, "
             f"Spearman {c['spearman']:.3f} (README's split, plain least squares: MAPE {result['readme_ceiling_mape_pct']:.2f}%)",
             f"{'samples':>8}{'within ±10% (%)':>18}{'MAPE (%)':>16}{'Spearman':>17}"
             f"{'rescaled source: ±10% (%)':>28}{'MAPE (%)':>10}{'above ceiling':>15}"]
    for s in result["samples"]:
        lines.append(f"{s['samples']:>8}{s['within_10_pct']:>11.1f} ±{s['within_10_pct_std']:>4.1f}"
                     f"{s['mape_pct']:>10.2f} ±{s['mape_pct_std']:>4.2f}{s['spearman']:>10.3f} ±{s['spearman_std']:.3f}"
                     f"{s['rescaled_source_within_10_pct']:>28.1f}{s['rescaled_source_mape_pct']:>10.2f}"
                     f"{s['mape_above_ceiling_points']:>+12.2f} pt")
    if result["target_met"] is not None:
        lines.append(f"target (MAPE within {TARGET_POINTS} points of the ceiling with {TARGET_SAMPLES} networks): "
                     + ("met" if result["target_met"] else "NOT met"))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="latency_ms.csv (shared/data/fbnet_latency)")
    parser.add_argument("--source", nargs="+", default=["pixel3"], help="source device column(s) (default: pixel3)")
    parser.add_argument("--target", nargs="+", default=["samsung_a50"],
                        help="target device column(s), or 'all' for every column but the source (default: samsung_a50)")
    parser.add_argument("--samples", type=int, nargs="+", default=[10, 20, 50, 100], help="networks measured on the target, per fit (default: 10 20 50 100)")
    parser.add_argument("--draws", type=int, default=20, help="random draws per sample count (default: 20)")
    parser.add_argument("--judged", type=int, default=1000, help="held-out networks every figure is measured on "
                        "(default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the judged / pool split (default: 0)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the figures here (and the printed table beside it, .log)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"{args.data}: no such file; pass the FBNet latency CSV with --data")
    try:
        _, rows = read_csv(args.data)
    except RecordError as exc:
        parser.error(str(exc))
    if not rows or "arch" not in rows[0]:
        parser.error(f"{args.data}: no 'arch' column; pass the FBNet latency CSV (shared/data/fbnet_latency)")
    devices = [c for c in rows[0] if c not in NOT_DEVICES]
    targets = devices if args.target == ["all"] else args.target
    for column in [*args.source, *targets]:
        if column not in devices:
            parser.error(f"no device column {column!r}; the file has {', '.join(devices)}")
    if min(args.samples) < 1 or args.draws < 1:
        parser.error("--samples and --draws must be at least 1")
    if not 0 < args.judged < len(rows) - max(args.samples):
        parser.error(f"--judged {args.judged} leaves no pool of {max(args.samples)} networks in {len(rows)}; "
                     f"lower --judged or --samples")
    try:
        nets = Networks([r["arch"] for r in rows])
        latency = {c: np.array([float(r[c]) for r in rows]) for c in {*args.source, *targets}}
    except ValueError as exc:
        parser.error(f"{args.data}: {exc}")
    bad = [c for c, v in latency.items() if not np.all(np.isfinite(v) & (v > 0))]
    if bad:
        parser.error(f"{args.data}: column(s) {', '.join(bad)} hold latencies that are not positive numbers")
    order = np.random.default_rng(args.seed).permutation(len(rows))
    judged, pool = np.sort(order[:args.judged]), np.sort(order[args.judged:])

    log: list[str] = []

    def say(line: str = "") -> None:
        log.append(line)
        print(line, flush=True)

    say(f"{len(rows)} networks: {args.judged} judged, {len(pool)} in the pool; {args.draws} random draws per count")
    results = []
    for source in args.source:
        for target in targets:
            if target == source:
                continue
            result = evaluate(nets, latency[source], latency[target], pool, judged, args.samples, args.draws)
            for line in table_lines(source, target, result):
                say(line)
            say()
            results.append({"source": source, "target": target, **result})
    checked = [r for r in results if r["target_met"] is not None]
    if checked:
        say(f"target met by {sum(r['target_met'] for r in checked)} of {len(checked)} pairs: "
            + ", ".join(f"{r['source']}->{r['target']} {r['samples'][args.samples.index(TARGET_SAMPLES)]['mape_above_ceiling_points']:+.2f} pt"
                        for r in checked))
    if args.json:
        command = "python benchmarks/fbnet_transfer.py " + " ".join(sys.argv[1:] if argv is None else argv)
        write_atomic(args.json, json.dumps({
            "command": command, "data": args.data.name, "networks": len(rows), "judged": args.judged,
            "split_seed": args.seed, "draws": args.draws,
            "cpu": "none (published FBNet latencies of HELP / HW-NAS-Bench)",
            "target": f"MAPE within {TARGET_POINTS} points of the ceiling with {TARGET_SAMPLES} networks",
            "results": _finite(results)}, indent=2) + "\n")
        write_atomic(args.json.with_suffix(".log"), "\n".join([f"$ {command}", *log]) + "\n")
        print(f"wrote {args.json} and {args.json.with_suffix('.log').name}")
    return 0


def _finite(value):
    """NaN (a Spearman of constant predictions) as null, so the JSON stays standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
