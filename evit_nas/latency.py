"""Commands about device latency: ``profile`` (build a table) and ``latency predict |
validate | measure | explain``."""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from pathlib import Path

from search_space.network import check_input_size
from search_space.registry import default_resolution, resolve_network

from .args import (PRECISION_CHOICES, CLIError, add_dataset, add_force, add_json, add_network, add_precision, add_remote, add_space,
                   add_timing, billions, host_name, load_space, millions, network_arg, parse_input_size,
                   quant_calibration, warn_float_ops,
                   parse_resolution, parse_threads, print_json,
                   refuse_existing, remote_target, resolve, timing_arg, warn_about_table)
from .progress import Progress

#: networks timed by --adapt-from, and their timed visits (latency_tables.adapt.DEFAULT_NETWORKS and
#: DEFAULT_REPEATS; not imported: it loads torch)
DEFAULT_ADAPT_NETWORKS = 6
DEFAULT_ADAPT_REPEATS = 10
#: visits per model of a full profile
DEFAULT_REPEATS = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure a device into a latency table",
                       description="Export every block the search space can produce (or the blocks of given networks) "
                       "to ONNX, time each with onnxruntime on the device, and write a latency table with its metadata. "
                       "Interrupt it at any time: the next run resumes. An existing table is extended, never lost.")
    p.add_argument("--device", default=host_name(), help="a name for the device (default: this host's name)")
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW", help="network input size the table is for")
    p.add_argument("--threads", type=parse_threads, help="onnxruntime intra-op threads (default: 1; with --adapt-from the "
                   "source table's; another count than the source's needs the blocks timed here, --adapt-blocks, "
                   "the default for fp32 tables)")
    add_timing(p, repeats=None, repeats_help=f"{DEFAULT_REPEATS}; with --adapt-from {DEFAULT_ADAPT_REPEATS}")
    p.add_argument("-o", "--output", help="table file (default: DEVICE_HxW_tTHREADS.csv)")
    p.add_argument("--adapt-from", metavar="SOURCE", help="adapt this table (of another device) to this device by "
                   "timing a few whole networks here (or on --remote), instead of every block; with --resolution, to "
                   "that input size too (default: the source's)")
    p.add_argument("--networks", type=int, default=DEFAULT_ADAPT_NETWORKS,
                   help=f"with --adapt-from: networks timed (default: {DEFAULT_ADAPT_NETWORKS}); with --budget-minutes, "
                   "the first round")
    p.add_argument("--budget-minutes", type=float, metavar="M",
                   help="with --adapt-from: keep timing more networks (spread between those already timed) while the "
                   "whole adaptation stays within M minutes; more networks give a steadier fit")
    p.add_argument("--front-networks", type=int, default=6, metavar="N",
                   help="with --adapt-from: also time N networks like those a search returns (the most MACs per "
                   "predicted ms across the latency range), so that the table is right where the search picks "
                   "(default: 6; 0: none)")
    p.add_argument("--adapt-blocks", action=argparse.BooleanOptionalAction, default=None,
                   help="with --adapt-from: also time the blocks of the timed networks here (about 40 s more at "
                   "256x512), correct every row of the source by its block's ratio learnt from them, and keep the "
                   "source's calibration in shape (default: on for fp32 tables; int8 tables adapt without it). "
                   "Measured on the AMD VM against a plain loop: see docs/results/latency.md, 'Adaptation judged "
                   "afterwards by a plain loop'")
    p.add_argument("--adapt-window", type=float, metavar="SECONDS", default=None,
                   help="with --adapt-from: time the networks in repeated passes for at least SECONDS (default: "
                   "60; 0: one pass), and on up to twice as long while the table's scale is uncertain by more than "
                   "1.5%%: a short window takes whatever speed the machine had then")
    add_force(p, "with --adapt-from: replace an existing output table")
    add_dataset(p)
    add_space(p)
    p.add_argument("--blocks-from", nargs="+", metavar="NETWORK", help="profile only the blocks of these networks")
    p.add_argument("--calibration", type=int, default=40, help="end-to-end networks timed to calibrate (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration networks (default: 0)")
    p.add_argument("--export-only", metavar="DIR", help="only write the bundle (ONNX + manifest + profile.py) to DIR")
    p.add_argument("--import", dest="import_results", metavar="RESULTS", help="import a results CSV timed on a device")
    p.add_argument("--bundle", metavar="DIR", help="with --import: the bundle it was timed from")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder (bundle, raw results)")
    add_precision(p, default=None, default_help="fp32; an existing table's or --adapt-from's own")
    add_json(p, "machine-readable summary")
    add_remote(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("latency", help="predict latency from a table, or check a table",
                       description="Predict a network's latency from a device table, or validate the table against "
                       "end-to-end measurements.")
    lat = p.add_subparsers(dest="latency_command", metavar="ACTION", required=True)
    q = lat.add_parser("predict", help="predicted latency of a network",
                       description="Predict a network's end-to-end latency (ms, batch 1) on the table's device.")
    q.add_argument("--table", required=True, help="latency table CSV")
    add_network(q)
    q.add_argument("--resolution", type=parse_resolution, metavar="HxW", help="must be the table's (default: it)")
    q.add_argument("--threads", type=parse_threads, help="refuse the table unless it was measured with this many threads")
    q.add_argument("--force", action="store_true", help="use a table with another thread count, with a warning")
    add_json(q)
    q.set_defaults(func=cmd_latency_predict)

    q = lat.add_parser("validate", help="predicted against measured latency on held-out networks",
                       description="Sample held-out networks (plus B0-B3 where the space has them), time each end to end "
                       "with the table's protocol, and report how well the table predicts them: share within ±5%% and "
                       "±10%%, MAPE, Spearman, and the same for a MACs-proportional baseline. Writes a CSV and a PNG.")
    q.add_argument("--table", required=True, help="latency table CSV")
    q.add_argument("--samples", type=int, default=20, help="random held-out networks (default: 20)")
    q.add_argument("--seed", type=int, default=1, help="sampling seed (default: 1)")
    add_dataset(q)
    add_space(q)
    q.add_argument("-o", "--output", default="latency_validation", help="folder for the CSV and PNG (default: latency_validation)")
    q.add_argument("--force", action="store_true", help="measure despite another onnxruntime version, with a warning")
    add_timing(q)
    add_json(q, "machine-readable summary")
    add_remote(q)
    q.set_defaults(func=cmd_latency_validate)

    q = lat.add_parser("measure", help="end-to-end latency of networks, peers included",
                       description="Export networks whole to ONNX and time them end to end with the table protocol "
                       "(onnxruntime, batch 1, warm-up, interleaved repeats, median and p10/p90), here or over SSH. "
                       "Takes EfficientViT networks, ArchSpec files and the peers (segformer_b0..b3, segnext_t/s), so "
                       "all are measured the same way on the same device. With --table, the device, threads and "
                       "resolution default to the table's and EfficientViT networks get its prediction alongside.")
    q.add_argument("networks", metavar="NETWORK", nargs="+",
                   help="registered names, peers, ImageNet classifiers or ArchSpec JSON files")
    add_dataset(q, any_network=True)
    q.add_argument("--table", help="latency table: defaults for device, threads, resolution; predictions to compare")
    q.add_argument("--resolution", type=parse_input_size, metavar="HxW",
                   help="input size (default: the table's, else the networks' own when they agree)")
    q.add_argument("--threads", type=parse_threads, help="onnxruntime intra-op threads (default: the table's, else 1)")
    q.add_argument("--device", help="a name for the device (default: the table's, else this host's name)")
    q.add_argument("-o", "--output", help="write the rows to this CSV (metadata as # lines)")
    q.add_argument("--work", metavar="DIR", help="work folder for the ONNX files (default: OUTPUT.work); removed after")
    add_force(q)
    add_timing(q)
    add_precision(q, default=None, default_help="the table's, else fp32")
    add_json(q)
    add_remote(q)
    q.set_defaults(func=cmd_latency_measure)

    q = lat.add_parser("explain", help="where a network's time goes: by operator, category and block",
                       description="Export a network whole to ONNX (batch 1) and time it with onnxruntime as the "
                       "tables do (same session options and threads), then run it again with onnxruntime's own "
                       "profiler on, and split its time by operator type (Conv, MatMul, Resize, ... as onnxruntime "
                       "runs them, after its fusions), by category (depthwise conv, pointwise conv, matmul, resize, "
                       "normalisation, activation, elementwise, data movement, ...) and by block (the nodes' module "
                       "path, e.g. backbone/stages.2/op_list.1). Each figure is a median over the timed runs. "
                       "Coverage is the profiled node time over the measured wall clock: what the nodes account "
                       "for; the rest is time between nodes and noise. Takes what `latency measure` takes.")
    q.add_argument("network", metavar="NETWORK",
                   help="registered name, peer, ImageNet classifier or ArchSpec JSON file")
    add_dataset(q, any_network=True)
    q.add_argument("--resolution", type=parse_input_size, metavar="HxW", help="input size (default: the network's own)")
    q.add_argument("--threads", type=parse_threads, default=1, help="onnxruntime intra-op threads (default: 1)")
    q.add_argument("--block-depth", type=int, default=3, metavar="N",
                   help="module path components that name a block (default: 3, e.g. backbone/stages.2/op_list.1; "
                   "2 gives stages)")
    add_timing(q)
    add_json(q, "print the whole explanation as JSON")
    q.add_argument("--csv", metavar="FILE", help="write the operator-type rows to this CSV (metadata as # lines)")
    q.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32",
                   help="fp32, or int8 quantized as `--precision int8` does (calibrated on unit-normal inputs: the "
                   "scales change, the kernels and their times do not) (default: fp32)")
    add_force(q, "replace an existing --csv file")
    q.set_defaults(func=cmd_latency_explain)


