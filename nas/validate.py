"""Validate a search by brief training: pick networks, train each briefly, evaluate, record.

``evit-nas validate`` takes K networks spread along the latency axis of a study's feasible
Pareto front (or networks named on the command line), trains each with the same short
recipe (:mod:`nas.train`) plus EfficientViT-B0 as a reference, evaluates mIoU on the
validation split, and records one row per network in ``results.csv``.

Every network is trained for the dataset's classes (``num_classes`` of its ArchSpec is
replaced); ``latency_ms`` is the study's prediction for the searched network, at the
study's table resolution.

Resumable: the CSV is rewritten atomically after each network, and a network whose row
(same name, spec, recipe and dataset) is already there is not trained again; a network
interrupted mid-training resumes from its checkpoint in ``checkpoints/`` (the finished
checkpoints stay there: ``{"model": state_dict, ...}``).

Results go back to the study as study user attributes (Optuna refuses to change the
attributes of a finished trial): ``validation:<trial number>`` for a front network and
``validation:reference`` for B0 and ``validation:network:<name>`` for a network named
on the command line (peers included), each a dict with ``network``, ``miou``,
``pixel_accuracy``, ``per_class_iou`` (%, ``None`` for a class absent from the data),
``steps``, ``batch_size``, ``seed``, ``dataset``, ``resolution`` ([H, W]), ``recipe``,
``device``, ``date``, ``spec`` (the trained network's spec, as a dict) and ``checkpoint``
(the absolute path of its weights). A later run with another recipe overwrites them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import optuna
import torch

from search_space.cost import count_macs, count_params
from search_space.create import build_network, load_checkpoint
from search_space.errors import EvitNasError
from search_space.network import NetworkSpec, network_from_dict
from search_space.records import cpu_model, read_csv, write_csv
from search_space.registry import model_spec

from .data import open_dataset
from .search import front, trial_result
from .train import Recipe, _distributed, evaluate, resolve_device, train

__all__ = ["ValidateError", "Entry", "COLUMNS", "REFERENCE", "default_recipe", "pick_front", "front_entries", "trained_in",
           "open_datasets", "validate", "read_results", "safe_name", "attribute_name", "training_resolution", "TRAIN_RESOLUTION",
           "plan_entries", "entry_key", "checkpoint_path", "train_entry", "record_validation", "write_row"]

REFERENCE = "efficientvit_seg_b0"
#: brief-training resolution when neither the command nor a study gives one
TRAIN_RESOLUTION = {"synthetic": (128, 256), "cityscapes": (512, 1024), "ade20k": (512, 512), "camvid": (192, 256)}
#: datasets whose images set the crop, whatever the study's table resolution (CamVid: 240x320 images)
FIXED_CROP = {"synthetic", "camvid"}
#: random rescaling of the images per dataset (the Recipe's default elsewhere); none on the
#: synthetic task, whose images are generated at the crop size (a crop could cut its global cue)
SCALE_RANGE = {"synthetic": (1.0, 1.0), "camvid": (0.5, 2.0)}
#: results.csv columns, in order
COLUMNS = ("network", "trial", "spec", "latency_ms", "macs", "params", "miou", "pixel_accuracy", "per_class_iou",
           "steps", "batch_size", "seed", "dataset", "resolution", "recipe", "train_s", "train_images_per_s",
           "resumed_at_step", "eval_s", "device", "date")
_INT = {"trial", "macs", "params", "steps", "batch_size", "seed", "resumed_at_step"}
_FLOAT = {"latency_ms", "miou", "pixel_accuracy", "train_s", "train_images_per_s", "eval_s"}


class ValidateError(EvitNasError, ValueError):
    """A validation request that cannot run; the message says what to change."""


class Entry(NamedTuple):
    """A network to validate: its name, ArchSpec (or a peer's PeerSpec), and the study trial it came from."""

    name: str
    spec: NetworkSpec
    trial: int | None = None
    latency_ms: float | None = None


def default_recipe(dataset: str, resolution: Sequence[int], steps: int = 400, batch_size: int = 8,
                   seed: int = 0) -> Recipe:
    """The validation recipe: crops of ``resolution``, the dataset's random rescaling
    (:data:`SCALE_RANGE`), a checkpoint every tenth of the run (at most every 50 steps)."""
    if steps < 1 or batch_size < 1:
        raise ValidateError(f"--steps and --batch-size must be at least 1, got {steps} and {batch_size}")
    kind = dataset.partition(":")[0]
    extra: dict[str, Any] = {"scale_range": SCALE_RANGE[kind]} if kind in SCALE_RANGE else {}
    return Recipe(steps=steps, batch_size=batch_size, crop=tuple(resolution), seed=seed,
                  checkpoint_every=max(1, min(50, steps // 10)), **extra)


def training_resolution(dataset: str, given: Sequence[int] | None = None,
                        study: optuna.Study | None = None) -> tuple[int, int]:
    """The brief-training crop for ``dataset`` (``synthetic``, ``cityscapes:PATH``, ...):
    ``given`` if any; else, on real data, the resolution of the study's latency table; else
    :data:`TRAIN_RESOLUTION`. The procedural task scales with the image and CamVid's images
    are small (:data:`FIXED_CROP`), so they keep their crop whatever the table."""
    if given:
        return (int(given[0]), int(given[1]))
    kind = dataset.partition(":")[0]
    table_resolution = study.user_attrs.get("table_meta", {}).get("resolution") if study is not None else None
    if kind not in FIXED_CROP and table_resolution:
        return (int(table_resolution[0]), int(table_resolution[1]))
    return TRAIN_RESOLUTION.get(kind, TRAIN_RESOLUTION["synthetic"])


def pick_front(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """``k`` distinct networks of the feasible Pareto front, spread along the latency axis:
    the fastest and the slowest (for ``k >= 2``) and the rest evenly spaced by latency rank;
    ``k = 1`` gives the slowest, the most capable network within the budget.

    Raises:
        ValidateError: ``k < 1``, no feasible trial, or ``k`` larger than the front.
    """
    if k < 1:
        raise ValidateError(f"--top-k must be at least 1, got {k}")
    members, seen = [], set()
    for trial in front(study):  # sorted by latency; a spec sampled twice counts once
        spec = json.dumps(trial_result(trial).spec, sort_keys=True)
        if spec not in seen:
            seen.add(spec)
            members.append(trial)
    if not members:
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        budget = study.user_attrs.get("budget_ms")
        within = f" within the {budget:g} ms budget" if isinstance(budget, (int, float)) else ""
        raise ValidateError(f"study {study.study_name!r} has no feasible trials (none of its {len(done)} completed "
                            f"trials is{within}); run more trials, or rerun evit-nas search with a larger --budget-ms")
    if k > len(members):
        raise ValidateError(f"K={k} but the front of study {study.study_name!r} has {len(members)} networks; "
                            f"use --top-k {len(members)} or less")
    if k == 1:
        return [members[-1]]
    n = len(members)
    return [members[round(i * (n - 1) / (k - 1))] for i in range(k)]


def front_entries(study: optuna.Study, k: int) -> list[Entry]:
    """:func:`pick_front` as entries named ``trialNNNNN``."""
    return [Entry(f"trial{t.number:05d}", trial_result(t).arch, t.number, trial_result(t).latency_ms)
            for t in pick_front(study, k)]


def open_datasets(name: str, resolution: Sequence[int]) -> tuple[Any, Any]:
    """The train and val splits of ``name`` (synthetic data generated at ``resolution``,
    task seed 0 whatever the training seed, so every run sees the same task)."""
    return (open_dataset(name, "train", tuple(resolution), seed=0),
            open_dataset(name, "val", tuple(resolution), seed=0))


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a results CSV (typed: ints, floats, None for empty cells); [] if absent.

    Raises:
        ValidateError: the file is not a results CSV of this command.
    """
    path = Path(path)
    if not path.is_file():
        return []
    _, rows = read_csv(path)
    if rows and tuple(rows[0]) != COLUMNS:
        raise ValidateError(f"{path} is not a results file of evit-nas validate (columns {list(rows[0])}); "
                            "choose another --out folder")
    return [_typed(row) for row in rows]


def _typed(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value == "":
            out[key] = None
        elif key in _INT:
            out[key] = int(value)
        elif key in _FLOAT:
            out[key] = float(value)
        else:
            out[key] = value
    return out


def device_name(device: str, amp: bool = False) -> str:
    """What trained a network, as results record it: ``cuda: <GPU name>`` (``, amp bfloat16``
    with mixed precision) or ``cpu: <CPU model>, N threads``; ``, K processes (DDP)`` when
    K processes trained it together."""
    if device.startswith("cuda"):
        from .train import amp_dtype

        text = f"cuda: {torch.cuda.get_device_name(device)}"
        text += f", amp {str(amp_dtype(device)).removeprefix('torch.')}" if amp else ""
    else:
        text = f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"
    world = _distributed()[1]
    return text + (f", {world} processes (DDP)" if world > 1 else "")


def _checkpoint_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"]) if path.is_file() else 0


def safe_name(text: str) -> str:
    """``text`` usable as a file or folder name (runs of other characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def validate(
    entries: Sequence[Entry],
    train_set: Any,
    val_set: Any,
    *,
    dataset: str,
    recipe: Recipe,
    work_dir: str | Path,
    device: str = "cpu",
    amp: bool = False,
    study: optuna.Study | None = None,
    reference: bool = True,
    progress: Callable[..., None] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train and evaluate each entry (and B0 unless ``reference=False``) with ``recipe``.

    Args:
        entries: the networks; their ``num_classes`` is set to the dataset's.
        train_set, val_set: the splits (:func:`open_datasets`); ``dataset`` names them.
        work_dir: gets ``results.csv`` and ``checkpoints/``; rows already there are kept.
        device: ``cpu``, ``cuda[:N]`` or ``auto``; ``amp``: mixed precision (CUDA only).
        study: the study the entries came from; receives the ``validation:*`` attributes.
        log: receives one line per network.

    Returns:
        This run's rows (those found done included), in order, as in ``results.csv``.

    Raises:
        ValidateError: a foreign results file.
        TrainError: no CUDA device for ``device="cuda"``, mixed precision on a CPU, or a
            checkpoint of another recipe (not produced by this command).
    """
    device = resolve_device(device)
    if amp:
        from .train import amp_dtype

        amp_dtype(device)  # refused on a CPU before any work
    work_dir = Path(work_dir)
    results = work_dir / "results.csv"
    rows = read_results(results)
    todo = plan_entries(entries, train_set.num_classes, reference)
    done_rows = []
    for number, entry in enumerate(todo, 1):
        key = entry_key(entry, recipe, dataset)
        row = next((r for r in rows if (r["network"], r["spec"], r["recipe"], r["dataset"]) == key), None)
        if row is not None:
            log(f"[{number}/{len(todo)}] {entry.name}: already done, mIoU {row['miou']:.1f}% (in {results})")
        else:
            row = train_entry(entry, train_set, val_set, dataset=dataset, recipe=recipe,
                              checkpoint=checkpoint_path(work_dir, key), device=device, amp=amp, progress=progress)
            rows = write_row(results, row, rows)
            log(f"[{number}/{len(todo)}] {entry.name}: {trained_line(row)}")
        if study is not None:
            record_validation(study, entry, row, checkpoint_path(work_dir, key))
        done_rows.append(row)
    return done_rows


def plan_entries(entries: Sequence[Entry], num_classes: int, reference: bool = True) -> list[Entry]:
    """The networks to train: ``entries`` for ``num_classes`` classes, plus the B0 reference
    (unless ``reference`` is False or it is among them)."""
    todo = [e._replace(spec=e.spec.replace(num_classes=num_classes)) for e in entries]
    if reference:
        b0 = model_spec(REFERENCE, "cityscapes").replace(num_classes=num_classes)  # B0 exists for Cityscapes only
        if all(e.spec != b0 for e in todo):
            todo.append(Entry(REFERENCE, b0))
    return todo


def entry_key(entry: Entry, recipe: Recipe, dataset: str) -> tuple[str, str, str, str]:
    """What identifies a training (a results row): network name, spec JSON, recipe JSON, dataset."""
    return (entry.name, entry.spec.to_json(indent=None), json.dumps(recipe.to_dict(), sort_keys=True), dataset)


def write_row(results: Path, row: dict[str, Any], rows: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Add ``row`` to the results CSV ``results`` (replacing a row of the same training) and
    rewrite it atomically; ``rows``: its current rows if already read. Returns the new rows."""
    rows = read_results(results) if rows is None else rows
    key = ("network", "spec", "recipe", "dataset")
    rows = [r for r in rows if [r[k] for k in key] != [row[k] for k in key]] + [row]
    write_csv(results, COLUMNS, rows)
    return rows


def trained_line(row: dict[str, Any]) -> str:
    """One line on a finished training: mIoU, time, speed, where it resumed."""
    speed = "" if row["train_images_per_s"] is None else f", {row['train_images_per_s']:.1f} images/s"
    resumed = f", resumed at step {row['resumed_at_step']}" if row["resumed_at_step"] else ""
    return f"mIoU {row['miou']:.1f}% (train {row['train_s']:.0f} s{speed}{resumed})"


def record_validation(study: optuna.Study, entry: Entry, row: dict[str, Any], checkpoint: Path) -> None:
    """Record a finished training in ``study`` (the ``validation:*`` attribute of ``entry``)."""
    study.set_user_attr(attribute_name(entry), _summary(row, checkpoint))


def attribute_name(entry: Entry) -> str:
    """The study attribute that records ``entry``'s validation: ``validation:<trial>`` for a
    front network, ``validation:reference`` for B0, ``validation:network:<name>`` for a
    network named on the command line (a peer, an ArchSpec file)."""
    if entry.trial is not None:
        return f"validation:{entry.trial}"
    if entry.name == REFERENCE:
        return "validation:reference"
    return f"validation:network:{entry.name}"


def checkpoint_path(work_dir: Path, key: tuple[str, ...]) -> Path:
    """Where the network of ``key`` (name, spec JSON, recipe JSON, dataset) is checkpointed."""
    digest = hashlib.sha1(json.dumps(list(key)).encode()).hexdigest()[:10]
    return work_dir / "checkpoints" / f"{safe_name(key[0])}-{digest}.pt"


def trained_in(work_dir: str | Path, names: Sequence[str] | None = None) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The networks a validate folder (``results.csv`` + ``checkpoints/``) trained, those of
    ``names`` only if given: name -> (model in evaluation mode with its trained weights, its
    results row). The longest-trained run of each network whose checkpoint is still there."""
    work_dir = Path(work_dir)
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    for row in sorted(read_results(work_dir / "results.csv"), key=lambda r: -r["steps"]):
        name = row["network"]
        path = checkpoint_path(work_dir, (name, row["spec"], row["recipe"], row["dataset"]))
        if (names is None or name in names) and name not in found and path.is_file():
            model = build_network(network_from_dict(json.loads(row["spec"])))
            load_checkpoint(model, path)
            found[name] = (model.eval(), row)
    return found


def train_entry(entry: Entry, train_set: Any, val_set: Any, *, dataset: str, recipe: Recipe, checkpoint: Path,
                device: str = "cpu", amp: bool = False, progress: Callable[..., None] | None = None
                ) -> dict[str, Any] | None:
    """Train ``entry`` with ``recipe`` (resuming from ``checkpoint`` if there), evaluate it on
    ``val_set`` and return its results row (:data:`COLUMNS`). In a group of processes
    (torchrun) they train together and the first one evaluates and returns the row; the
    others return None."""
    device = resolve_device(device)
    key = entry_key(entry, recipe, dataset)
    start = _checkpoint_step(checkpoint)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
        torch.manual_seed(recipe.seed)
        model = build_network(entry.spec)
    began = time.perf_counter()
    train(model, train_set, recipe, checkpoint=checkpoint, device=device, progress=progress, amp=amp)
    train_s = time.perf_counter() - began
    if _distributed()[0] != 0:
        return None
    began = time.perf_counter()
    metrics = evaluate(model, val_set, train_set.num_classes, device)
    eval_s = time.perf_counter() - began
    trained = recipe.steps - start
    return {
        "network": entry.name,
        "trial": entry.trial,
        "spec": key[1],
        "latency_ms": entry.latency_ms,
        "macs": count_macs(entry.spec, recipe.crop),
        "params": count_params(entry.spec),
        "miou": metrics["miou"],
        "pixel_accuracy": metrics["pixel_accuracy"],
        "per_class_iou": json.dumps([None if math.isnan(v) else round(v, 4) for v in metrics["per_class_iou"]]),
        "steps": recipe.steps,
        "batch_size": recipe.batch_size,
        "seed": recipe.seed,
        "dataset": dataset,
        "resolution": "x".join(map(str, recipe.crop)),
        "recipe": key[2],
        "train_s": round(train_s, 3),
        "train_images_per_s": round(trained * recipe.batch_size / train_s, 3) if trained and train_s > 0 else None,
        "resumed_at_step": start,
        "eval_s": round(eval_s, 3),
        "device": device_name(device, amp),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _summary(row: dict[str, Any], checkpoint: Path) -> dict[str, Any]:
    """The study attribute of a row (JSON-safe: no NaN), with the trained network's spec and
    checkpoint (so that the report can load the briefly trained network)."""
    keep = ("network", "miou", "pixel_accuracy", "steps", "batch_size", "seed", "dataset", "device", "date")
    return {**{k: row[k] for k in keep}, "per_class_iou": json.loads(row["per_class_iou"]),
            "resolution": [int(v) for v in row["resolution"].split("x")], "recipe": json.loads(row["recipe"]),
            "spec": json.loads(row["spec"]), "checkpoint": str(checkpoint.resolve())}
