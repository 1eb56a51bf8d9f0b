"""Does brief training rank networks the same way twice? A test-retest study on CamVid.

A fixed set of 18 networks (EfficientViT-B0, B1, and 16 networks of the default search
space spread log-evenly in predicted latency between the fastest of 3000 samples and B1)
is trained from scratch on CamVid with one recipe, for two seeds and several step counts;
the summary gives, per step count, the Spearman rho between the seeds' mIoU rankings.

Recipe: images at 2/3 of the 360x480 originals (240x320), crops 192x256, random scale
0.5-2.0, horizontal flip, batch 8, AdamW (weight decay 0.05), 5% warm-up then cosine, one
thread per run; mIoU on the 101 val images at 240x320. The learning rate comes from a
pilot (B0, 300 steps, seed 0, at 1e-3 and 3e-3) run first and kept in
``camvid_lr_pilot.json``, with the seconds per step of B0 and B1.

A second recipe (``--recipe B``) checks that the ranking is not an artefact of the first:
images at half size (180x240), crops 160x224, no scale augmentation, horizontal flip,
batch 8, AdamW at a fixed 2e-3 (weight decay 0.05), 5% warm-up then poly decay; mIoU on
the val images at 180x240. Its runs go to ``camvid_runs_b.csv``, and its summary
(``camvid_ranking_b.json``) adds the Spearman rho between the two recipes' seed means and
searched vs B0 under both.

Everything is resumable: the network set is written once (``camvid_networks.json``) and
re-read; a run checkpoints every 50 steps under ``camvid_runs/ckpt/`` and resumes there;
a finished run appends its row to ``camvid_runs.csv`` (atomic rewrite) and is never redone
(same network, seed, steps and recipe). Rerun the same command to continue.

    PYTHONPATH=. python benchmarks/camvid_ranking.py --data /path/to/camvid --jobs 2
    PYTHONPATH=. python benchmarks/camvid_ranking.py --summary
    PYTHONPATH=. python benchmarks/camvid_ranking.py --recipe B --data /path/to/camvid --networks b0 searched ...
    PYTHONPATH=. python benchmarks/camvid_ranking.py --recipe B --summary
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import read_rows, write_json, write_rows

from nas.train import Recipe

RESULTS = ROOT / "benchmarks" / "results"
TABLE = ROOT / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv"
TABLE_RESOLUTION = (256, 512)
SAMPLES = 3000  # search-space samples (seeds 0..SAMPLES-1) the 16 networks are picked from
BINS = 16
ZOO = {"b0": "efficientvit_seg_b0", "b1": "efficientvit_seg_b1"}
NUM_CLASSES = 11
IMAGE_SCALE = 2 / 3  # 360x480 -> 240x320, for training and evaluation (recipe A)
PILOT_LRS = (1e-3, 3e-3)
# The two recipes: A is the study's (its learning rate from the pilot); B differs in
# resolution, augmentation, learning rate and schedule. ``lr`` None = the pilot's.
RECIPES: dict[str, dict[str, Any]] = {
    "A": {"image_scale": IMAGE_SCALE, "crop": (192, 256), "scale_range": (0.5, 2.0), "schedule": "cosine",
          "lr": None, "csv": "camvid_runs.csv", "summary": "camvid_ranking.json"},
    "B": {"image_scale": 1 / 2, "crop": (160, 224), "scale_range": (1.0, 1.0), "schedule": "poly",
          "lr": 2e-3, "csv": "camvid_runs_b.csv", "summary": "camvid_ranking_b.json"},
}


def make_recipe(steps: int, seed: int, lr: float, recipe: str = "A") -> Recipe:
    """The training recipe of ``recipe`` ("A", the study's, or "B", the cross-check)."""
    r = RECIPES[recipe]
    return Recipe(steps=steps, batch_size=8, lr=lr, weight_decay=0.05, warmup=0.05, schedule=r["schedule"],
                  crop=r["crop"], scale_range=r["scale_range"], flip=True, seed=seed, checkpoint_every=50)


def recipe_json(lr: float, recipe: str = "A") -> str:
    """What a row records of its recipe: everything but steps and seed (their own columns)."""
    fields = {k: v for k, v in make_recipe(1, 0, lr, recipe).to_dict().items() if k not in ("steps", "seed")}
    return json.dumps({"dataset": "camvid", "image_scale": RECIPES[recipe]["image_scale"], "eval_split": "val",
                       "optimizer": "adamw", "pretrained": False, "threads": 1, **fields}, sort_keys=True)


# ----------------------------------------------------------------------------- networks
def spread_networks(first_seed: int, samples: int, bins: int, prefix: str,
                    fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """``fixed`` networks (name -> ArchSpec) and ``bins`` networks sampled from seeds
    ``first_seed .. first_seed + samples - 1``, spread log-evenly in predicted latency between
    the fastest sample and B1 (one per bin: the lowest seed inside it, else the nearest to its
    centre); named ``{prefix}00``, ``{prefix}01``, ...

    Latencies are predicted with the shipped 2-core table at 256x512 for the 19-class
    (Cityscapes) heads the table was measured with; the networks are trained with 11.
    """
    import numpy as np

    from latency_tables.table import LatencyTable
    from search_space import SearchSpace
    from search_space.registry import model_spec

    table = LatencyTable.load(TABLE)
    space = SearchSpace.default()
    samples_ = [(seed, spec, table.predict_ms(spec, TABLE_RESOLUTION))
                for seed, spec in ((seed, space.sample(seed)) for seed in range(first_seed, first_seed + samples))]
    low, high = min(ms for *_, ms in samples_), table.predict_ms(model_spec(ZOO["b1"]), TABLE_RESOLUTION)
    edges = np.geomspace(low, high, bins + 1)
    pool = [s for s in samples_ if low <= s[2] <= high]  # in seed order: "first sampled" = lowest seed
    picked: list[tuple[int, Any, float]] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        unused = [s for s in pool if all(s[0] != p[0] for p in picked)]
        inside = [s for s in unused if lo <= s[2] <= hi]
        centre = math.sqrt(lo * hi)
        picked.append(inside[0] if inside else min(unused, key=lambda s: abs(math.log(s[2] / centre))))
    entries = [(name, None, spec, table.predict_ms(spec, TABLE_RESOLUTION)) for name, spec in (fixed or {}).items()]
    entries += [(f"{prefix}{i:02d}", seed, spec, ms) for i, (seed, spec, ms) in enumerate(picked)]
    networks = [network_entry(name, spec, ms, sample_seed=seed) for name, seed, spec, ms in entries]
    return {"table": str(TABLE.relative_to(ROOT)), "table_resolution": list(TABLE_RESOLUTION),
            "latency_note": "predicted for the 19-class (Cityscapes) head: the table has no 11-class output block",
            "space_fingerprint": space.fingerprint(), "samples": samples, "first_seed": first_seed,
            "range_ms": [round(low, 3), round(high, 3)],
            "bin_edges_ms": [round(float(e), 3) for e in edges], "macs_at": list(make_recipe(1, 0, 1e-3).crop),
            "networks": networks}


def network_entry(name: str, spec: Any, predicted_ms: float, **extra: Any) -> dict[str, Any]:
    """One trained network's record: its spec with the 11-class CamVid head, params, MACs at the crop."""
    from search_space.cost import count_macs, count_params

    spec = spec.replace(num_classes=NUM_CLASSES)
    return {"name": name, **extra, "predicted_latency_ms": round(predicted_ms, 3), "params": count_params(spec),
            "macs": count_macs(spec, make_recipe(1, 0, 1e-3).crop), "spec": spec.to_dict()}


def choose_networks() -> dict[str, Any]:
    """B0, B1 and 16 sampled networks (seeds 0..2999) spread log-evenly in predicted latency up to B1's."""
    from search_space.registry import model_spec

    return spread_networks(0, SAMPLES, BINS, "net", {name: model_spec(model) for name, model in ZOO.items()})


def load_networks(path: Path) -> list[dict[str, Any]]:
    """The network set: read from ``path``, or chosen once and written there."""
    if not path.is_file():
        write_json(path, choose_networks())
    return json.loads(path.read_text())["networks"]


# ----------------------------------------------------------------------------- one run (worker process)
def _die_with_parent() -> None:
    """Worker initializer: end with the queue process (Linux), so that a restarted queue
    never races an orphaned run on the same checkpoint."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@functools.lru_cache(maxsize=1)
def _splits(data: str, scale: float) -> tuple[Any, Any]:
    """CamVid train and val at ``scale`` of the originals, loaded once per worker process."""
    from nas.data import CamVidDataset

    return CamVidDataset(data, "train", scale=scale), CamVidDataset(data, "val", scale=scale)


def run_one(network: dict[str, Any], seed: int, steps: int, lr: float, data: str,
            checkpoint: str | None, recipe: str = "A") -> dict[str, Any]:
    """Train ``network`` from scratch (resuming from ``checkpoint``), evaluate on val; one thread."""
    import torch

    torch.set_num_threads(1)
    from search_space.records import cpu_model
    from nas.train import evaluate, train
    from search_space import ArchSpec, build_model

    train_set, val_set = _splits(data, RECIPES[recipe]["image_scale"])
    path = Path(checkpoint) if checkpoint else None
    start = int(torch.load(path, map_location="cpu", weights_only=True)["step"]) if path and path.is_file() else 0
    print(f"start {network['name']} seed {seed}, {steps} steps, recipe {recipe}, lr {lr:g}"
          + (f" (resume at {start})" if start else ""),
          flush=True)
    torch.manual_seed(seed)
    if "variant" in network:  # an ablation variant of B0 (benchmarks/ablation.py), not an ArchSpec
        from ablation import build_variant

        model = build_variant(network["variant"], make_recipe(1, 0, lr).crop, NUM_CLASSES)
    else:
        model = build_model(ArchSpec.from_dict(network["spec"]))
    began = time.perf_counter()
    train(model, train_set, make_recipe(steps, seed, lr, recipe), checkpoint=path, progress=False)
    train_s = time.perf_counter() - began
    began = time.perf_counter()
    scores = evaluate(model, val_set, train_set.num_classes)
    eval_s = time.perf_counter() - began
    return {"network": network["name"], "seed": seed, "steps": steps, "lr": lr,
            "miou": round(scores["miou"], 3), "pixel_accuracy": round(scores["pixel_accuracy"], 3),
            "per_class_iou": json.dumps([None if math.isnan(v) else round(v, 2) for v in scores["per_class_iou"]]),
            "params": network["params"], "macs": network["macs"],
            "predicted_latency_ms": network["predicted_latency_ms"], "train_s": round(train_s, 1),
            "eval_s": round(eval_s, 1),
            "seconds_per_step": round(train_s / (steps - start), 4) if steps > start else "",
            "resumed_at_step": start, "cpu": cpu_model(), "torch": torch.__version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "recipe": recipe_json(lr, recipe)}


def checkpoint_path(out: Path, name: str, seed: int, steps: int, lr: float, recipe: str = "A") -> Path:
    tag = "" if recipe == "A" else f"-recipe{recipe}"
    return out / "camvid_runs" / "ckpt" / f"{name}-seed{seed}-{steps}steps-lr{lr:g}{tag}.pt"


def execute(jobs: int, tasks: list[dict[str, Any]], done: Callable[[dict[str, Any], dict[str, Any]], None]) -> int:
    """Run :func:`run_one` on each task (its keyword arguments) in ``jobs`` single-thread
    processes, calling ``done(task, row)`` as each finishes; returns the number that failed."""
    failed = 0
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_die_with_parent) as pool:
        futures = {pool.submit(run_one, **task): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                row = future.result()
            except Exception:  # one broken run must not stop an unattended queue
                failed += 1
                print(f"FAILED {task['network']['name']} seed {task['seed']} {task['steps']} steps:\n"
                      f"{traceback.format_exc()}", flush=True)
                continue
            done(task, row)
    return failed


# ----------------------------------------------------------------------------- pilot and queue
def lr_pilot(networks: dict[str, dict[str, Any]], data: str, out: Path, jobs: int, steps: int,
             timing_steps: int) -> dict[str, Any]:
    """B0 for ``steps`` at each of PILOT_LRS (seed 0), and B1 for ``timing_steps`` (timing only)."""
    tasks = [{"network": networks["b0"], "seed": 0, "steps": steps, "lr": lr, "data": data,
              "checkpoint": str(checkpoint_path(out, "pilot-b0", 0, steps, lr))} for lr in PILOT_LRS]
    tasks.insert(1, {"network": networks["b1"], "seed": 0, "steps": timing_steps, "lr": PILOT_LRS[0], "data": data,
                     "checkpoint": None})
    rows: list[dict[str, Any]] = []

    def done(task: dict[str, Any], row: dict[str, Any]) -> None:
        rows.append(row)
        print(f"pilot {row['network']} lr {row['lr']:g}, {row['steps']} steps: mIoU {row['miou']:.1f}%, "
              f"{row['seconds_per_step']} s/step", flush=True)

    if execute(jobs, tasks, done):
        raise SystemExit("the learning-rate pilot failed (see above)")
    b0 = sorted((r for r in rows if r["network"] == "b0"), key=lambda r: r["lr"])
    b1 = next(r for r in rows if r["network"] == "b1")
    pilot = {"lr": max(b0, key=lambda r: r["miou"])["lr"], "steps": steps, "seed": 0,
             "b0": [{k: r[k] for k in ("lr", "miou", "pixel_accuracy", "train_s", "eval_s", "seconds_per_step")}
                    for r in b0],
             "seconds_per_step": {"b0": round(statistics.mean(r["seconds_per_step"] for r in b0
                                                              if r["seconds_per_step"] != ""), 4),
                                  "b1": b1["seconds_per_step"]},
             "b1_timing_steps": timing_steps, "b1_eval_s": b1["eval_s"], "threads_per_run": 1, "parallel_runs": jobs,
             "cpu": b1["cpu"], "torch": b1["torch"], "date": b1["date"], "recipe": json.loads(b1["recipe"])}
    write_json(out / "camvid_lr_pilot.json", pilot)
    for task in tasks:
        if task["checkpoint"]:
            Path(task["checkpoint"]).unlink(missing_ok=True)
    return pilot


def run_queue(networks: list[dict[str, Any]], seeds: list[int], step_counts: list[int], lr: float, data: str,
              out: Path, jobs: int, recipe_name: str = "A") -> int:
    """Every (network, seed) at each step count in turn, skipping runs already in the recipe's CSV."""
    csv_path = out / RECIPES[recipe_name]["csv"]
    rows = read_rows(csv_path)
    recipe = recipe_json(lr, recipe_name)
    done_keys = {(r["network"], r["seed"], r["steps"], r["recipe"]) for r in rows}
    tasks = [{"network": n, "seed": seed, "steps": steps, "lr": lr, "data": data, "recipe": recipe_name,
              "checkpoint": str(checkpoint_path(out, n["name"], seed, steps, lr, recipe_name))}
             for steps in step_counts for n in networks for seed in seeds
             if (n["name"], str(seed), str(steps), recipe) not in done_keys]
    total = len(tasks)
    print(f"{total} run(s) to do with recipe {recipe_name} at lr {lr:g}, {len(rows)} row(s) already in {csv_path}",
          flush=True)
    finished = 0

    def done(task: dict[str, Any], row: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        rows.append({k: str(v) for k, v in row.items()})
        write_rows(csv_path, rows)
        Path(task["checkpoint"]).unlink(missing_ok=True)
        print(f"[{finished}/{total}] {row['network']} seed {row['seed']}, {row['steps']} steps: mIoU {row['miou']:.1f}% "
              f"(train {row['train_s']:.0f} s, {row['seconds_per_step']} s/step, eval {row['eval_s']:.0f} s)", flush=True)

    return execute(jobs, tasks, done)


# ----------------------------------------------------------------------------- summary
def rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman rho (scipy's if installed, else the project's; ties get average ranks)."""
    try:
        from scipy.stats import spearmanr
    except ImportError:
        from latency_tables.validate import spearman

        return spearman(a, b)
    return float(spearmanr(a, b)[0])


def summarise(rows: list[dict[str, str]], networks: list[dict[str, Any]], seeds: tuple[int, int],
              lr: float, recipe_name: str = "A") -> dict[str, Any]:
    """Per step count, over the networks with both seeds done: test-retest rho and spread;
    and the rho of the seed-mean mIoU with that of the longest step count."""
    recipe = recipe_json(lr, recipe_name)
    miou = {(r["network"], int(r["seed"]), int(r["steps"])): float(r["miou"]) for r in rows if r["recipe"] == recipe}
    names = [n["name"] for n in networks]
    complete = {steps: [n for n in names if all((n, s, steps) in miou for s in seeds)]
                for steps in sorted({k[2] for k in miou})}
    complete = {steps: found for steps, found in complete.items() if found}
    mean = {(n, steps): sum(miou[n, s, steps] for s in seeds) / len(seeds) for steps, found in complete.items() for n in found}
    longest = max(complete, default=None)
    summary: dict[str, Any] = {"seeds": list(seeds), "lr": lr, "recipe_name": recipe_name,
                               "recipe": json.loads(recipe), "steps": {}}
    for steps, found in complete.items():
        a, b = [miou[n, seeds[0], steps] for n in found], [miou[n, seeds[1], steps] for n in found]
        spread = [abs(x - y) for x, y in zip(a, b)]
        entry = {"networks": len(found), "all_networks": len(found) == len(names),
                 "spearman_rho": rank_correlation(a, b) if len(found) >= 3 else None,
                 "mean_abs_spread": round(sum(spread) / len(spread), 3), "max_abs_spread": round(max(spread), 3),
                 "miou": {n: [x, y] for n, x, y in zip(found, a, b)}}
        common = [n for n in found if n in complete[longest]]
        if steps != longest and len(common) >= 3:
            entry[f"spearman_rho_vs_{longest}_steps"] = rank_correlation([mean[n, steps] for n in common],
                                                                         [mean[n, longest] for n in common])
        summary["steps"][str(steps)] = entry
    return summary


def study_lr(out: Path = RESULTS) -> float:
    """The learning rate of recipe A (the pilot's choice, in ``out/camvid_lr_pilot.json``)."""
    return float(json.loads((out / "camvid_lr_pilot.json").read_text())["lr"])


def seed_mious(out: Path, recipe_name: str, lr: float, steps: int) -> dict[str, dict[int, float]]:
    """network -> seed -> mIoU (%) of the runs of ``recipe_name`` at ``steps``."""
    recipe = recipe_json(lr, recipe_name)
    found: dict[str, dict[int, float]] = {}
    for row in read_rows(out / RECIPES[recipe_name]["csv"]):
        if row["recipe"] == recipe and int(row["steps"]) == steps:
            found.setdefault(row["network"], {})[int(row["seed"])] = float(row["miou"])
    return found


def compare_recipes(out: Path, lr_a: float, seeds: tuple[int, int], steps: int) -> dict[str, Any]:
    """Recipe A against B: Spearman rho of the seed-mean mIoU over the networks with both seeds
    under both, and searched vs B0 under each (mean ± std over every seed trained)."""
    runs = {"A": seed_mious(out, "A", lr_a, steps), "B": seed_mious(out, "B", RECIPES["B"]["lr"], steps)}
    common = sorted(n for n in runs["B"] if n in runs["A"]
                    and all(s in runs["A"][n] and s in runs["B"][n] for s in seeds))
    means = {r: [statistics.mean(runs[r][n][s] for s in seeds) for n in common] for r in runs}
    versus = {}
    for r, found in runs.items():
        versus[r] = {n: {"seeds": sorted(found[n]), "mean": round(statistics.mean(found[n].values()), 3),
                         "std": round(statistics.stdev(found[n].values()), 3) if len(found[n]) > 1 else None}
                     for n in ("b0", "searched") if n in found}
    enough = len(common) >= 3
    # what each recipe's own seeds agree to, on the same networks; Spearman-Brown gives the
    # reliability of a 2-seed mean, and their geometric mean the rho two recipes that rank
    # the networks alike would reach through seed noise alone (approximate for ranks)
    retest = {r: rank_correlation(*[[runs[r][n][s] for n in common] for s in seeds[:2]]) for r in runs} if enough else {}
    reliable = [2 * rho / (1 + rho) for rho in retest.values() if rho > 0]
    return {"steps": steps, "seeds": list(seeds), "networks": common, "mean_miou_a": dict(zip(common, means["A"])),
            "mean_miou_b": dict(zip(common, means["B"])),
            "spearman_rho": rank_correlation(means["A"], means["B"]) if enough else None,
            "spearman_rho_interval": spearman_interval(means["A"], means["B"]) if enough else None,
            "seed_to_seed_rho": {r: round(v, 3) for r, v in retest.items()},
            "noise_ceiling_rho": round(math.sqrt(reliable[0] * reliable[1]), 3) if len(reliable) == 2 else None,
            "goal_rho": 0.7, "searched_vs_b0": versus}


def spearman_interval(a: list[float], b: list[float], draws: int = 2000, seed: int = 0) -> list[float]:
    """Bootstrap 95% interval of Spearman rho: networks resampled with replacement."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x, y = np.asarray(a), np.asarray(b)
    rhos = [rank_correlation(list(x[i]), list(y[i])) for i in (rng.integers(0, len(x), len(x)) for _ in range(draws))]
    return [round(float(np.nanpercentile(rhos, 2.5)), 3), round(float(np.nanpercentile(rhos, 97.5)), 3)]


def print_comparison(c: dict[str, Any]) -> None:
    rho = "n/a (fewer than 3 networks)" if c["spearman_rho"] is None else f"{c['spearman_rho']:.3f}"
    if c.get("spearman_rho_interval"):
        rho += f" (95% interval {c['spearman_rho_interval'][0]:.2f} to {c['spearman_rho_interval'][1]:.2f})"
    print(f"recipe A vs B at {c['steps']} steps: {len(c['networks'])} network(s) with seeds {c['seeds']} under both, "
          f"Spearman rho of the seed means {rho} (goal >= {c['goal_rho']})")
    if c.get("seed_to_seed_rho"):
        ceiling = "" if c.get("noise_ceiling_rho") is None else (
            f"; two recipes that ranked alike would reach about {c['noise_ceiling_rho']:.2f} through seed noise alone")
        print("  on the same networks, seed 0 vs seed 1: " + ", ".join(
            f"recipe {r} rho {v:.3f}" for r, v in c["seed_to_seed_rho"].items()) + ceiling)
    for recipe, found in c["searched_vs_b0"].items():
        print(f"  recipe {recipe}: " + (", ".join(
            f"{n} {v['mean']:.2f}" + (f" ± {v['std']:.2f}" if v["std"] is not None else "") + f" mIoU ({len(v['seeds'])} seeds)"
            for n, v in found.items()) or "no run of b0 or searched"))


def print_summary(summary: dict[str, Any]) -> None:
    if not summary["steps"]:
        print("no step count has both seeds done for any network yet")
    for steps, s in summary["steps"].items():
        rho = "n/a (fewer than 3 networks)" if s["spearman_rho"] is None else f"{s['spearman_rho']:.3f}"
        vs = "".join(f", {k.replace('_', ' ')} {v:.3f}" for k, v in s.items() if k.startswith("spearman_rho_vs"))
        print(f"{steps:>5} steps: {s['networks']} network(s){'' if s['all_networks'] else ' (incomplete)'}, "
              f"seed-seed Spearman rho {rho}, mean |seed0 - seed1| {s['mean_abs_spread']:.2f} mIoU "
              f"(max {s['max_abs_spread']:.2f}){vs}")


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="the CamVid folder (train/, trainannot/, val/, valannot/); required to train")
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--networks", nargs="+", help="restrict to these names (b0, b1, net00..net15, or those of "
                        "--extra), trained in the order given")
    parser.add_argument("--extra", metavar="JSON", nargs="+", default=[], help="more networks to train with the same recipe and CSV (the "
                        "search-vs-B0 and ablation networks of camvid_checks.py); the summary ignores them")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default 2)")
    parser.add_argument("--out", default=str(RESULTS), help=f"results folder (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--pilot-steps", type=int, default=300, help="steps of the B0 learning-rate pilot")
    parser.add_argument("--timing-steps", type=int, default=30, help="steps timed of B1 in the pilot")
    parser.add_argument("--summary", action="store_true", help="print and write the ranking summary only")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="A",
                        help="A: the study's recipe (default); B: the cross-check recipe (half resolution, no scale "
                        "augmentation, lr 2e-3, poly), with its own CSV and summary")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    networks = load_networks(out / "camvid_networks.json")
    extra = [n for path in args.extra for n in json.loads(Path(path).read_text())["networks"]]
    by_name = {n["name"]: n for n in networks + extra}
    unknown = sorted(set(args.networks or ()) - set(by_name))
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(by_name)}")
    pilot_path = out / "camvid_lr_pilot.json"

    if args.summary:
        if len(args.seeds) < 2:
            parser.error("--summary compares two seeds; give --seeds A B")
        if not pilot_path.is_file():
            parser.error(f"no {pilot_path} yet: run the study first")
        lr_a = study_lr(out)
        seeds = tuple(args.seeds[:2])
        recipe = RECIPES[args.recipe]
        lr = lr_a if recipe["lr"] is None else recipe["lr"]
        summary = summarise(read_rows(out / recipe["csv"]), networks if args.recipe == "A" else list(by_name.values()),
                            seeds, lr, args.recipe)
        print_summary(summary)
        if args.recipe != "A" and summary["steps"]:
            summary["vs_recipe_A"] = compare_recipes(out, lr_a, seeds, max(int(k) for k in summary["steps"]))
            print_comparison(summary["vs_recipe_A"])
        write_json(out / recipe["summary"], summary)
        return 0

    if not args.data:
        parser.error("--data PATH is required to train")
    lock = (out / ".camvid_ranking.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another camvid_ranking.py is already running on {out}", file=sys.stderr)
        return 1
    if pilot_path.is_file():
        pilot = json.loads(pilot_path.read_text())
    else:
        pilot = lr_pilot(by_name, args.data, out, args.jobs, args.pilot_steps, args.timing_steps)
    print(f"lr {pilot['lr']:g} (pilot: " + ", ".join(f"{r['lr']:g} -> {r['miou']:.1f}%" for r in pilot["b0"])
          + f"); s/step at 1 thread: {pilot['seconds_per_step']}", flush=True)
    chosen = [by_name[name] for name in args.networks] if args.networks else networks + extra  # in the order given
    lr = pilot["lr"] if RECIPES[args.recipe]["lr"] is None else RECIPES[args.recipe]["lr"]
    failed = run_queue(chosen, args.seeds, args.steps, lr, args.data, out, args.jobs, args.recipe)
    print(f"queue finished, {failed} run(s) failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