def cmd_adapt(args: argparse.Namespace) -> int:
    from latency_tables.adapt import DEFAULT_WINDOW_S, adapt_table, blocks_by_default
    from latency_tables.table import LatencyTable

    source = LatencyTable.load(args.adapt_from)
    if args.blocks_from or args.import_results or args.export_only:
        raise CLIError("--adapt-from times whole networks only: it does not combine with --blocks-from, --import "
                       "or --export-only")
    if args.budget_minutes is not None and args.budget_minutes <= 0:
        raise CLIError(f"--budget-minutes {args.budget_minutes:g}: give a positive number of minutes")
    source.check(precision=args.precision)  # the adapted table keeps the source's precision
    args.precision = source.precision
    time_blocks = blocks_by_default(source) if args.adapt_blocks is None else args.adapt_blocks
    args.resolution = source.resolution if args.resolution is None else tuple(args.resolution)
    args.threads = int(source.meta["threads"]) if args.threads is None else args.threads
    args.repeats = DEFAULT_ADAPT_REPEATS if args.repeats is None else args.repeats
    output = _table_path(args)
    refuse_existing(output, args.force, "-o path")
    remote = remote_target(args)
    if remote is not None:
        from latency_tables.remote import check_remote

        check_remote(remote)
    print(f"adapting {args.adapt_from} ({source.meta.get('cpu')}) to {args.remote or 'this machine'}: timing "
          f"{args.networks} networks" + (f" and {args.front_networks} like a search's front" if args.front_networks else "")
          + f" end to end at {args.resolution[0]}x{args.resolution[1]}"
          + (f" (more while {args.budget_minutes:g} min last)" if args.budget_minutes else "") + ", "
          f"{args.threads} thread(s)" + (", then their blocks" if time_blocks else ""), file=sys.stderr)
    budget_s = args.budget_minutes * 60 if args.budget_minutes else None
    table = adapt_table(source, output, space=load_space(args), networks=args.networks, budget_s=budget_s,
                        window_s=DEFAULT_WINDOW_S if args.adapt_window is None else args.adapt_window,
                        front_networks=args.front_networks, resolution=args.resolution, time_blocks=time_blocks,
                        seed=args.seed, device=args.device, threads=args.threads, warmup=args.warmup,
                        repeats=args.repeats, log=lambda line: print(line, file=sys.stderr),
                        remote=remote, export_progress=Progress("export", "network"))
    cal = table.calibration
    result = {"table": str(output), "adapted_from": str(args.adapt_from), "networks_timed": cal.networks,
              "fit_mape_pct": cal.fit_mape, "cross_validated_mape_pct": cal.cv_mape,
              "reference_ms": table.meta["reference"]["median_ms"], "seconds": table.meta["build_seconds"],
              "passes": table.meta["adapted_from"]["rounds"][0].get("passes", 1),
              "scale_uncertainty_pct": table.meta["adapted_from"].get("scale_uncertainty_pct")}
    if args.json:
        print_json(result)
    else:
        loo = "" if cal.cv_mape is None else f", leave-one-out MAPE {cal.cv_mape}%"
        scale = ("" if result["scale_uncertainty_pct"] is None else
                 f" ±{result['scale_uncertainty_pct']:.1f}% (the table's scale, from {result['passes']} passes)")
        print(f"wrote {output}: adapted from {args.adapt_from} with {cal.networks} networks timed here "
              f"(fit MAPE {cal.fit_mape}%{loo}), reference B0 {result['reference_ms']:.2f} ms{scale}, "
              f"{result['seconds']:.0f} s")
    return 0


