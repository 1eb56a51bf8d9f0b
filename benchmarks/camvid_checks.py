"""Does a searched network beat EfficientViT-B0 on CamVid, and does the paper's ablation hold?

Two checks with the recipe of the test-retest study (``camvid_ranking.py``), trained by its
resumable queue into the same ``camvid_runs.csv``:

1. ``prepare``: a search on the shipped table whose budget is B0's predicted latency, with
   the default accuracy objective (``--proxy``); its best feasible network ("searched", the
   highest proxy within the budget) is written to ``camvid_checks_networks.json`` together
   with the ablation variants of B0 (``benchmarks/ablation.py``: context module neither /
   multi-scale only / attention only at B0's MACs; "both" is B0 itself).
2. train them, 3 seeds each, with the queue (the step count chosen by the test-retest study):

       python benchmarks/camvid_ranking.py --data CAMVID --extra benchmarks/results/camvid_checks_networks.json \\
           --networks b0 searched abl_neither abl_multiscale abl_attention --seeds 0 1 2 --steps 1000

3. ``summary --steps N``: mean ± std of searched vs B0 (and whether the searched network's
   mean is higher by more than the seeds' spread), and the ablation ordering, next to the
   paper's Cityscapes figures; written to ``camvid_checks.json``.

    PYTHONPATH=. python benchmarks/camvid_checks.py prepare --proxy macs --trials 1500
    PYTHONPATH=. python benchmarks/camvid_checks.py summary --steps 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ablation import PAPER
from brief_runs import write_json
from camvid_ranking import NUM_CLASSES, RESULTS, TABLE, TABLE_RESOLUTION, make_recipe, seed_mious, study_lr

NETWORKS = RESULTS / "camvid_checks_networks.json"
ABLATION = {"abl_neither": "neither", "abl_multiscale": "multiscale", "abl_attention": "attention", "b0": "both"}


def prepare(proxy: str, trials: int, seed: int) -> None:
    from ablation import build_variant
    from latency_tables.table import LatencyTable
    from nas.search import run_search, trial_result
    from search_space import ArchSpec, SearchSpace
    from search_space.cost import count_macs, count_params
    from search_space.registry import model_spec

    table = LatencyTable.load(TABLE)
    space = SearchSpace.default()
    budget = table.predict_ms(model_spec("efficientvit_seg_b0"), TABLE_RESOLUTION)
    study = run_search(table, space, budget_ms=budget, trials=trials, proxy=proxy, seed=seed,
                       study_name=f"camvid-check-{proxy}", table_path=str(TABLE))
    feasible = [r for r in map(trial_result, study.trials) if r is not None and r.latency_ms <= budget]
    best = max(feasible, key=lambda r: r.proxy)
    spec = ArchSpec.from_dict(best.spec).replace(num_classes=NUM_CLASSES)
    crop = make_recipe(1, 0, 1e-3).crop
    networks = [{"name": "searched", "proxy": proxy, "proxy_value": best.proxy, "budget_ms": round(budget, 3),
                 "predicted_latency_ms": round(best.latency_ms, 3), "params": count_params(spec),
                 "macs": count_macs(spec, crop), "spec": spec.to_dict(), "trials": trials, "search_seed": seed}]
    for name, variant in ABLATION.items():
        if name == "b0":
            continue
        model = build_variant(variant, crop, NUM_CLASSES)
        networks.append({"name": name, "variant": variant, "predicted_latency_ms": "", "params": count_params(model),
                         "macs": count_macs(model, crop)})
    write_json(NETWORKS, {"table": str(TABLE.relative_to(ROOT)), "table_resolution": list(TABLE_RESOLUTION),
                          "b0_predicted_ms": round(budget, 3), "networks": networks})
    print(f"budget {budget:.2f} ms (B0 on {TABLE.name}); searched: {spec.summary()} "
          f"({best.latency_ms:.2f} ms, {proxy} {best.proxy:.4g}); wrote {NETWORKS.relative_to(ROOT)}")


def summary(steps: int, lr: float) -> dict:
    runs = {name: [miou for seed, miou in sorted(by_seed.items()) if seed in (0, 1, 2)]
            for name, by_seed in seed_mious(RESULTS, "A", lr, steps).items()}

    def stats(name: str) -> dict:
        values = runs.get(name, [])
        return {"runs": len(values), "mean": round(statistics.mean(values), 2) if values else None,
                "std": round(statistics.stdev(values), 2) if len(values) > 1 else None, "miou": values}

    out = {"steps": steps, "lr": lr, "searched": stats("searched"), "b0": stats("b0"),
           "ablation": {variant: {**stats(name), "paper_cityscapes": PAPER[variant]} for name, variant in ABLATION.items()}}
    s, b = out["searched"], out["b0"]
    if s["runs"] >= 2 and b["runs"] >= 2:
        out["searched_minus_b0"] = round(s["mean"] - b["mean"], 2)
        out["searched_wins_beyond_spread"] = s["mean"] - b["mean"] > max(s["std"], b["std"])
    means = {v: a["mean"] for v, a in out["ablation"].items() if a["mean"] is not None}
    if len(means) == 4:
        out["measured_order"] = sorted(means, key=means.get)
        out["paper_order_holds"] = means["neither"] < min(means["multiscale"], means["attention"]) \
            and max(means["multiscale"], means["attention"]) < means["both"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="search for B0's latency and write the networks to train")
    p.add_argument("--proxy", required=True, help="the accuracy objective (the best of camvid_proxies.py)")
    p.add_argument("--trials", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("summary", help="mean ± std of the trained networks")
    p.add_argument("--steps", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.proxy, args.trials, args.seed)
        return 0
    result = summary(args.steps, study_lr())
    write_json(RESULTS / "camvid_checks.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "ablation"}, indent=1))
    for variant, a in result["ablation"].items():
        print(f"  {variant:<11} {a['runs']} run(s): {a['mean']} ± {a['std']} mIoU (paper, Cityscapes: {a['paper_cityscapes']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
