"""Widen the CamVid ground truth from 18 to 40 networks, so that objectives can be told apart.

Ten networks rank objectives too loosely (on random sets of 10 NAS-Bench-MR networks, FLOPs'
Kendall tau spans 0.02-0.69 between the 10th and 90th percentiles). This script chooses 22
more networks for the test-retest study's recipe (``camvid_ranking.py``) and writes them to
``camvid_wide_networks.json``, once (rerunning it keeps the file unless ``--force``):

- 16 random networks of the default space, sample seeds 3000..5999 (disjoint from the first
  set's 0..2999), spread log-evenly in predicted latency between the fastest sample and B1,
  named ``wide00..wide15``;
- 6 networks from searched fronts: the best feasible network of a search with the ``macs``
  and with the ``params`` objective at three budgets (25, 35 and 45 ms on the shipped
  table), named ``front_<objective>_<budget>``. A front network equal to one already chosen
  is skipped.

Train them, with the first set's networks not yet done at 1,000 steps, by the queue
(resumable; rows land in ``camvid_runs.csv``):

    PYTHONPATH=. python benchmarks/camvid_wide.py
    nohup python benchmarks/camvid_ranking.py --data ../shared/data/camvid --steps 1000 --seeds 0 1 \\
        --extra benchmarks/results/camvid_wide_networks.json --jobs 2 >> benchmarks/results/camvid_runs.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import write_json
from camvid_ranking import BINS, RESULTS, SAMPLES, TABLE, TABLE_RESOLUTION, network_entry, spread_networks

OUT = RESULTS / "camvid_wide_networks.json"
FRONT_OBJECTIVES = ("macs", "params")
FRONT_BUDGETS_MS = (25.0, 35.0, 45.0)
FRONT_TRIALS = 1500


def front_networks(known: list[dict]) -> list[dict]:
    """The best feasible network of each (objective, budget) search, skipping specs already in ``known``."""
    from latency_tables.table import LatencyTable
    from nas.search import run_search, trial_result
    from search_space import ArchSpec, SearchSpace

    table = LatencyTable.load(TABLE)
    space = SearchSpace.default()
    seen = {json.dumps(n["spec"], sort_keys=True) for n in known}
    out = []
    for objective in FRONT_OBJECTIVES:
        for budget in FRONT_BUDGETS_MS:
            study = run_search(table, space, budget_ms=budget, trials=FRONT_TRIALS, proxy=objective, seed=0,
                               study_name=f"camvid-wide-{objective}-{budget:g}", table_path=str(TABLE))
            feasible = [r for r in map(trial_result, study.trials) if r is not None and r.latency_ms <= budget]
            best = max(feasible, key=lambda r: r.proxy)
            entry = network_entry(f"front_{objective}_{budget:g}", ArchSpec.from_dict(best.spec), best.latency_ms,
                                  objective=objective, budget_ms=budget, trials=FRONT_TRIALS, search_seed=0)
            key = json.dumps(entry["spec"], sort_keys=True)
            print(f"{entry['name']}: {best.latency_ms:.2f} ms predicted, {entry['macs'] / 1e6:.0f} M MACs"
                  + (" (already chosen: skipped)" if key in seen else ""), flush=True)
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help=f"choose again and overwrite {OUT.name}")
    args = parser.parse_args(argv)
    if OUT.is_file() and not args.force:
        print(f"{OUT.relative_to(ROOT)} exists ({len(json.loads(OUT.read_text())['networks'])} networks); "
              "--force chooses again")
        return 0
    wide = spread_networks(SAMPLES, SAMPLES, BINS, "wide")
    first = json.loads((RESULTS / "camvid_networks.json").read_text())["networks"]
    checks = json.loads((RESULTS / "camvid_checks_networks.json").read_text())["networks"]
    wide["networks"] += front_networks(first + [n for n in checks if "spec" in n] + wide["networks"])
    wide["front_searches"] = {"objectives": list(FRONT_OBJECTIVES), "budgets_ms": list(FRONT_BUDGETS_MS),
                              "trials": FRONT_TRIALS, "table_resolution": list(TABLE_RESOLUTION)}
    write_json(OUT, wide)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(wide['networks'])} networks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
