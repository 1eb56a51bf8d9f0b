"""The EfficientViT paper's ablation on the procedural dataset: multi-scale aggregation and
global attention, each alone, both, and neither, at (nearly) equal MACs.

The four variants are EfficientViT-B0 (10 synthetic classes) with only the context module
of its EfficientViT blocks (stage 3 and stage 4) changed:

- ``both``: LiteMLA with 5x5 multi-scale token aggregation (B0 as published);
- ``attention``: LiteMLA without aggregation (single-scale ReLU linear attention);
- ``multiscale``: no attention; 1x1 expand, depthwise 5x5, ReLU, 1x1 project, BN;
- ``neither``: no attention; 1x1 expand, ReLU, 1x1 project, BN.

The convolutional context modules get the hidden width that brings the network's MACs
closest to ``both``'s. Every variant is trained with the same brief recipe for each seed
(the seed sets the weights and the batches; the task instance is the same), then
evaluated on held-out images. The paper (Cityscapes, equal MACs): neither 68.1,
multi-scale only 72.3, attention only 72.2, both 74.5 mIoU.

Runs are independent single-thread processes (``--jobs``), and a finished run is never
redone: results go to ``results/ablation.csv`` row by row (delete a row to rerun it).

    python benchmarks/ablation.py --seeds 0 1 2 --steps 600 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import read_rows, run_all, save_figure, train_synthetic, write_json

RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = ("neither", "multiscale", "attention", "both")
# synthetic classes decided by a disk's own ring, by the image's mode (shown by scattered markers)
CUES = {"ring": (2, 3), "mode": (4, 5)}
LEARNED = 70.0  # mean IoU of a cue's classes above which a run counts as using that cue
PAPER = {"neither": 68.1, "multiscale": 72.3, "attention": 72.2, "both": 74.5}


def build_variant(variant: str, resolution: tuple[int, int], num_classes: int):
    """The B0 variant with ``num_classes`` outputs (conv context widths MAC-matched at ``resolution``)."""
    import dataclasses

    from torch import nn

    from search_space.cost import count_macs
    from search_space import build_model
    from search_space.ops import EfficientViTBlock
    from search_space.registry import model_spec

    spec = dataclasses.replace(model_spec("efficientvit_seg_b0", "cityscapes"), num_classes=num_classes)
    if variant == "attention":
        return build_model(dataclasses.replace(spec, scales=()))
    if variant == "both":
        return build_model(spec)
    target = count_macs(spec, resolution)

    def conv_context(channels: int, hidden: int) -> nn.Module:
        layers = [nn.Conv2d(channels, hidden, 1, bias=False)]
        if variant == "multiscale":
            layers.append(nn.Conv2d(hidden, hidden, 5, padding=2, groups=hidden, bias=False))
        layers += [nn.ReLU(), nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels)]
        return nn.Sequential(*layers)

    def with_ratio(ratio: float) -> nn.Module:
        net = build_model(spec)
        for block in net.modules():
            if isinstance(block, EfficientViTBlock) and block.context_module is not None:
                channels = block.context_module.main.proj.conv.out_channels
                block.context_module.main = conv_context(channels, max(8, round(channels * ratio / 8) * 8))
        return net

    best = min((abs(count_macs(with_ratio(r / 4), resolution) - target), r / 4) for r in range(2, 33))
    return with_ratio(best[1])


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for variant in VARIANTS:
        values = [float(r["miou"]) for r in rows if r["variant"] == variant]
        if values:
            runs = [r for r in rows if r["variant"] == variant]
            cues = {cue: [_mean_iou(r, classes) for r in runs] for cue, classes in CUES.items()}
            summary[variant] = {"mean": round(statistics.mean(values), 2),
                                "std": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
                                "min": min(values), "max": max(values), "runs": len(values),
                                "macs": int(next(r["macs"] for r in rows if r["variant"] == variant)),
                                "paper": PAPER[variant],
                                "cue_iou_mean": {c: round(statistics.mean(v), 1) for c, v in cues.items()},
                                "runs_that_learned_cue": {c: sum(x >= LEARNED for x in v) for c, v in cues.items()}}
    per_seed = {}
    for seed in sorted({r["seed"] for r in rows}):
        by = {r["variant"]: float(r["miou"]) for r in rows if r["seed"] == seed}
        if len(by) == len(VARIANTS):
            per_seed[seed] = _ordered(by)
    means = {v: s["mean"] for v, s in summary.items()}
    return {"variants": summary, "ordering_holds_on_means": len(means) == 4 and _ordered(means),
            "ordering_holds_per_seed": per_seed}


def _mean_iou(row: dict, classes: tuple[int, ...]) -> float:
    iou = json.loads(row["per_class_iou"])
    return statistics.mean(iou[c] for c in classes)


def _ordered(m: dict[str, float]) -> bool:
    return m["neither"] < min(m["multiscale"], m["attention"]) and max(m["multiscale"], m["attention"]) < m["both"]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, variant in enumerate(VARIANTS):
        values = [float(r["miou"]) for r in rows if r["variant"] == variant]
        if not values:
            continue
        ax.scatter([i] * len(values), values, color="tab:blue", alpha=0.6, label="one seed" if i == 0 else None)
        ax.errorbar(i + 0.15, statistics.mean(values), yerr=statistics.stdev(values) if len(values) > 1 else 0,
                    fmt="o", color="black", capsize=4, label="mean ± std" if i == 0 else None)
    ax.set_xticks(range(len(VARIANTS)), ["neither", "multi-scale\nonly", "attention\nonly", "both"])
    ax.set_ylabel("mIoU after brief training (%)")
    ax.set_title("Ablation on the procedural dataset (B0, MACs within 10%)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--resolution", default="128x256", help="H x W of the synthetic images (default 128x256)")
    parser.add_argument("--task-seed", type=int, default=0, help="the synthetic task instance (default 0)")
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default 2)")
    parser.add_argument("--out", default=str(RESULTS / "ablation.csv"))
    args = parser.parse_args(argv)
    resolution = tuple(int(v) for v in args.resolution.lower().split("x"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = read_rows(out)
    done = {(r["variant"], int(r["seed"])) for r in rows
            if int(r["steps"]) == args.steps and int(r["batch_size"]) == args.batch_size and float(r["lr"]) == args.lr}
    todo = [(v, s) for s in args.seeds for v in args.variants if (v, s) not in done]
    print(f"{len(todo)} run(s) to do, {len(done)} already in {out}", flush=True)
    tasks = [({"variant": v}, train_synthetic, (partial(build_variant, v, resolution), s, args.steps, args.batch_size,
                                                 args.lr, resolution, args.task_seed, args.val_images)) for v, s in todo]
    run_all(args.jobs, tasks, out, rows, lambda r: f"{r['variant']:<11} seed {r['seed']}: mIoU {r['miou']:5.1f}%  "
                                                   f"({r['macs'] / 1e6:.1f} M MACs, {r['train_s']:.0f} s)")
    keep = [r for r in rows if int(r["steps"]) == args.steps and int(r["batch_size"]) == args.batch_size
            and float(r["lr"]) == args.lr]
    summary = summarise(keep)
    summary["recipe"] = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                         "resolution": args.resolution, "task_seed": args.task_seed, "val_images": args.val_images}
    write_json(out.with_suffix(".json"), summary)
    plot(keep, out.with_suffix(".png"))
    for variant, s in summary["variants"].items():
        print(f"{variant:<11} mIoU {s['mean']:5.1f} ± {s['std']:.1f} % over {s['runs']} seed(s)  "
              f"(min {s['min']:.1f}, max {s['max']:.1f}; {s['macs'] / 1e6:.1f} M MACs; paper {s['paper']})\n    "
              + ", ".join(f"{c} IoU {s['cue_iou_mean'][c]:.1f} (learned {s['runs_that_learned_cue'][c]}/{s['runs']})"
                          for c in CUES))
    print(f"ordering neither < multi-scale only, attention only < both on the means: {summary['ordering_holds_on_means']}")
    print(f"per seed: {summary['ordering_holds_per_seed']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
