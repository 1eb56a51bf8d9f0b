"""Shared by the brief-training benchmarks: one run (build, train on the procedural
dataset, evaluate) in a single-thread worker process, and a resumable results CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def train_synthetic(build: Callable[[int], Any], seed: int, steps: int, batch_size: int, lr: float,
                    resolution: tuple[int, int], task_seed: int, val_images: int) -> dict[str, Any]:
    """Train ``build(num_classes)`` (returns the model) on the procedural dataset with
    ``evit-nas validate``'s recipe (learning rate ``lr``), evaluate on ``val_images`` held-out images; one thread."""
    import torch

    torch.set_num_threads(1)
    from nas.cost import count_macs, count_params
    from nas.data import SyntheticDataset
    from nas.train import evaluate, train
    from nas.validate import default_recipe

    torch.manual_seed(seed)
    train_set = SyntheticDataset(resolution, length=100_000, seed=task_seed, split="train")
    val_set = SyntheticDataset(resolution, length=val_images, seed=task_seed, split="val")
    model = build(train_set.num_classes)
    macs, params = count_macs(model, resolution), count_params(model)
    recipe = dataclasses.replace(default_recipe("synthetic", resolution, steps, batch_size, seed), lr=lr)
    start = time.perf_counter()
    train(model, train_set, recipe, progress=False)
    train_s = time.perf_counter() - start
    scores = evaluate(model, val_set, train_set.num_classes)
    return {"seed": seed, "miou": round(scores["miou"], 2), "pixel_accuracy": round(scores["pixel_accuracy"], 2),
            "macs": macs, "params": params, "steps": steps, "batch_size": batch_size, "lr": lr,
            "resolution": f"{resolution[0]}x{resolution[1]}", "train_s": round(train_s, 1),
            "train_images_per_s": round(steps * batch_size / train_s, 2),
            "per_class_iou": json.dumps([round(v, 1) for v in scores["per_class_iou"]])}


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the CSV atomically (temp file + rename)."""
    from latency_tables.profile import write_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(str(path), buffer.getvalue())


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    from latency_tables.profile import write_atomic

    write_atomic(str(path), json.dumps(data, indent=2) + "\n")


def run_all(jobs: int, tasks: Iterable[tuple[dict[str, Any], Callable[..., dict[str, Any]], tuple]], out: Path,
            rows: list[dict[str, Any]], report: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    """Run ``fn(*args)`` for each ``(extra, fn, args)`` in ``jobs`` processes; each result
    (merged with ``extra``) is appended to ``rows`` and saved at once."""
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [(extra, pool.submit(fn, *args)) for extra, fn, args in tasks]
        for extra, future in futures:
            row = {**extra, **future.result()}
            rows.append({k: str(v) for k, v in row.items()})
            write_rows(out, rows)
            print(report(row), flush=True)
    return rows


def save_figure(fig: Any, path: Path, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.tight_layout()
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
