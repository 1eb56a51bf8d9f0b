"""Shared by the brief-training benchmarks: one run (build, train on the procedural
dataset, evaluate) in a single-thread worker process, and a resumable results CSV."""

from __future__ import annotations

import dataclasses
import json
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
    from search_space.cost import count_macs, count_params
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
    """The rows of a results CSV ([] when absent)."""
    from search_space.records import read_csv

    return read_csv(path)[1] if path.is_file() else []


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the results CSV atomically (``records.write_csv``); the columns are every key
    of the rows, in order of appearance."""
    from search_space.records import write_csv

    write_csv(path, list(dict.fromkeys(k for row in rows for k in row)), rows)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    from search_space.records import write_atomic

    write_atomic(path, json.dumps(data, indent=2) + "\n")


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
    """Save a matplotlib figure atomically (``records.atomic_path``) and close it."""
    import matplotlib.pyplot as plt

    from search_space.records import atomic_path

    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:  # keeps the suffix: matplotlib picks the format from it
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
