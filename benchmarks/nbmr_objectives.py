"""How well does each accuracy objective rank 2,507 fully trained segmentation networks?

NAS-Bench-MR (Ding et al., ICLR 2022) trained 2,507 multi-resolution segmentation networks on
Cityscapes. This benchmark scores every objective against their mIoU, on the networks whose
zero-cost proxies are cached (``benchmarks/nbmr_proxies.py``; it prints how many):

- ``flops`` and ``params``: the table's own counts (thop), zero-shot;
- every zero-cost proxy of ``nas.zero_cost`` (naswot, synflow, snip, grad_norm, fisher, jacov,
  zen, zico), zero-shot;
- ``learned``: the product's predictor design (``nas.predictor.fit_ensemble``: an ensemble of
  gradient-boosted trees) on an architecture encoding + every proxy + log FLOPs and log params,
  fitted on N labelled networks (a ridge base on log FLOPs and log params, trees on the rest);
- ``learned-arch``: the same without the proxies, to show what they add.

For each N of ``--samples`` and each of ``--draws`` random draws, N networks are labelled
(drawn at random) and every objective is scored on all the others: Kendall tau and Spearman
rho, reported as mean ± std over the draws. The zero-shot objectives are scored on the same
held-out networks, so the rows compare. The learned objective also reports how its
uncertainty (the ensemble's spread) tracks its error: the Spearman rho between the predicted
std and the absolute error on the held-out networks.

It reads only the architecture columns, ``miou``, ``flops_g`` and ``params_m`` of ``--data``,
so it runs unchanged on another CSV of the same networks (another training setting): the
proxy cache is keyed by architecture, not by row.

    python benchmarks/nbmr_objectives.py --data ../shared/data/nas_bench_mr/seg.csv \\
        --samples 20 50 100 400 --draws 20
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import write_json
from nbmr_space import NbmrArch, read_rows

from nas.predictor import fit_ensemble
from nas.zero_cost import ZERO_COST_PROXIES
from search_space.records import cpu_model

RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "nbmr_proxies.csv"
BRANCHES = 4  # NAS-Bench-MR's networks have one to four parallel resolution branches


def arch_features(arch: NbmrArch) -> list[float]:
    """A fixed-length encoding of one architecture: the stem widths, the last width, the
    number of stage modules, and per resolution branch (stride 4 to 32) how many modules
    reach it, its total blocks, its mean and largest width (log2), and its blocks x width^2
    scaled by the branch's pixel count (a per-branch compute share)."""
    modules, blocks, widths = np.zeros(BRANCHES), np.zeros(BRANCHES), [[] for _ in range(BRANCHES)]
    for branches, depth, channels in arch.stages:
        for b in range(branches):
            modules[b] += 1
            blocks[b] += depth[b]
            widths[b].append(channels[b])
    mean_w = [math.log2(np.mean(w)) if w else 0.0 for w in widths]
    max_w = [math.log2(max(w)) if w else 0.0 for w in widths]
    compute = [math.log1p(sum(d * c * c for n, dd, cc in arch.stages for i, (d, c) in enumerate(zip(dd, cc)) if i == b)
                          / 4 ** b) for b in range(BRANCHES)]
    return ([math.log2(arch.input_channel[0]), math.log2(arch.input_channel[1]), math.log2(arch.last_channel),
             float(len(arch.stages))] + modules.tolist() + blocks.tolist() + mean_w + max_w + compute)


def read_cache(path: Path) -> tuple[dict[str, dict[str, float]], list[str]]:
    """The proxy cache: architecture key -> {proxy: value}, and the proxies it holds."""
    if not path.is_file():
        raise SystemExit(f"{path}: no proxy cache; compute it with `python benchmarks/nbmr_proxies.py --data CSV`")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    proxies = [p for p in ZERO_COST_PROXIES if rows and p in rows[0]]
    return {r["key"]: {p: float(r[p]) for p in proxies} for r in rows}, proxies


