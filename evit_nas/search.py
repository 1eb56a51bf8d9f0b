"""Commands about the search: ``search`` (run or resume a study) and ``pareto`` (show and
export its front)."""

from __future__ import annotations

import argparse
from typing import Any

from .args import add_dataset, add_json, add_space, load_space, print_json, warn_about_table
from .progress import Progress

#: the default accuracy objective (nas.proxy.DEFAULT_PROXY; not imported: it loads torch)
DEFAULT_PROXY = "macs"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search for the best networks under a latency budget",
                       description="Optuna multi-objective search over the space: each network is scored by its "
                       "predicted latency (the device table), MACs, parameters and an accuracy proxy; the budget is a "
                       "hard constraint and the Pareto front holds feasible networks only. The same command resumes "
                       "a study; start it on several machines with one --storage URL to search together.")
    p.add_argument("--table", required=True, help="latency table of the target device")
    p.add_argument("--budget-ms", type=float, required=True, help="latency budget in ms (batch 1, the table's threads)")
    p.add_argument("--trials", type=int, default=500, help="completed trials the study should hold (default: 500)")
    p.add_argument("--objectives", default="proxy,latency",
                   help="comma-separated: proxy (maximised), latency, macs, params (minimised) (default: proxy,latency)")
    p.add_argument("--proxy", default=DEFAULT_PROXY,
                   help="accuracy objective: macs (the one that ranked networks best against the project's "
                   "1,000-step CamVid training; Kendall tau with its 95%% interval in the docs' results, CamVid "
                   "section), learned (the accuracy predictor fitted on that study's networks; its cross-validated "
                   "tau is in nas/camvid_predictor.json), learned:FILE (one fitted with `evit-nas predictor fit` on "
                   f"your validations), params, naswot, synflow (default: {DEFAULT_PROXY})")
    p.add_argument("--sampler", default="nsga2", help="nsga2, tpe or random (default: nsga2)")
    p.add_argument("--storage", help="Optuna storage: a journal file path (default: evit-nas.journal) or a URL "
                   "(sqlite:///x.db, postgresql://user:pw@host/db)")
    p.add_argument("--study", help="study name (default: derived from table, budget, objectives, proxy, sampler, seed)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    add_dataset(p)
    add_space(p)
    loop = p.add_argument_group(
        "accuracy-aware loop", "with --rounds R: R rounds of search, brief training of --train-per-round networks of "
        "the front on --train-data, and a refit of the learned accuracy predictor on every network trained so far; "
        "each round searches with the refitted predictor as its accuracy objective. Rerun the same command to resume "
        "after an interruption: nothing finished is trained again")
    loop.add_argument("--rounds", type=int, help="rounds of the loop (default: no loop, a single search)")
    loop.add_argument("--train-per-round", type=int, default=6, metavar="K",
                      help="networks trained per round: the best predicted, a third by upper confidence bound (default: 6)")
    loop.add_argument("--train-data", default="synthetic", metavar="DATASET",
                      help="training data: synthetic, camvid:PATH, cityscapes:PATH or ade20k:PATH (default: synthetic)")
    loop.add_argument("--train-steps", type=int, default=1000, help="training steps per network (default: 1000)")
    loop.add_argument("--train-batch-size", type=int, default=8, help="images per step (default: 8)")
    loop.add_argument("--train-device", choices=("cpu", "cuda", "auto"), default="cpu",
                      help="where to train (default: cpu)")
    loop.add_argument("--train-workers", action="store_true",
                      help="queue each round's networks in --storage and wait for `evit-nas worker --storage STORAGE "
                      "--study STUDY` processes (on this or other machines, GPUs) to train them, instead of training "
                      "them here")
    loop.add_argument("--start-predictor", metavar="FILE", help="round 0's accuracy predictor (default: the shipped one)")
    loop.add_argument("--loop-out", metavar="DIR", help="results, checkpoints, predictors and loop.json (default: "
                      "loop/STUDY)")
    add_json(p, "machine-readable summary (no progress bar)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("pareto", help="show and export a study's Pareto front",
                       description="Print the feasible Pareto front of a search study and optionally export each "
                       "network as ArchSpec JSON and ONNX (at the table's resolution) with a front.csv.")
    p.add_argument("--storage", help="Optuna storage (default: evit-nas.journal)")
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--export", metavar="DIR", help="write front.csv and one ArchSpec JSON + ONNX per network")
    p.add_argument("--no-onnx", action="store_true", help="with --export: skip the ONNX files")
    add_json(p)
    p.set_defaults(func=cmd_pareto)


def search_progress() -> Progress:
    return Progress("search", "trial")


def front_rows(members: list[Any]) -> list[dict[str, Any]]:
    """One row per front trial: its number, scores and a one-line summary."""
    from nas.search import trial_result

    return [{"trial": t.number, **trial_result(t).to_dict(), "summary": trial_result(t).arch.summary()} for t in members]


def print_front(rows: list[dict[str, Any]]) -> None:
    print(f"{'trial':>6}{'latency (ms)':>14}{'MACs (G)':>10}{'params (M)':>12}{'proxy':>14}  network")
    for r in rows:
        print(f"{r['trial']:>6}{r['latency_ms']:>14.2f}{r['macs'] / 1e9:>10.3f}{r['params'] / 1e6:>12.3f}"
              f"{r['proxy']:>14.4g}  {r['summary']}")


def cmd_search(args: argparse.Namespace) -> int:
    from latency_tables.table import LatencyTable

    table = LatencyTable.load(args.table)  # a bad table fails before the search's imports
    warn_about_table(table)
    space = load_space(args)
    from nas.search import default_study_name, front, run_search

    name = args.study or default_study_name(args.table, args.budget_ms, args.objectives, args.proxy, args.sampler,
                                            args.seed)
    if args.rounds is not None:
        return run_accuracy_loop(args, table, space, name)
    progress = None if args.json else search_progress()
    study = run_search(table, space, budget_ms=args.budget_ms, trials=args.trials, objectives=args.objectives,
                       proxy=args.proxy, sampler=args.sampler, storage=args.storage, study_name=name, seed=args.seed,
                       table_path=str(args.table),
                       progress=progress and (lambda done, total, feasible, size: progress(
                           done, total, feasible=feasible, front=size)))
    rows = front_rows(front(study))
    summary = {"study": name, "storage": args.storage or "evit-nas.journal", "trials": args.trials,
               "front": [{k: v for k, v in r.items() if k != "spec"} for r in rows]}
    if args.json:
        print_json(summary)
        return 0
    print(f"study {name!r} in {summary['storage']}: {len(rows)} networks on the feasible Pareto front "
          f"(budget {args.budget_ms:g} ms on {table.meta['device']})")
    print_front(rows)
    print(f"\nexport them: evit-nas pareto --storage {summary['storage']} --study {name} --export DIR")
    return 0


def run_accuracy_loop(args: argparse.Namespace, table: Any, space: Any, name: str) -> int:
    """``search --rounds R``: the accuracy-aware loop (nas.loop.run_loop)."""
    import sys
    from pathlib import Path

    from nas.loop import run_loop
    from nas.validate import default_recipe, open_datasets, safe_name, training_resolution

    kind = args.train_data.partition(":")[0]
    resolution = training_resolution(args.train_data)
    recipe = default_recipe(kind, resolution, args.train_steps, args.train_batch_size, args.seed)
    train_set, val_set = open_datasets(args.train_data, resolution)
    out = Path(args.loop_out or Path("loop") / safe_name(name))
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    record = run_loop(table, space, budget_ms=args.budget_ms, trials=args.trials, rounds=args.rounds,
                      per_round=args.train_per_round, dataset=args.train_data, recipe=recipe, train_set=train_set,
                      val_set=val_set, work_dir=out, storage=args.storage, study_name=name, seed=args.seed,
                      table_path=str(args.table), start_predictor=args.start_predictor, device=args.train_device,
                      workers=args.train_workers, log=say)
    if args.json:
        print_json({"loop": str(out / "loop.json"), **record})
        return 0
    print(f"\n{'round':>5}{'trained':>9}{'predictor CV tau':>18}{'best mIoU (%)':>15}{'at (ms)':>9}{'B0 mIoU (%)':>13}")
    for r in record["round"]:
        tau = "" if r["predictor_cv_kendall"] is None else f"{r['predictor_cv_kendall']:+.3f}"
        print(f"{r['round']:>5}{len(r['trained']):>9}{tau:>18}{r['best']['miou']:>15.1f}{r['best']['latency_ms']:>9.2f}"
              f"{r['reference_miou']:>13.1f}")
    b0_ms = record["reference_latency_ms"]
    print(("" if b0_ms is None else f"\nB0 predicted at {b0_ms:.2f} ms on this table; ") + f"wrote {out / 'loop.json'} "
          f"(per round: front, predicted against measured mIoU); the last round's study is {name}-round{args.rounds - 1}")
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from nas.search import export_front, front, load_study

    study = load_study(args.storage, args.study)
    members = front(study)
    attrs = study.user_attrs
    rows = front_rows(members)
    if args.export:
        export_front(study, args.export, onnx=not args.no_onnx)
    if args.json:
        print_json({"study": args.study, "budget_ms": attrs.get("budget_ms"), "objectives": attrs.get("objectives"),
                    "front": rows})
        return 0
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    print(f"study {args.study!r}: {complete} trials, budget {attrs.get('budget_ms'):g} ms on "
          f"{attrs.get('table_meta', {}).get('device')} at {'x'.join(map(str, attrs.get('table_meta', {}).get('resolution', [])))}, "
          f"objectives {','.join(attrs.get('objectives', []))} (proxy: {attrs.get('proxy')}); "
          f"{len(members)} networks on the feasible front")
    print_front(rows)
    if args.export:
        print(f"\nwrote {len(rows)} ArchSpec JSON{'' if args.no_onnx else ' + ONNX'} files and front.csv to {args.export}")
    return 0
