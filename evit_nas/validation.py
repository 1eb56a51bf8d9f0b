"""The ``validate`` command: brief training of a study's front (or of named networks)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from search_space.spec import DATASETS

from .args import CLIError, add_force, add_json, billions, millions, parse_resolution, print_json, refuse_existing, resolve
from .progress import Progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="train a study's front networks briefly and measure their mIoU",
                       description="Check a search by brief training: take K networks spread along the latency axis "
                       "of a study's feasible Pareto front (the fastest, the slowest, the rest evenly spaced), or the "
                       "NETWORKs given, plus EfficientViT-B0 as a reference; train each with the same short recipe "
                       "(AdamW, warm-up + cosine, crops of the resolution) for the dataset's classes, and evaluate "
                       "mIoU and pixel accuracy on its validation split. Writes OUT/results.csv (one row per network: "
                       "spec, predicted latency, MACs, params, mIoU, recipe, timings, device) and OUT/checkpoints/; "
                       "with a study, also the study user attributes validation:<trial> and validation:reference. "
                       "Resumable: rerun the same command after an interruption; finished networks are not "
                       "retrained and an interrupted one resumes from its last checkpoint.")
    p.add_argument("networks", metavar="NETWORK", nargs="*",
                   help="registered names or ArchSpec JSON files to train instead of a study's front")
    p.add_argument("--storage", help="Optuna storage of the study (default: evit-nas.journal)")
    p.add_argument("--study", help="study name (from evit-nas search)")
    p.add_argument("--top-k", type=int, metavar="K", help="with --study: how many front networks to train")
    p.add_argument("--dataset", default="synthetic", metavar="DATASET",
                   help="synthetic (generated, nothing to download), cityscapes:PATH, ade20k:PATH or camvid:PATH "
                   "(CamVid as in the SegNet tutorial: SPLIT/NAME.jpg|png + SPLITannot/NAME.png) (default: synthetic)")
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW",
                   help="training crop and synthetic image size (default: 128x256 for synthetic, whose task scales "
                   "with the image; 192x256 for camvid, trained at 240x320; for cityscapes and ade20k the study's "
                   "table resolution, else 512x1024 and 512x512)")
    p.add_argument("--steps", type=int, default=400, help="training steps per network (default: 400)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation and batch order seed (default: 0)")
    p.add_argument("--out", metavar="DIR", help="results folder (default: validation/STUDY or validation/networks)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where to train: cpu, cuda, or auto (cuda when available) (default: cpu)")
    p.add_argument("--amp", action="store_true", help="mixed precision (bfloat16 autocast, float16 where the GPU lacks "
                   "bfloat16); CUDA only, refused on a CPU")
    p.add_argument("--no-reference", action="store_true", help="do not train the B0 reference")
    p.add_argument("--no-progress", action="store_true", help="no training progress bar")
    q = p.add_argument_group(
        "training in workers", "with --queue the networks are queued in the study's storage (the queue STUDY.train-queue) "
        "instead of trained here, and `evit-nas worker --storage URL --study STUDY` processes on any machines train "
        "them and record their results in the study. Run the same validate command again to see the queue and "
        "gather the finished rows into OUT/results.csv")
    q.add_argument("--queue", action="store_true", help="queue the networks for workers (needs --study)")
    q.add_argument("--wait", action="store_true", help="with --queue: wait until workers have trained them all")
    q.add_argument("--heartbeat-s", type=int, default=60, metavar="S",
                   help="with --queue, for a new queue: workers beat a heartbeat every S seconds, and the network of "
                   "a worker silent for 3 x S seconds goes back to the queue (default: 60)")
    add_json(p, "machine-readable rows on standard output")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("predictor", help="fit the learned accuracy predictor on validated networks",
                       description="Fit the learned accuracy predictor (--proxy learned:FILE in `evit-nas search`) on "
                       "the networks that `evit-nas validate` trained: a ridge regression on a few features of each "
                       "network (params, MACs, depth, width, attention blocks, scales, head), its strength chosen by "
                       "leave-one-out. Networks trained more than once (several seeds) count once, with their mean "
                       "mIoU. Prints the leave-one-out Kendall tau: how well it ranks networks it was not fitted on.")
    fit = p.add_subparsers(dest="predictor_command", metavar="ACTION", required=True).add_parser(
        "fit", help="fit on results CSVs of evit-nas validate", description="Fit on results CSVs of evit-nas validate.")
    fit.add_argument("results", nargs="+", metavar="RESULTS", help="results.csv files written by evit-nas validate")
    fit.add_argument("-o", "--output", required=True, help="predictor JSON to write")
    fit.add_argument("--dataset", help="use the rows of this dataset only (needed when the files mix datasets)")
    fit.add_argument("--steps", type=int, help="use the rows trained this many steps only (needed when they mix)")
    add_force(fit, "replace an existing predictor file")
    add_json(fit, "machine-readable summary")
    fit.set_defaults(func=cmd_predictor_fit)


def cmd_predictor_fit(args: argparse.Namespace) -> int:
    from nas.predictor import fit_predictor, training_conditions
    from nas.validate import read_results
    from search_space import ArchSpec
    from search_space.network import network_from_dict

    refuse_existing(Path(args.output), args.force, "-o path")
    rows = []
    for path in args.results:
        if not Path(path).is_file():
            raise CLIError(f"{path}: no such results file (evit-nas validate writes OUT/results.csv)")
        rows += [r for r in read_results(path) if r["miou"] is not None and r["spec"]
                 and isinstance(network_from_dict(json.loads(r["spec"])), ArchSpec)]  # not the peers
    for column, wanted in (("dataset", args.dataset), ("steps", args.steps)):
        if wanted is not None:
            rows = [r for r in rows if str(r[column]).partition(":")[0] == str(wanted)]
        values = sorted({str(r[column]).partition(":")[0] for r in rows})
        if len(values) > 1:
            raise CLIError(f"the results mix {column}s ({', '.join(values)}); choose one with --{column}")
    by_spec: dict[str, list[float]] = {}
    for r in rows:
        by_spec.setdefault(r["spec"], []).append(float(r["miou"]))
    specs = [ArchSpec.from_json(spec) for spec in by_spec]
    miou = [sum(v) / len(v) for v in by_spec.values()]
    conditions = {json.dumps(training_conditions(r["dataset"], json.loads(r["recipe"])), sort_keys=True)
                  if r["recipe"] and r["dataset"] else None for r in rows}  # rows of older files record no recipe
    predictor = fit_predictor(specs, miou, source=", ".join(map(str, args.results)),
                              trained_with=json.loads(conditions.pop()) if len(conditions) == 1 and None not in conditions
                              else None)
    predictor.save(args.output)
    result = {"predictor": args.output, "networks": predictor.networks, "cv_kendall": predictor.cv_kendall,
              "cv_spearman": predictor.cv_spearman}
    if args.json:
        print_json(result)
    else:
        print(f"wrote {args.output}: fitted on {predictor.networks} networks; cross-validated Kendall tau "
              f"{predictor.cv_kendall:+.3f}, Spearman {predictor.cv_spearman:+.3f} (each network predicted by a fit "
              f"that did not see it). Use it with `evit-nas search ... --proxy learned:{args.output}`")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from nas.search import load_study
    from nas.validate import Entry, default_recipe, front_entries, open_datasets, safe_name, training_resolution, validate

    if not args.study and not args.networks:
        raise CLIError("give --study NAME --top-k K (networks of a search's front), or NETWORK arguments "
                       "(with --study too, their results are recorded in that study)")
    kind = args.dataset.partition(":")[0]
    study = None
    entries = [Entry(*resolve(n, kind if kind in DATASETS else "cityscapes", peers=True)) for n in args.networks]
    if args.study:
        if args.top_k is None and not args.networks:
            raise CLIError("--study needs --top-k K (how many networks of the front to train) or NETWORK arguments")
        study = load_study(args.storage, args.study)
        if args.top_k is not None:
            entries = front_entries(study, args.top_k) + entries
    elif args.top_k is not None:
        raise CLIError("--top-k picks networks of a study's front: give --study NAME too")
    resolution = training_resolution(args.dataset, args.resolution, study)
    recipe = default_recipe(kind, resolution, args.steps, args.batch_size, args.seed)
    train_set, val_set = open_datasets(args.dataset, resolution)
    out = Path(args.out or Path("validation") / safe_name(args.study or "networks"))
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    if args.queue:
        return queue_validation(args, entries, study, recipe, train_set, out, say)
    if args.wait:
        raise CLIError("--wait waits for queued networks: give --queue too")
    say(f"training {len(entries)} network(s){'' if args.no_reference else ' + B0 reference'} on {args.dataset} at "
        f"{resolution[0]}x{resolution[1]}: {recipe.steps} steps of batch {recipe.batch_size}, seed {recipe.seed}; "
        f"results in {out}")
    rows = validate(entries, train_set, val_set, dataset=args.dataset, recipe=recipe, work_dir=out, device=args.device,
                    amp=args.amp, study=study, reference=not args.no_reference,
                    progress=None if args.no_progress else Progress("train", "step"), log=say)
    if args.json:
        print_json({"results": str(out / "results.csv"), "study": args.study, "rows": _parsed(rows)})
        return 0
    print_rows(rows)
    print(f"\nwrote {out / 'results.csv'}" + (f"; study {args.study!r} has the results as user attributes "
                                                "validation:<trial> and validation:reference" if study else ""))
    return 0


def _parsed(rows: list[dict]) -> list[dict]:
    parsed = ("spec", "recipe", "per_class_iou")
    return [{k: json.loads(v) if k in parsed else v for k, v in r.items()} for r in rows]


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'network':<22}{'latency (ms)':>13}{'MACs (G)':>10}{'params (M)':>12}{'mIoU (%)':>10}{'pixel acc (%)':>15}")
    for r in rows:
        latency = "" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"
        print(f"{r['network']:<22}{latency:>13}{billions(r['macs']):>10}{millions(r['params']):>12}{r['miou']:>10.1f}"
              f"{r['pixel_accuracy']:>15.1f}")


def queue_validation(args: argparse.Namespace, entries: list, study: object, recipe: object, train_set: object,
                     out: Path, say: object) -> int:
    """``validate --queue``: queue the networks (again: report the queue and gather the rows)."""
    from nas.queue import submit

    if study is None:
        raise CLIError("--queue puts the networks in the queue of a study: give --storage and --study NAME too")
    if args.amp:
        say("note: --amp networks need CUDA workers; a CPU worker refuses them")
    done = submit(entries, num_classes=train_set.num_classes, dataset=args.dataset, recipe=recipe, work_dir=out,
                  storage=args.storage, study_name=args.study, reference=not args.no_reference, amp=args.amp,
                  heartbeat_s=args.heartbeat_s, wait=args.wait, log=say)
    status, rows = done["status"], done["rows"]
    if args.json:
        print_json({**{k: v for k, v in done.items() if k not in ("status", "rows")},
                    "storage": args.storage or "evit-nas.journal",
                    **{k: status[k] for k in ("done", "training", "waiting", "failed", "retried", "workers", "errors")},
                    "results": str(out / "results.csv") if rows else None, "rows": _parsed(rows)})
        return 0
    say(f"{status['done']}/{done['networks']} trained, {status['training']} training, {status['waiting']} waiting"
        + (f", {status['failed']} failed: " + "; ".join(status["errors"]) if status["failed"] else ""))
    if rows:
        print_rows(rows)
        print(f"\nwrote {len(rows)} finished row(s) to {out / 'results.csv'}"
              + ("" if len(rows) == done["networks"] else "; rerun this command to gather the rest"))
    return 0
