"""The accuracy-aware loop for real on CamVid: does it find a network that beats B0?

1. ``run``: the product's command, as a user would type it, on this machine's table
   (the shipped table adapted here with ``evit-nas profile --adapt-from``, made once; run
   it on a quiet CPU) at B0's predicted latency on that table: 2 rounds x 6 networks,
   1,000-step CamVid training (the recipe of ``camvid_ranking.py``, recipe A), starting
   from the shipped predictor (fitted on the CamVid study, whose networks the refits reuse).
   Resumable: rerun the same command after an interruption.

       python benchmarks/camvid_loop.py run --data ../shared/data/camvid

2. ``networks``: the loop's best measured network becomes ``loop_best`` in
   ``camvid_loop_networks.json``; retrain it and B0 with 3 seeds each by the study's queue:

       python benchmarks/camvid_ranking.py --data ../shared/data/camvid --steps 1000 --seeds 0 1 2 \\
           --extra benchmarks/results/camvid_loop_networks.json --networks loop_best b0

3. ``summary``: the loop's rounds (predicted against measured mIoU, the best so far) and
   loop_best against B0 over the 3 seeds, written to ``camvid_loop.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import read_rows, write_json
from camvid_ranking import RESULTS, TABLE, network_entry, recipe_json, seed_mious, study_lr
from evit_nas.args import parse_threads  # noqa: E402

WORK = RESULTS / "camvid_loop"
TABLE_HERE = WORK / "table_adapted.csv"
LOOP_OUT = WORK / "loop"
NETWORKS = RESULTS / "camvid_loop_networks.json"
ROUNDS, PER_ROUND, TRIALS, STEPS = 2, 6, 1000, 1000
EVIT_NAS = [sys.executable, "-m", "evit_nas"]


def budget_ms() -> float:
    """B0's predicted latency on this machine's adapted table."""
    from latency_tables.table import LatencyTable
    from search_space.registry import model_spec

    return round(LatencyTable.load(TABLE_HERE).predict_ms(model_spec("efficientvit_seg_b0")), 3)


def run(data: str, threads: int) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if not TABLE_HERE.is_file():
        print(f"adapting the shipped table to this machine into {TABLE_HERE} (keep the CPU quiet)", flush=True)
        subprocess.run(EVIT_NAS + ["profile", "--adapt-from", str(TABLE), "-o", str(TABLE_HERE)], check=True)
    budget = budget_ms()
    command = EVIT_NAS + ["search", "--table", str(TABLE_HERE), "--budget-ms", f"{budget}", "--trials", str(TRIALS),
                          "--storage", str(WORK / "study.journal"), "--study", "camvid-loop",
                          "--rounds", str(ROUNDS), "--train-per-round", str(PER_ROUND),
                          "--train-data", f"camvid:{data}", "--train-steps", str(STEPS), "--loop-out", str(LOOP_OUT)]
    print(f"budget {budget} ms (B0 on {TABLE_HERE.name}); {' '.join(command[2:])}", flush=True)
    return subprocess.run(command, env=env).returncode


def best_network() -> dict:
    """The loop's best measured network (not B0), from its loop.json."""
    record = json.loads((LOOP_OUT / "loop.json").read_text())
    best = record["round"][-1]["best"]
    rows = {r["network"]: r for r in read_rows(LOOP_OUT / "results.csv")}
    return {"record": record, "best": best, "row": rows[best["network"]]}


def write_networks() -> None:
    from latency_tables.table import LatencyTable
    from search_space import ArchSpec

    found = best_network()
    spec = ArchSpec.from_json(found["row"]["spec"])
    table_ms = LatencyTable.load(TABLE).predict_ms(spec.replace(num_classes=19))
    entry = network_entry("loop_best", spec, table_ms, loop_network=found["best"]["network"],
                          loop_latency_ms=found["best"]["latency_ms"])
    write_json(NETWORKS, {"table": str(TABLE.relative_to(ROOT)), "from": str(LOOP_OUT.relative_to(ROOT) / "loop.json"),
                          "networks": [entry]})
    print(f"wrote {NETWORKS.relative_to(ROOT)}: loop_best = {found['best']['network']} "
          f"({found['best']['miou']:.1f}% mIoU in the loop, {found['best']['latency_ms']:.2f} ms on {TABLE_HERE.name})")