def kendall_spearman(score: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    return float(kendalltau(score, truth)[0]), float(spearmanr(score, truth)[0])


def load_scored(data: Path, cache: Path, least: int = 0) -> dict:
    """The networks of ``data`` whose proxies are cached: their mIoU, FLOPs, params, proxies
    and the learned objectives' feature rows (``learned``: arch + log FLOPs/params + proxies;
    ``learned-arch``: without the proxies). Exits when fewer than ``least`` are cached."""
    rows = read_rows(data)
    missing = [c for c in ("miou", "flops_g", "params_m") if c not in rows[0]]
    if missing:
        raise SystemExit(f"{data}: missing column(s) {missing}; the benchmark needs miou, flops_g, params_m and the "
                         "architecture columns of NAS-Bench-MR's seg.csv")
    proxies_by_key, proxies = read_cache(cache)
    archs = [NbmrArch.from_row(r) for r in rows]
    keep = [i for i, a in enumerate(archs) if a.key() in proxies_by_key]
    print(f"{len(keep)} of {len(rows)} networks of {data} have cached proxies ({cache.name}); scoring those", flush=True)
    if len(keep) < least:
        raise SystemExit(f"{len(keep)} networks with cached proxies, {least} needed; let nbmr_proxies.py run longer "
                         "or ask for fewer labelled networks")
    flops = np.array([float(rows[i]["flops_g"]) for i in keep])
    params = np.array([float(rows[i]["params_m"]) for i in keep])
    proxy = {p: np.array([proxies_by_key[archs[i].key()][p] for i in keep]) for p in proxies}
    base = np.column_stack([np.log(flops), np.log(params), np.array([arch_features(archs[i]) for i in keep])])
    return {"total": len(rows), "truth": np.array([float(rows[i]["miou"]) for i in keep]), "flops": flops,
            "params": params, "proxies": proxies, "proxy": proxy,
            "learned": {"learned": np.column_stack([base] + [_finite(proxy[p]) for p in proxies]),
                        "learned-arch": base}}


def evaluate(data: Path, cache: Path, samples: list[int], draws: int, seed: int) -> dict:
    nets = load_scored(data, cache, least=max(samples) + 50)
    truth, proxies, learned = nets["truth"], nets["proxies"], nets["learned"]
    zero_shot = {"flops": nets["flops"], "params": nets["params"], **nets["proxy"]}

    scores: dict[str, dict[int, list[tuple[float, float]]]] = {k: {n: [] for n in samples}
                                                               for k in [*zero_shot, *learned]}
    uncertainty: dict[int, list[float]] = {n: [] for n in samples}
    began = time.perf_counter()
    for n in samples:
        for draw in range(draws):
            order = np.random.default_rng(seed + draw).permutation(len(truth))
            fit, test = order[:n], order[n:]
            for name, values in zero_shot.items():
                scores[name][n].append(kendall_spearman(values[test], truth[test]))
            for name, x in learned.items():
                mean, std = fit_ensemble(x[fit], truth[fit], seed=draw).predict(x[test])
                scores[name][n].append(kendall_spearman(mean, truth[test]))
                if name == "learned":
                    uncertainty[n].append(kendall_spearman(std, np.abs(mean - truth[test]))[1])
        print(f"  {n} labelled networks: {draws} draws done ({time.perf_counter() - began:.0f} s)", flush=True)
    table = {name: {str(n): _summary(values) for n, values in by_n.items()} for name, by_n in scores.items()}
    return {"data": str(data), "networks_total": nets["total"], "networks_scored": len(truth), "proxies": proxies,
            "samples": samples, "draws": draws, "seed": seed, "objectives": table,
            "learned_uncertainty_rho": {str(n): _mean_std(v) for n, v in uncertainty.items()},
            "features": {"learned-arch": int(learned["learned-arch"].shape[1]), "learned": int(learned["learned"].shape[1])}}


def _finite(values: np.ndarray) -> np.ndarray:
    """A proxy with non-finite values (a network whose score overflowed) as a finite feature."""
    finite = np.isfinite(values)
    out = values.astype(float).copy()
    out[~finite] = np.nanmin(values[finite]) if finite.any() else 0.0
    return out


def _mean_std(values: list[float]) -> dict[str, float]:
    clean = [v for v in values if not math.isnan(v)]
    return {"mean": round(float(np.mean(clean)), 4) if clean else float("nan"),
            "std": round(float(np.std(clean)), 4) if clean else float("nan")}


def _summary(values: list[tuple[float, float]]) -> dict[str, dict[str, float]]:
    return {"kendall": _mean_std([k for k, _ in values]), "spearman": _mean_std([s for _, s in values])}


def print_table(result: dict) -> None:
    samples = result["samples"]
    print(f"\nKendall tau / Spearman rho against mIoU on the held-out networks, mean ± std over {result['draws']} "
          f"draws ({result['networks_scored']} networks with cached proxies)")
    print(f"{'objective':<14}" + "".join(f"{f'N={n} tau':>16}{'rho':>15}" for n in samples))
    for name, by_n in result["objectives"].items():
        cells = "".join(f"{by_n[str(n)]['kendall']['mean']:>9.3f} ± {by_n[str(n)]['kendall']['std']:.3f}"
                        f"{by_n[str(n)]['spearman']['mean']:>8.3f} ± {by_n[str(n)]['spearman']['std']:.3f}"
                        for n in samples)
        print(f"{name:<14}{cells}")
    print("learned: Spearman rho of its uncertainty (ensemble std) with its absolute error: "
          + ", ".join(f"N={n} {v['mean']:+.3f}" for n, v in result["learned_uncertainty_rho"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="NAS-Bench-MR CSV (seg.csv or another of the same columns)")
    parser.add_argument("--samples", type=int, nargs="+", default=[20, 50, 100, 400],
                        help="numbers of labelled networks the learned objective is fitted on")
    parser.add_argument("--draws", type=int, default=20, help="random draws of the labelled networks per number")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=str(CACHE), help="proxy cache of nbmr_proxies.py")
    parser.add_argument("--json", default=str(RESULTS / "nbmr_objectives.json"), help="results file to write")
    args = parser.parse_args(argv)
    if min(args.samples) < 5 or args.draws < 1:
        parser.error("--samples must be at least 5 and --draws at least 1")
    began = time.perf_counter()
    result = evaluate(Path(args.data), Path(args.cache), sorted(args.samples), args.draws, args.seed)
    print_table(result)
    import lightgbm

    result.update({"command": "python benchmarks/nbmr_objectives.py " + " ".join(argv or sys.argv[1:]),
                   "seconds": round(time.perf_counter() - began, 1), "lightgbm": lightgbm.__version__,
                   "cpu": cpu_model(),
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    write_json(Path(args.json), result)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
