"""How well does each accuracy proxy rank networks like brief training does?

Draws networks spread over the default search space (stratified by MACs within a range
that trains in minutes on a CPU), trains each with the same brief recipe on the procedural
dataset, and reports Kendall tau and Spearman rho between every proxy in
``nas.proxy.PROXIES`` and the trained mIoU, with a scatter plot per proxy.

Runs are resumable (``results/proxy_quality.csv``, one row per trained network).

    python benchmarks/proxy_quality.py --networks 16 --steps 400 --jobs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import read_rows, run_all, save_figure, train_synthetic, write_json

from latency_tables.validate import kendall, spearman
from search_space.cost import count_macs
from nas.proxy import PROXIES, make_proxy
from search_space import ArchSpec, SearchSpace, build_model
from search_space.registry import model_spec

RESULTS = ROOT / "benchmarks" / "results"


def pick_networks(count: int, resolution: tuple[int, int], macs_range: tuple[float, float], seed: int,
                  num_classes: int) -> list[ArchSpec]:
    """``count`` networks of the default space, one per log-spaced MACs bin in ``macs_range``
    (the first random draw in the bin), EfficientViT-B0 in its own bin."""
    space = SearchSpace.default("cityscapes")
    low, high = macs_range
    edges = [math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / count) for i in range(count + 1)]
    b0 = dataclasses.replace(model_spec("efficientvit_seg_b0", "cityscapes"), num_classes=num_classes)
    picked: dict[int, ArchSpec] = {}

    def bin_of(macs: float) -> int:
        return min(count - 1, max(0, sum(macs >= e for e in edges[1:-1])))

    picked[bin_of(count_macs(b0, resolution))] = b0
    rng = random.Random(seed)
    candidates = []
    for _ in range(40_000):
        spec = space.sample(rng)
        macs = count_macs(spec, resolution)
        if low <= macs < high:
            candidates.append((macs, dataclasses.replace(spec, num_classes=num_classes)))
    for macs, spec in candidates:  # the first draw that falls in each bin
        picked.setdefault(bin_of(macs), spec)
    for slot in range(count):  # an empty bin takes the unused draw nearest its centre
        if slot not in picked:
            centre = math.sqrt(edges[slot] * edges[slot + 1])
            used = set(picked.values())
            spare = [c for c in candidates if c[1] not in used]
            if spare:
                picked[slot] = min(spare, key=lambda c: abs(math.log(c[0] / centre)))[1]
    return [picked[i] for i in sorted(picked)]


def _build(spec: ArchSpec, num_classes: int):
    return build_model(dataclasses.replace(spec, num_classes=num_classes))


def plot(rows: list[dict], proxies: list[str], stats: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(proxies), figsize=(4 * len(proxies), 3.6), squeeze=False)
    miou = [float(r["miou"]) for r in rows]
    for ax, name in zip(axes[0], proxies):
        values = [float(r[f"proxy_{name}"]) for r in rows]
        ax.scatter(values, miou, s=18)
        if name in ("params", "macs"):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_title(f"{name}: tau {stats[name]['kendall_tau']:.2f}, rho {stats[name]['spearman_rho']:.2f}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mIoU after brief training (%)")
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=16, help="networks to train (default 16, B0 included)")
    parser.add_argument("--macs-range", type=float, nargs=2, default=[60e6, 250e6], metavar=("LOW", "HIGH"),
                        help="MACs range at the training resolution (default 60e6 250e6)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--resolution", default="128x256")
    parser.add_argument("--seed", type=int, default=0, help="network draw and training seed (default 0)")
    parser.add_argument("--task-seed", type=int, default=0)
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "proxy_quality.csv"))
    args = parser.parse_args(argv)
    resolution = tuple(int(v) for v in args.resolution.lower().split("x"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from nas.data import SyntheticDataset

    num_classes = SyntheticDataset.num_classes
    specs = pick_networks(args.networks, resolution, tuple(args.macs_range), args.seed, num_classes)
    rows = read_rows(out)
    recipe = {"steps": str(args.steps), "batch_size": str(args.batch_size), "lr": str(args.lr)}
    done = {r["spec"] for r in rows if all(r[k] == v for k, v in recipe.items())}
    proxies = sorted(PROXIES)
    scorers = {name: make_proxy(name, resolution) for name in proxies}
    tasks = []
    for spec in specs:
        key = json.dumps(spec.to_dict(), sort_keys=True)
        if key in done:
            continue
        extra = {"network": spec.summary(), "spec": key,
                 **{f"proxy_{name}": scorers[name](spec) for name in proxies}}
        tasks.append((extra, train_synthetic, (partial(_build, spec), args.seed, args.steps,
                                               args.batch_size, args.lr, resolution, args.task_seed, args.val_images)))
    print(f"{len(tasks)} network(s) to train, {len(specs) - len(tasks)} already in {out}", flush=True)
    run_all(args.jobs, tasks, out, rows, lambda r: f"mIoU {r['miou']:5.1f}%  {r['macs'] / 1e6:6.1f} M MACs  "
                                                   f"{r['params'] / 1e6:.2f} M params  ({r['train_s']:.0f} s)")
    wanted = {json.dumps(s.to_dict(), sort_keys=True) for s in specs}
    keep = [r for r in rows if r["spec"] in wanted and all(r[k] == v for k, v in recipe.items())]
    miou = [float(r["miou"]) for r in keep]
    stats = {name: {"kendall_tau": round(kendall([float(r[f"proxy_{name}"]) for r in keep], miou), 3),
                    "spearman_rho": round(spearman([float(r[f"proxy_{name}"]) for r in keep], miou), 3)}
             for name in proxies}
    best = max(proxies, key=lambda n: stats[n]["kendall_tau"])
    summary = {"networks": len(keep), "proxies": stats, "best": best, "recipe": {**recipe, "resolution": args.resolution,
               "task_seed": args.task_seed, "val_images": args.val_images, "macs_range": args.macs_range}}
    write_json(out.with_suffix(".json"), summary)
    plot(keep, proxies, stats, out.with_suffix(".png"))
    for name in proxies:
        print(f"{name:<8} Kendall tau {stats[name]['kendall_tau']:+.3f}  Spearman rho {stats[name]['spearman_rho']:+.3f}")
    print(f"best proxy over {len(keep)} networks: {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
