"""Does the accuracy-aware loop find better networks? Simulated on NAS-Bench-MR.

The loop of ``evit-nas search --rounds R --train-per-round K`` trains networks, refits its
predictor and searches again. Here "training" is a lookup of NAS-Bench-MR's mIoU (2,507
networks fully trained on Cityscapes), so many seeds are cheap. The space is the networks
whose zero-cost proxies are cached (``nbmr_proxies.py``); the budget is a FLOPs limit, by
default the FLOPs of the median network (the stand-in for a latency budget).

Methods, each with the same number of trainings (``--labels`` + R x K):

- ``macs``: the search with the default objective returns the feasible network with the most
  FLOPs (MACs); it trains nothing, so its regret does not depend on the seed;
- ``random``: that many feasible networks drawn at random, the best of them kept;
- ``predictor-once``: the predictor fitted on ``--labels`` random networks, then its R x K
  best-predicted feasible networks trained in one go (a predictor without the loop);
- ``loop``: the predictor fitted on ``--labels`` random networks, then R rounds: it picks K
  feasible networks (``nas.loop.pick_to_train``: mostly the best predicted, a third by upper
  confidence bound), "trains" them, and is refitted on everything trained so far.

Regret = the true best mIoU within the budget - the true mIoU of the best network each method
trained (``macs``: of the one it returns). Mean ± std over ``--seeds`` seeds.

    python benchmarks/nbmr_loop.py --data ../shared/data/nas_bench_mr/seg.csv --labels 50 --rounds 5 --seeds 20
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import write_json
from nbmr_objectives import CACHE, RESULTS, load_scored

from nas.loop import pick_to_train
from nas.predictor import fit_ensemble
from search_space.records import cpu_model

METHODS = ("macs", "random", "predictor-once", "loop")


def simulate(truth: np.ndarray, flops: np.ndarray, x: np.ndarray, budget: float, labels: int, rounds: int,
             per_round: int, seed: int) -> dict[str, float]:
    """The best true mIoU each method reaches within the budget, for one seed."""
    rng = np.random.default_rng(seed)
    feasible = np.flatnonzero(flops <= budget)
    trainings = labels + rounds * per_round
    best = {"macs": float(truth[feasible[np.argmax(flops[feasible])]])}
    best["random"] = float(truth[rng.choice(feasible, size=min(trainings, feasible.size), replace=False)].max())
    start = rng.choice(truth.size, size=labels, replace=False)

    def fitted_best_of(trained: np.ndarray, k: int, spread: bool) -> np.ndarray:
        """``k`` feasible untrained networks, picked by the predictor fitted on ``trained``."""
        candidates = np.setdiff1d(feasible, trained)
        mean, std = fit_ensemble(x[trained], truth[trained], seed=seed).predict(x[candidates])
        picks = pick_to_train(mean, std, k) if spread else list(np.argsort(-mean, kind="stable")[:k])
        return candidates[picks]

    once = fitted_best_of(start, rounds * per_round, spread=False)
    best["predictor-once"] = float(truth[np.intersect1d(np.concatenate([start, once]), feasible)].max())
    trained = start
    for _ in range(rounds):
        trained = np.concatenate([trained, fitted_best_of(trained, per_round, spread=True)])
    best["loop"] = float(truth[np.intersect1d(trained, feasible)].max())
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="NAS-Bench-MR CSV (seg.csv or another of the same columns)")
    parser.add_argument("--labels", type=int, default=50, help="random networks trained before the first round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=10, help="networks trained per round (K)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget-flops", type=float, help="GFLOPs budget (default: the median network's)")
    parser.add_argument("--cache", default=str(CACHE), help="proxy cache of nbmr_proxies.py")
    parser.add_argument("--json", default=str(RESULTS / "nbmr_loop.json"), help="results file to write")
    args = parser.parse_args(argv)
    if args.labels < 5 or args.rounds < 1 or args.per_round < 1 or args.seeds < 1:
        parser.error("--labels must be at least 5, and --rounds, --per-round and --seeds at least 1")
    began = time.perf_counter()
    nets = load_scored(Path(args.data), Path(args.cache), least=args.labels + args.rounds * args.per_round + 50)
    truth, flops, x = nets["truth"], nets["flops"], nets["learned"]["learned"]
    budget = args.budget_flops if args.budget_flops else float(np.median(flops))
    feasible = flops <= budget
    if not feasible.any():
        parser.error(f"no network within {budget:g} GFLOPs; raise --budget-flops")
    optimum = float(truth[feasible].max())
    print(f"budget {budget:.3f} GFLOPs: {int(feasible.sum())} feasible networks, best {optimum:.2f} mIoU; "
          f"{args.labels} + {args.rounds} x {args.per_round} trainings per method", flush=True)
    regrets: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed in range(args.seeds):
        found = simulate(truth, flops, x, budget, args.labels, args.rounds, args.per_round, seed)
        for method in METHODS:
            regrets[method].append(optimum - found[method])
        print(f"  seed {seed}: " + ", ".join(f"{m} {optimum - found[m]:.2f}" for m in METHODS), flush=True)
    summary = {m: {"mean": round(float(np.mean(v)), 3), "std": round(float(np.std(v)), 3),
                   "found_best_share": round(float(np.mean(np.array(v) == 0)), 3)} for m, v in regrets.items()}
    print("\nregret in mIoU points (true best within the budget - best found), mean ± std over "
          f"{args.seeds} seeds:")
    for method, s in summary.items():
        print(f"  {method:<15} {s['mean']:6.2f} ± {s['std']:.2f}   (found the best in {s['found_best_share']:.0%})")
    import lightgbm

    write_json(Path(args.json), {
        "command": "python benchmarks/nbmr_loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": args.data, "networks": int(truth.size), "networks_total": nets["total"], "budget_gflops": budget,
        "feasible": int(feasible.sum()), "best_feasible_miou": optimum, "labels": args.labels, "rounds": args.rounds,
        "per_round": args.per_round, "seeds": args.seeds, "regret": summary,
        "regret_per_seed": {m: [round(r, 3) for r in v] for m, v in regrets.items()},
        "seconds": round(time.perf_counter() - began, 1), "lightgbm": lightgbm.__version__, "cpu": cpu_model(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