def summary(seeds: list[int], steps: int) -> dict:
    lr = study_lr()
    recipe = recipe_json(lr)
    miou = seed_mious(RESULTS, "A", lr, steps)
    found = best_network()
    record = found["record"]
    versus = {}
    for name in ("loop_best", "b0"):
        values = [miou.get(name, {}).get(s) for s in seeds]
        done = [v for v in values if v is not None]
        versus[name] = {"miou": values, "mean": round(statistics.mean(done), 3) if done else None,
                        "std": round(statistics.stdev(done), 3) if len(done) > 1 else None}
    rounds = [{"round": r["round"], "predictor_networks": r["predictor_networks"],
               "predictor_cv_kendall": r["predictor_cv_kendall"], "front_size": len(r["front"]),
               "trained": r["trained"], "best": r["best"], "reference_miou": r["reference_miou"]}
              for r in record["round"]]
    gap = (versus["loop_best"]["mean"] - versus["b0"]["mean"]
           if versus["loop_best"]["mean"] is not None and versus["b0"]["mean"] is not None else None)
    from latency_tables.table import LatencyTable

    report = {"command": "python benchmarks/camvid_loop.py summary", "budget_ms": record["budget_ms"],
              "cpu": LatencyTable.load(TABLE_HERE).meta.get("cpu"),  # the machine the loop trained on
              "table": str(TABLE_HERE.relative_to(ROOT)), "table_device": record.get("device"),
              "rounds": ROUNDS, "per_round": PER_ROUND, "trials": TRIALS, "steps": steps, "seeds": seeds,
              "prior_networks": record.get("prior_networks"), "loop_rounds": rounds,
              "loop_best": found["best"], "retrained": versus, "miou_gain_over_b0": None if gap is None else round(gap, 3),
              "recipe": json.loads(recipe)}
    write_json(RESULTS / "camvid_loop.json", report)
    for r in rounds:
        pairs = ", ".join(f"{t['name']} {t['predicted_miou']:.1f}->{t['measured_miou']:.1f}" for t in r["trained"]
                          if t["measured_miou"] is not None)
        print(f"round {r['round']}: predictor on {r['predictor_networks']} networks (CV tau {r['predictor_cv_kendall']}); "
              f"predicted->measured mIoU (%): {pairs}; best so far {r['best']['network']} {r['best']['miou']:.1f}%")
    for name, v in versus.items():
        shown = ", ".join("-" if x is None else f"{x:.2f}" for x in v["miou"])
        spread = "" if v["std"] is None else f" ± {v['std']:.2f}"
        print(f"{name:>9}: seeds {seeds}: {shown} mIoU (%)" + ("" if v["mean"] is None else f"; mean {v['mean']:.2f}{spread}"))
    if gap is not None:
        print(f"loop_best - b0: {gap:+.2f} mIoU points at a budget of {record['budget_ms']} ms (B0's latency here)")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run", help="the loop (resumable)")
    r.add_argument("--data", required=True, help="the CamVid folder")
    r.add_argument("--threads", type=parse_threads, default=1, help="torch threads for training (default 1)")
    sub.add_parser("networks", help="write camvid_loop_networks.json (loop_best) for the 3-seed retraining")
    s = sub.add_parser("summary", help="loop_best vs B0 over the seeds, written to camvid_loop.json")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args(argv)
    if args.step == "run":
        return run(args.data, args.threads)
    if args.step == "networks":
        write_networks()
        return 0
    summary(args.seeds, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
