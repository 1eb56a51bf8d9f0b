"""Search throughput: evit-nas search against bare Optuna, same sampler and storage; prints trials/s.

Bare Optuna runs NSGA-II on a journal file with the same categorical parameters as the
search space and a trivial objective; evit-nas runs the real search (predicted latency,
MACs, parameters, capacity proxy, budget constraint, trial attributes) on its own fresh
journal file. Goal (issue 4): the search costs at most 10% more than bare Optuna.
The per-block MAC cache is warmed first (it persists on disk after any first run); the
warm-up time is printed. Then a shorter run with the training-free proxy (naswot).

    python benchmarks/search_throughput.py [--trials 5000] [--naswot-trials 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency_tables import LatencyTable
from search_space.cost import block_macs, block_params
from nas.search import open_storage, run_search
from search_space import SearchSpace
from search_space.records import write_atomic

TABLE = ROOT / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv"


def bare_optuna(space: SearchSpace, trials: int, journal: str, seed: int) -> float:
    decisions = space.decisions()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        for name, choices in decisions:
            trial.suggest_categorical(name, list(choices))
        return 0.0, 0.0

    study = optuna.create_study(directions=["maximize", "minimize"], storage=open_storage(journal),
                                sampler=optuna.samplers.NSGAIISampler(seed=seed))
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return trials / (time.perf_counter() - started)


def ours(table: LatencyTable, space: SearchSpace, trials: int, journal: str, proxy: str, seed: int, budget: float) -> float:
    started = time.perf_counter()
    run_search(table, space, budget_ms=budget, trials=trials, proxy=proxy, storage=journal, study_name="bench", seed=seed)
    return trials / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--naswot-trials", type=int, default=200)
    parser.add_argument("--budget-ms", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_throughput.json")
    args = parser.parse_args()
    table = LatencyTable.load(TABLE)
    space = SearchSpace.default()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    started = time.perf_counter()
    for key in space.unique_blocks(table.resolution):
        block_macs(key), block_params(key.at(0, 0))
    warmup = time.perf_counter() - started
    print(f"MAC/param cache warm-up: {warmup:.1f} s (once per machine; kept on disk)", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_optuna(space, args.trials, f"{tmp}/bare.journal", args.seed)
        print(f"bare Optuna (NSGA-II, journal file, {len(space.decisions())} categorical params, trivial objective): "
              f"{bare:.1f} trials/s over {args.trials} trials", flush=True)
        search = ours(table, space, args.trials, f"{tmp}/ours.journal", "params", args.seed, args.budget_ms)
        print(f"evit-nas search (NSGA-II, journal file, proxy=params, budget {args.budget_ms:g} ms): "
              f"{search:.1f} trials/s over {args.trials} trials", flush=True)
        naswot = ours(table, space, args.naswot_trials, f"{tmp}/naswot.journal", "naswot", args.seed, args.budget_ms)
        print(f"evit-nas search with the training-free proxy (naswot): {naswot:.2f} trials/s over {args.naswot_trials} trials")
    overhead = (bare / search - 1) * 100
    print(f"overhead of the search over bare Optuna: {overhead:+.1f}% (goal: at most +10%): "
          f"{'met' if overhead <= 10 else 'MISSED'}")
    write_atomic(args.out, json.dumps({
        "trials": args.trials, "bare_optuna_trials_per_s": bare, "search_trials_per_s": search,
        "overhead_pct": overhead, "naswot_trials": args.naswot_trials, "naswot_trials_per_s": naswot,
        "cache_warmup_s": warmup, "budget_ms": args.budget_ms, "table": TABLE.name,
        "optuna": optuna.__version__,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
