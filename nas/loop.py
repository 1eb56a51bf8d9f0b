"""The accuracy-aware loop's choice: which feasible networks to train next.

Each round of the loop trains K networks, records their mIoU, refits the predictor and goes
on searching. Which K? Mostly the ones the predictor ranks best (exploit: the round may find
the winner), and some where its upper confidence bound is highest (explore: mean + spread,
networks it knows least about and might be underrating). Both the product's loop and its
simulation on NAS-Bench-MR (``benchmarks/nbmr_loop.py``) choose with :func:`pick_to_train`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from latency_tables.table import LatencyTable, MissingBlocksError
from search_space import ArchSpec, SearchSpace
from search_space.network import network_from_dict
from search_space.records import write_atomic
from search_space.registry import model_spec

from .search import front, run_search, trial_result
from .train import Recipe
from .validate import REFERENCE, Entry, ValidateError, read_results, validate

__all__ = ["EXPLORE_SHARE", "UCB_WEIGHT", "explore_count", "pick_to_train", "run_loop"]

#: share of each round's networks picked by upper confidence bound rather than by mean
EXPLORE_SHARE = 1 / 3
#: the upper confidence bound is mean + UCB_WEIGHT * std
UCB_WEIGHT = 2.0


def explore_count(k: int, explore_share: float = EXPLORE_SHARE) -> int:
    """How many of ``k`` picks go by upper confidence bound (none when only one is picked)."""
    return int(round(k * explore_share)) if k > 1 else 0


def pick_to_train(mean: Sequence[float], std: Sequence[float], k: int, explore_share: float = EXPLORE_SHARE,
                  ucb_weight: float = UCB_WEIGHT) -> list[int]:
    """Indices of ``k`` candidates to train: ``k - round(k * explore_share)`` with the highest
    predicted mean, then the rest with the highest ``mean + ucb_weight * std`` among those
    left. Fewer than ``k`` candidates: all of them. Ties go to the lower index.

    >>> pick_to_train([50, 40, 45, 30], [0, 9, 0, 1], k=2)
    [0, 1]
    """
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if mean.shape != std.shape:
        raise ValueError(f"{mean.size} means but {std.size} spreads")
    k = min(k, mean.size)
    explore = explore_count(k, explore_share)
    by_mean = [int(i) for i in np.argsort(-mean, kind="stable")]
    chosen = by_mean[: k - explore]
    taken = set(chosen)
    by_ucb = [int(i) for i in np.argsort(-(mean + ucb_weight * std), kind="stable") if int(i) not in taken]
    return chosen + by_ucb[:explore]


# ----------------------------------------------------------------------------- the product's loop
def _trained_means(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean mIoU per network spec (JSON) over the rows (seeds) that trained it."""
    by_spec: dict[str, list[float]] = {}
    for row in rows:
        if row["miou"] is not None and isinstance(network_from_dict(json.loads(row["spec"])), ArchSpec):
            by_spec.setdefault(row["spec"], []).append(float(row["miou"]))
    return {spec: sum(v) / len(v) for spec, v in by_spec.items()}


def _candidates(study: optuna.Study, trained: set[str], num_classes: int, k: int) -> list[tuple[int, ArchSpec, float]]:
    """Untrained feasible networks of ``study``: its front first, then the other feasible
    trials (by trial number) when the front holds fewer than ``k``; (trial, spec, latency)."""
    budget = study.user_attrs["budget_ms"]
    feasible = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if (r := trial_result(t)) is not None and r.latency_ms <= budget]
    members = front(study)
    on_front = {m.number for m in members}
    ordered = members + [t for t in feasible if t.number not in on_front]
    out, seen = [], set(trained)
    for t in ordered:
        result = trial_result(t)
        spec = result.arch.replace(num_classes=num_classes)
        key = spec.to_json(indent=None)
        if key not in seen:
            seen.add(key)
            out.append((t.number, spec, result.latency_ms))
        if len(out) >= k and t.number not in on_front:
            break
    return out