def _table_path(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    h, w = args.resolution
    suffix = "" if args.precision in (None, "fp32") else f"_{args.precision}"
    return Path(f"{args.device}_{h}x{w}_t{args.threads}{suffix}.csv")


def _warn_table_float_ops(table) -> None:
    from latency_tables.quantize import table_float_ops_line

    line = table_float_ops_line(table.meta.get("int8_float_ops"))
    if line:
        print(line, file=sys.stderr)


def _entry_label(entry: dict) -> str:
    """A bundle entry as a warning names it: a block by its key, a network by its summary."""
    from search_space.blocks import BlockKey
    from search_space.network import network_from_dict

    if entry["type"] == "block":
        return f"block {BlockKey.from_dict(entry['key'])}"
    return f"{entry['type']} {network_from_dict(entry['spec']).summary()}"


def cmd_profile(args: argparse.Namespace) -> int:
    from latency_tables.build import export_plan, import_results, plan_profile, profile_table
    from latency_tables.bundle import load_bundle
    from latency_tables.table import LatencyTable

    if args.adapt_from:
        return cmd_adapt(args)
    if args.budget_minutes is not None:
        raise CLIError("--budget-minutes goes with --adapt-from SOURCE (a full profile times every block)")
    if args.adapt_window is not None:
        raise CLIError("--adapt-window goes with --adapt-from SOURCE (a full profile times every block)")
    if args.adapt_blocks:
        raise CLIError("--adapt-blocks goes with --adapt-from SOURCE (a full profile times every block)")
    args.threads = 1 if args.threads is None else args.threads
    args.repeats = DEFAULT_REPEATS if args.repeats is None else args.repeats
    if args.import_results:
        if not args.bundle:
            raise CLIError("--import needs --bundle DIR (the bundle the results were measured from)")
        if args.resolution is None and not args.output:
            raise CLIError("give -o TABLE (the table to write or extend) with --import")
    elif args.resolution is None:
        raise CLIError("give --resolution HxW (the input size the table is for, e.g. 512x1024)")
    output = _table_path(args)
    if args.import_results:
        base = LatencyTable.load(output) if output.exists() else None
        table = import_results(load_bundle(args.bundle), args.import_results, base)
        table.save(output)
        _warn_table_float_ops(table)
        print(f"wrote {output}: {len(table.rows)} blocks from {args.import_results}")
        return 0
    remote = remote_target(args)
    if remote is not None and not args.export_only:
        from latency_tables.remote import check_remote

        check_remote(remote)  # an unreachable host fails at once, before planning and exporting
    space = load_space(args)
    existing = LatencyTable.load(output) if output.exists() and not args.export_only else None
    precision = args.precision or (existing.precision if existing is not None else "fp32")
    blocks_from = [resolve_network(n, args.dataset) for n in args.blocks_from or ()]
    plan = plan_profile(args.resolution, space, blocks_from=blocks_from, calibration_networks=args.calibration,
                        seed=args.seed, existing=existing, precision=precision,
                        calibration=quant_calibration(args, args.resolution, precision))
    if existing is not None:
        print(f"extending {output}: {len(existing.rows)} blocks kept, {len(plan.blocks)} to measure", file=sys.stderr)
    if args.export_only:
        manifest = export_plan(args.export_only, plan, progress=Progress("export", "model"))
        warn_float_ops(manifest["entries"], _entry_label)
        print(f"wrote bundle {args.export_only} ({len(manifest['entries'])} models). On the device (numpy + onnxruntime):\n"
              f"  python3 {args.export_only}/profile.py run {args.export_only} -o results.csv --threads {args.threads} "
              f"--device {args.device}\nthen here:\n  evit-nas profile --import results.csv --bundle {args.export_only} -o {output}")
        return 0
    if not plan.blocks and not plan.networks:
        print(f"{output} already has every block; nothing to measure")
        return 0
    print(f"measuring {len(plan.blocks)} blocks and {len(plan.networks)} calibration networks at "
          f"{args.resolution[0]}x{args.resolution[1]}, {precision}, {args.threads} thread(s), on "
          f"{args.remote or 'this machine'}", file=sys.stderr)
    table = profile_table(output, plan, device=args.device, threads=args.threads, warmup=args.warmup,
                          repeats=args.repeats, remote=remote, keep_work=args.keep_work,
                          export_progress=Progress("export", "model"))
    _warn_table_float_ops(table)
    cal = table.calibration
    result = {"table": str(output), "precision": table.precision, "blocks": len(table.rows),
              "calibration_networks": cal.networks,
              "calibration_fit_mape_pct": cal.fit_mape, "reference_ms": table.meta["reference"]["median_ms"]}
    if args.json:
        print_json(result)
    else:
        print(f"wrote {output} ({table.precision}): {len(table.rows)} blocks, calibrated on {cal.networks} networks "
              f"(fit MAPE {cal.fit_mape}%), reference B0 {result['reference_ms']:.2f} ms")
    return 0


def cmd_latency_predict(args: argparse.Namespace) -> int:
    from latency_tables.table import LatencyTable

    label, spec = network_arg(args)
    table = LatencyTable.load(args.table)
    resolution = args.resolution or table.resolution
    for warning in table.check(resolution=resolution, threads=args.threads, force=args.force):
        print(warning, file=sys.stderr)
    warn_about_table(table)
    predicted = table.predict_ms(spec, resolution)
    stages = table.breakdown_ms(spec, resolution)
    info = {k: table.meta.get(k) for k in ("device", "cpu", "arch", "threads", "onnxruntime", "date")}
    info["precision"] = table.precision
    if args.json:
        print_json({"network": label, "resolution": list(resolution), "predicted_ms": predicted, "stages_ms": stages,
                    "table": str(args.table), **info})
        return 0
    print(f"{label}: {predicted:.2f} ms predicted at {resolution[0]}x{resolution[1]}, batch 1, {info['precision']}, "
          f"{info['threads']} thread(s), on {info['device']} ({info['cpu']}, {info['arch']}, onnxruntime {info['onnxruntime']})")
    for name, ms in stages.items():
        print(f"  {name:<9}{ms:>9.2f} ms")
    return 0


def cmd_latency_validate(args: argparse.Namespace) -> int:
    import onnxruntime

    from latency_tables.table import LatencyTable
    from latency_tables.validate import held_out_networks, measure_and_compare, summarise, write_csv, write_plot

    table = LatencyTable.load(args.table)
    space = load_space(args)
    remote = remote_target(args)
    checks = {"space_fingerprint": space.fingerprint()} if table.meta.get("coverage") == "space" else {}
    if remote is None:
        checks.update(arch=platform.machine(), onnxruntime=onnxruntime.__version__)
    for warning in table.check(force=args.force, **checks):
        print(warning, file=sys.stderr)
    networks = held_out_networks(space, table, args.samples, args.seed)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, meta = measure_and_compare(table, networks, work_dir=out_dir / "validate.work", warmup=args.warmup,
                                     repeats=args.repeats, remote=remote, export_progress=Progress("export", "network"))
    summaries = summarise(rows)
    stem = f"validate_{Path(args.table).stem}_n{args.samples}_s{args.seed}"
    csv_path, png_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.png"
    info = {"table": str(args.table), "device": meta.get("device"), "cpu": meta.get("cpu"), "arch": meta.get("arch"),
            "onnxruntime": meta.get("onnxruntime"), "threads": meta.get("threads"), "date": meta.get("date"),
            "resolution": "x".join(map(str, table.resolution)), "samples": args.samples, "seed": args.seed}
    write_csv(csv_path, rows, {**info, **{f"summary_{k}": v.line() for k, v in summaries.items()}})
    write_plot(png_path, rows, summaries, f"{table.meta['device']} {info['resolution']}, {info['threads']} thread(s): "
               f"{len(rows)} held-out networks")
    if args.json:
        print_json({"csv": str(csv_path), "png": str(png_path), **info, **{k: vars(v) for k, v in summaries.items()}})
        return 0
    print(f"{'network':<22}{'predicted':>10}{'measured':>10}{'error':>8}  spec")
    for r in rows:
        print(f"{r['name']:<22}{r['predicted_ms']:>9.2f} {r['measured_ms']:>9.2f} {r['error_pct']:>+7.1f}%  {r['summary']}")
    print(f"\nlatency table   : {summaries['table'].line()}")
    print(f"MACs baseline   : {summaries['macs_baseline'].line()}")
    print(f"(against raw timings, without the speed correction: table {summaries['table_raw'].line()})")
    print(f"wrote {csv_path} and {png_path}")
    return 0


def cmd_latency_measure(args: argparse.Namespace) -> int:
    from latency_tables.measure import MEASURE_COLUMNS, measure
    from latency_tables.table import LatencyTable
    from search_space.records import write_csv

    table = LatencyTable.load(args.table) if args.table else None
    networks = [resolve(n, args.dataset, peers=True) for n in args.networks]
    fixed = args.resolution or (tuple(table.resolution) if table else None)
    # one size for all (--resolution, the table's), else each network at its own default size
    groups: dict[tuple[int, int], list] = {}
    for name, (label, spec) in zip(args.networks, networks):
        size = check_input_size(spec, fixed or default_resolution(name, args.dataset))
        groups.setdefault(size, []).append((label, spec))
    threads = args.threads if args.threads is not None else int(table.meta["threads"]) if table else 1
    device = args.device or (table.meta["device"] if table else host_name())
    precision = args.precision or (table.precision if table else "fp32")
    if table is not None:
        for warning in table.check(threads=threads, arch=None if args.remote else platform.machine(), force=True,
                                   precision=precision):
            print(warning, file=sys.stderr)
    output = Path(args.output) if args.output else None
    if output is not None:
        refuse_existing(output, args.force, "-o path")
    work = Path(args.work or (str(output) + ".work" if output else "measure.work"))
    rows = []
    for (height, width), group in groups.items():
        print(f"measuring {len(group)} network(s) end to end at {height}x{width}, batch 1, {precision}, "
              f"{threads} thread(s), on {args.remote or 'this machine'}", file=sys.stderr)
        group_rows, meta = measure(group, (height, width), work_dir=work / f"{height}x{width}", device=device,
                                   timing=timing_arg(args, threads, precision), table=table,
                                   export_progress=Progress("export", "network"),
                                   calibration=quant_calibration(args, (height, width), precision))
        if meta.get("float_ops"):
            warn_float_ops([{"name": k, "float_ops": v} for k, v in meta["float_ops"].items()], lambda e: e["name"])
        rows += group_rows
    shutil.rmtree(work, ignore_errors=True)
    info = {"device": meta.get("device"), "cpu": meta.get("cpu"), "arch": meta.get("arch"),
            "onnxruntime": meta.get("onnxruntime"), "threads": threads, "date": meta.get("date"),
            "table": args.table, "warmup": args.warmup, "repeats": args.repeats, "precision": precision,
            **({"quant_calibration": meta.get("calibration")} if precision != "fp32" else {})}
    if output is not None:
        write_csv(output, MEASURE_COLUMNS, rows, info)
    if args.json:
        print_json({**info, "rows": rows, "csv": str(output) if output else None})
        return 0
    print(f"{'network':<26}{'input':>10}{'measured (ms)':>14}{'p10-p90 (ms)':>17}{'predicted (ms)':>16}{'MACs (G)':>10}"
          f"{'params (M)':>12}")
    for r in rows:
        predicted = "" if r["predicted_ms"] is None else f"{r['predicted_ms']:.2f}"
        print(f"{r['name']:<26}{r['resolution']:>10}{r['measured_ms']:>14.2f}{r['p10_ms']:>8.2f}-{r['p90_ms']:<8.2f}{predicted:>16}"
              f"{billions(r['macs']):>10}{millions(r['params']):>12}")
    print(f"\n{precision} on {info['device']} ({info['cpu']}, {info['arch']}, onnxruntime {info['onnxruntime']}); medians"
          + (" rescaled to the table's typical device speed" if table else "") + ". "
          "Peers are measured only (never table-predicted).")
    if output is not None:
        print(f"wrote {output}")
    return 0


#: rows of each table `latency explain` prints (operator types and blocks; every category)
EXPLAIN_TOP = 12


def cmd_latency_explain(args: argparse.Namespace) -> int:
    from latency_tables.explain import OP_TYPE_COLUMNS, explain
    from search_space.records import write_csv

    if args.block_depth < 1:
        raise CLIError("--block-depth must be at least 1")
    timing = timing_arg(args, args.threads, args.precision)
    label, spec = resolve(args.network, args.dataset, peers=True)
    height, width = check_input_size(spec, args.resolution or default_resolution(args.network, args.dataset))
    output = Path(args.csv) if args.csv else None
    if output is not None:
        refuse_existing(output, args.force, "--csv path")
    print(f"explaining {label} at {height}x{width}, batch 1, {args.precision}, {args.threads} thread(s): {args.warmup} warm-up and "
          f"{args.repeats} timed runs, plain and with onnxruntime's profiler in turn", file=sys.stderr)
    result = explain(spec, (height, width), timing, name=label, block_depth=args.block_depth)
    if result["float_ops"]:
        warn_float_ops([{"float_ops": result["float_ops"]}], lambda e: label)
    if output is not None:
        info = {k: result[k] for k in ("network", "resolution", "threads", "warmup", "repeats", "measured_ms",
                                        "profiled_total_ms", "coverage", "onnxruntime", "cpu", "arch")}
        write_csv(output, OP_TYPE_COLUMNS, [{"time_ms": f"{r['ms']:.6g}", "share": f"{r['share']:.6g}",
                                             "op_type": r["op_type"], "nodes": r["nodes"]}
                                            for r in result["by_op_type"]], info)
    if args.json:
        print_json(result)
        return 0
    print(f"{label} at {height}x{width}, batch 1, {result['threads']} thread(s), on {result['cpu']} "
          f"({result['arch']}, onnxruntime {result['onnxruntime']})")
    print(f"measured  {result['measured_ms']:9.2f} ms  wall clock, median of {result['repeats']} runs")
    print(f"profiled  {result['profiled_total_ms']:9.2f} ms  sum of the node times, median per run: "
          f"coverage {result['coverage'] * 100:.1f}%")
    for title, key, rows in (("category", "category", result["by_category"]),
                             ("operator type", "op_type", result["by_op_type"]),
                             ("block", "block", result["by_block"])):
        shown = rows if key == "category" else rows[:EXPLAIN_TOP]
        heading = title if len(shown) == len(rows) else f"{title} (top {len(shown)} of {len(rows)})"
        width_ = max([len(heading)] + [len(str(r[key])) for r in shown]) + 2
        print(f"\n{heading:<{width_}}{'time (ms)':>10}{'share':>8}{'nodes':>7}")
        for r in shown:
            print(f"{r[key]:<{width_}}{r['ms']:>10.2f}{r['share'] * 100:>7.1f}%{r['nodes']:>7}")
    print("\nTimes are node (kernel) times from onnxruntime's profiler, medians over the runs; operator types are "
          "as onnxruntime runs them, after fusing (a Conv carries its BatchNorm and activation).")
    if output is not None:
        print(f"wrote {output}")
    return 0