def run_loop(table: LatencyTable, space: SearchSpace, *, budget_ms: float, trials: int, rounds: int, per_round: int,
             dataset: str, recipe: Recipe, train_set: Any, val_set: Any, work_dir: str | Path,
             storage: str | None = None, study_name: str = "evit-nas-loop", seed: int = 0, table_path: str = "",
             start_predictor: str | Path | None = None, device: str = "cpu", workers: bool = False,
             log: Callable[[str], None] = print, progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """The accuracy-aware search: ``rounds`` rounds of search, training and refitting.

    Round r searches (study ``{study_name}-round{r}``, ``trials`` trials) with the predictor of
    round r as its accuracy objective, picks ``per_round`` untrained feasible networks of its
    front (:func:`pick_to_train`: the best predicted, a third by upper confidence bound),
    trains them with ``recipe`` (``nas.validate.validate``; B0 too in round 0, the reference)
    and refits the predictor on every network trained so far for round r + 1. Round 0's
    predictor is ``start_predictor`` (default: the shipped one). Where the start predictor
    records networks trained on the same dataset with the same recipe (the shipped one:
    CamVid, the 1,000-step recipe of ``--train-data camvid:PATH``), the refits use them too,
    the loop's own measurement winning for a network in both.

    ``workers``: each round's networks are queued in ``storage`` (the queue
    ``{study_name}.train-queue``, :mod:`nas.queue`) and the loop waits until ``evit-nas worker
    --storage STORAGE --study {study_name}`` processes, on any machines, have trained them;
    ``device`` is then the workers' choice.

    Everything lands in ``work_dir``: ``results.csv`` and ``checkpoints/`` (validate's),
    ``round<r>/predictor.json`` and ``round<r>/picks.json``, and ``loop.json`` (the record of
    every round, rewritten after each). Rerun after a kill: finished searches, picks and
    trainings are reused (a training resumes from its checkpoint), nothing is repeated.

    Returns:
        The loop record (as in ``loop.json``).
    """
    from .predictor import DEFAULT_PREDICTOR, fit_predictor, load_predictor, training_conditions

    if rounds < 1 or per_round < 1:
        raise ValidateError(f"--rounds and --train-per-round must be at least 1, got {rounds} and {per_round}")
    start = load_predictor(start_predictor or DEFAULT_PREDICTOR)  # a missing or foreign file fails before any work
    work_dir = Path(work_dir)
    results = work_dir / "results.csv"
    classes = train_set.num_classes
    conditions = training_conditions(dataset, recipe.to_dict())
    prior = _prior_means(start, conditions, classes)
    reference = model_spec(REFERENCE, "cityscapes")
    record: dict[str, Any] = {"budget_ms": budget_ms, "trials": trials, "rounds": rounds, "per_round": per_round,
                              "dataset": dataset, "recipe": recipe.to_dict(), "table": table_path,
                              "device": table.meta.get("device"), "reference": REFERENCE,
                              "reference_latency_ms": _predicted_ms(table, reference),
                              "prior_networks": len(prior), "round": []}
    for r in range(rounds):
        folder = work_dir / f"round{r}"
        folder.mkdir(parents=True, exist_ok=True)
        predictor_path = folder / "predictor.json"
        if not predictor_path.is_file():
            trained = _trained_means(read_results(results))
            data = {**prior, **trained}
            if r == 0 or len(data) < 5:
                write_atomic(predictor_path, Path(start_predictor or DEFAULT_PREDICTOR).read_text())
                why = "the start predictor" if r == 0 else f"the start predictor ({len(data)} trained, 5 needed)"
            else:
                fit_predictor([ArchSpec.from_json(s) for s in data], list(data.values()),
                              source=f"{results}, round {r}" + (f", and {len(prior)} networks of the start predictor"
                                                                if prior else ""),
                              trained_with=conditions).save(predictor_path)
                why = f"fitted on {len(trained)} network(s) trained by the loop" + (
                    f" and {len(set(prior) - set(trained))} of the start predictor's" if prior else "")
            log(f"round {r}: predictor {predictor_path} ({why})")
        predictor = load_predictor(predictor_path)
        study = run_search(table, space, budget_ms=budget_ms, trials=trials, proxy=f"learned:{predictor_path}",
                           storage=storage, study_name=f"{study_name}-round{r}", seed=seed + r,
                           table_path=table_path)
        picks_path = folder / "picks.json"
        if picks_path.is_file():
            picks = json.loads(picks_path.read_text())
        else:
            trained_specs = set(_trained_means(read_results(results)))
            candidates = _candidates(study, trained_specs, classes, per_round)
            mean, std = predictor.predict([spec for _, spec, _ in candidates]) if candidates else ([], [])
            chosen = pick_to_train(mean, std, per_round)
            picked = min(per_round, len(candidates))
            exploit = picked - explore_count(picked)
            picks = [{"name": f"r{r}_trial{candidates[i][0]:05d}", "trial": candidates[i][0],
                      "spec": candidates[i][1].to_dict(), "latency_ms": candidates[i][2],
                      "predicted_miou": float(mean[i]), "predicted_std": float(std[i]),
                      "picked_by": "mean" if n < exploit else "upper confidence bound"}
                     for n, i in enumerate(chosen)]
            write_atomic(picks_path, json.dumps(picks, indent=1) + "\n")
        log(f"round {r}: training {len(picks)} network(s) of the front"
            + (" + the B0 reference" if r == 0 else "") + f" ({recipe.steps} steps on {dataset})")
        entries = [Entry(p["name"], ArchSpec.from_dict(p["spec"]), p["trial"], p["latency_ms"]) for p in picks]
        train = validate
        if workers:
            from .queue import validate_queued

            train = functools.partial(validate_queued, storage=storage, queue_study=study_name)
        rows = train(entries, train_set, val_set, dataset=dataset, recipe=recipe, work_dir=work_dir, device=device,
                     study=study, reference=(r == 0), progress=progress, log=log)
        measured = {row["network"]: row["miou"] for row in rows}
        record["round"].append(_round_record(r, study, predictor, picks, measured, read_results(results), record))
        write_atomic(work_dir / "loop.json", json.dumps(record, indent=1) + "\n")
        study.set_user_attr("loop", record)  # the report of this round's study shows the rounds so far
        best = record["round"][-1]["best"]
        b0_ms = record["reference_latency_ms"]
        log(f"round {r}: best measured so far {best['network']} {best['miou']:.1f}% mIoU at "
            f"{best['latency_ms']:.2f} ms; B0 {record['round'][-1]['reference_miou']:.1f}%"
            + ("" if b0_ms is None else f" at {b0_ms:.2f} ms"))
    return record


def _prior_means(start: Any, conditions: dict, num_classes: int) -> dict[str, float]:
    """The start predictor's networks (spec JSON with ``num_classes`` -> mIoU) when they were
    trained as the loop trains (same dataset kind and recipe), else none."""
    if start.trained_with != conditions:
        return {}
    return {ArchSpec.from_dict(t["spec"]).replace(num_classes=num_classes).to_json(indent=None): float(t["miou"])
            for t in start.training}


def _predicted_ms(table: LatencyTable, spec: ArchSpec) -> float | None:
    """``spec``'s predicted latency, None where the table lacks its blocks (a table of another space)."""
    try:
        return table.predict_ms(spec)
    except MissingBlocksError:
        return None


def _round_record(r: int, study: optuna.Study, predictor: Any, picks: list[dict[str, Any]],
                  measured: dict[str, float], all_rows: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    """What the report shows of round ``r``: its front (latency, predicted mIoU), the trained
    networks' predicted against measured mIoU, and the best measured network so far against B0."""
    members = front(study)
    fronts = [{"trial": t.number, "latency_ms": trial_result(t).latency_ms, "predicted_miou": trial_result(t).proxy}
              for t in members]
    trained = [{**{k: p[k] for k in ("name", "trial", "latency_ms", "predicted_miou", "predicted_std", "picked_by")},
                "measured_miou": measured.get(p["name"])} for p in picks]
    loop_rows = [row for row in all_rows if row["network"] != REFERENCE and row["trial"] is not None]
    best = max(loop_rows, key=lambda row: row["miou"])
    reference = [row["miou"] for row in all_rows if row["network"] == REFERENCE]
    return {"round": r, "study": study.study_name, "predictor_networks": predictor.networks,
            "predictor_cv_kendall": predictor.cv_kendall, "front": fronts, "trained": trained,
            "best": {"network": best["network"], "miou": best["miou"], "latency_ms": best["latency_ms"]},
            "reference_miou": sum(reference) / len(reference) if reference else None}
