"""The ``evit-nas`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from search_space.blocks import BLOCK_KINDS, check_resolution, network_blocks
from search_space.space import SearchSpace
from search_space.spec import ArchSpec, SpecError
from search_space.network import NetworkSpec, PeerSpec
from search_space.zoo import DATASETS, list_models, model_datasets, model_spec, resolve_any, resolve_network
from latency_tables.profile import ProfileError, write_atomic
from latency_tables.table import TableError
from nas.data import DatasetError
from nas.search import SearchError
from nas.train import TrainError
from nas.validate import ValidateError
from reports.report import ReportError

log = logging.getLogger("evit-nas")

MACS_NOTE = "MACs are multiply-accumulates as counted by fvcore (batch 1); params are trainable parameters"


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def parse_resolution(text: str) -> tuple[int, int]:
    """``"1024x2048"`` -> (1024, 2048) (H x W)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 1024x2048, got {text!r}") from None
    try:
        return check_resolution((height, width))
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def platform_node() -> str:
    import platform

    return (platform.node() or "device").split(".")[0]


def _version() -> str:
    try:
        return metadata.version("evit-nas")
    except metadata.PackageNotFoundError:
        return "unknown"


def _write_new(path: Path, text: str, force: bool) -> None:
    """Write ``text`` atomically; refuse to replace an existing file unless ``force``."""
    if path.exists() and not force:
        raise CLIError(f"{path} exists; choose another output path or pass --force to replace it")
    write_atomic(str(path), text)


def _network(args: argparse.Namespace) -> tuple[str, ArchSpec]:
    return _resolve(args.network, args.dataset)


def _resolve(network: str, dataset: str, peers: bool = False) -> tuple[str, NetworkSpec]:
    """A registered name, an ArchSpec file (or, with ``peers``, a peer's name) -> (label, spec);
    the label is the name or the file name."""
    spec = resolve_any(network, dataset) if peers else resolve_network(network, dataset)
    return (network if not Path(str(network)).is_file() else Path(network).name), spec


def _resolution(args: argparse.Namespace) -> tuple[int, int]:
    return args.resolution or DATASETS[args.dataset].resolution


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _m(n: int) -> str:
    return f"{n / 1e6:.3f}"


def _g(n: int) -> str:
    return f"{n / 1e9:.3f}"


# ----------------------------------------------------------------- commands
def cmd_models(args: argparse.Namespace) -> int:
    from nas.cost import count_params
    from search_space.peers import PEERS

    rows = []
    for name in list_models():
        for dataset in model_datasets(name):
            spec = model_spec(name, dataset)
            rows.append({
                "name": name,
                "dataset": dataset,
                "family": "EfficientViT",
                "params": count_params(spec),
                "resolution": list(DATASETS[dataset].resolution),
                "widths": list(spec.widths),
                "depths": list(spec.depths),
            })
    peers = [{"name": p.name, "dataset": dataset, "family": p.family, "params": count_params(p),
              "resolution": list(info.resolution), "summary": p.summary()}
             for p, dataset, info in ((PeerSpec(n, info.num_classes), d, info)
                                      for n in PEERS for d, info in DATASETS.items())]
    if args.json:
        _print_json(rows + peers)
        return 0
    print(f"{'network':<22}{'dataset':<12}{'params (M)':>11}  {'resolution':<11} widths / depths")
    for r in rows:
        res = "x".join(map(str, r["resolution"]))
        print(f"{r['name']:<22}{r['dataset']:<12}{_m(r['params']):>11}  {res:<11} {r['widths']} / {r['depths']}")
    print("\npeers (outside the search space: described, exported, measured and trained, never table-predicted):")
    for r in peers:
        res = "x".join(map(str, r["resolution"]))
        print(f"{r['name']:<22}{r['dataset']:<12}{_m(r['params']):>11}  {res:<11} {r['summary']}")
    print("\nNETWORK arguments also take an ArchSpec JSON file (see `evit-nas spec`).")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from nas.cost import block_macs, block_params, stage_costs

    label, spec = _resolve(args.network, args.dataset, peers=True)
    resolution = _resolution(args)
    if isinstance(spec, PeerSpec):
        return _describe_peer(args, label, spec, resolution)
    stages = stage_costs(spec, resolution)
    total_macs = sum(s["macs"] for s in stages.values())
    total_params = sum(s["params"] for s in stages.values())
    blocks = [
        {"stage": slot.stage, "index": slot.index, "role": slot.role, "key": key.to_dict(),
         "params": block_params(slot.key), "macs": block_macs(key)}
        for slot, key in network_blocks(spec, resolution)
    ] if args.blocks else None
    if args.json:
        out = {
            "network": label,
            "resolution": list(resolution),
            "spec": spec.to_dict(),
            "stages": stages,
            "total": {"params": total_params, "macs": total_macs},
            "units": {"macs": "multiply-accumulates (fvcore)", "params": "count"},
        }
        if blocks is not None:
            out["blocks"] = blocks
        _print_json(out)
        return 0
    print(f"{label} at {resolution[0]}x{resolution[1]} (H x W), {spec.num_classes} classes")
    print(f"  {spec.summary()}")
    print(f"\n{'stage':<8}{'blocks':>7}{'params':>12}{'MACs (M)':>12}{'share':>8}")
    for name, s in stages.items():
        print(f"{name:<8}{s['blocks']:>7}{s['params']:>12,}{s['macs'] / 1e6:>12,.1f}{s['macs'] / total_macs:>8.1%}")
    blocks_total = sum(s["blocks"] for s in stages.values())
    print(f"{'total':<8}{blocks_total:>7}{total_params:>12,}{total_macs / 1e6:>12,.1f}{1:>8.1%}")
    print(f"\n{total_params / 1e6:.3f} M params, {_g(total_macs)} G MACs")
    if blocks is not None:
        print(f"\n{'stage':<8}{'#':>3} {'role':<8}{'params':>11}{'MACs (M)':>11}  block")
        for slot, key in network_blocks(spec, resolution):
            print(f"{slot.stage:<8}{slot.index:>3} {slot.role:<8}{block_params(slot.key):>11,}"
                  f"{block_macs(key) / 1e6:>11.2f}  {key.describe()}")
    print(f"\n{MACS_NOTE}.")
    return 0


def _describe_peer(args: argparse.Namespace, label: str, spec: PeerSpec, resolution: tuple[int, int]) -> int:
    from nas.cost import count_macs, count_params

    params, macs = count_params(spec), count_macs(spec, resolution)  # peer MACs are cached on disk
    if args.json:
        _print_json({"network": label, "resolution": list(resolution), "spec": spec.to_dict(), "family": spec.family,
                     "total": {"params": params, "macs": macs},
                     "units": {"macs": "multiply-accumulates (fvcore)", "params": "count"}})
        return 0
    print(f"{label} at {resolution[0]}x{resolution[1]} (H x W): {spec.summary()}")
    print(f"\n{params / 1e6:.3f} M params, {_g(macs)} G MACs")
    print("(a peer is outside the search space: no per-block breakdown and no table prediction; "
          "measure it with `evit-nas latency measure`)")
    print(f"\n{MACS_NOTE}.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from search_space import load_checkpoint
    from search_space.network import build_network
    from nas.export import export_onnx, onnx_parity

    label, spec = _resolve(args.network, args.dataset, peers=True)
    resolution = _resolution(args)
    output = Path(args.output or f"{Path(label).stem}_{resolution[0]}x{resolution[1]}.onnx")
    if output.exists() and not args.force:
        raise CLIError(f"{output} exists; choose another -o path or pass --force to replace it")
    model = build_network(spec)
    if args.weights:
        load_checkpoint(model, args.weights)
    shape = (1, 3, *resolution)
    export_onnx(model, shape, output, opset=args.opset)
    result: dict[str, Any] = {"network": label, "output": str(output), "resolution": list(resolution),
                              "opset": args.opset, "bytes": output.stat().st_size}
    if not args.no_check:
        result["max_abs_diff"] = onnx_parity(model, output, shape)
        result["tolerance"] = args.tolerance
    if args.json:
        _print_json(result)
    else:
        print(f"wrote {output} ({result['bytes'] / 1e6:.1f} MB, opset {args.opset}, input 1x3x{resolution[0]}x{resolution[1]})")
        if "max_abs_diff" in result:
            print(f"onnxruntime vs torch on a random input: max abs difference {result['max_abs_diff']:.2e} "
                  f"(tolerance {args.tolerance:g})")
    if result.get("max_abs_diff", 0.0) > args.tolerance:
        print(f"evit-nas: error: the ONNX model differs from torch by more than {args.tolerance:g} "
              f"(the file is kept at {output} for inspection)", file=sys.stderr)
        return 1
    return 0


def _load_space(args: argparse.Namespace) -> SearchSpace:
    return SearchSpace.from_file(args.space) if args.space else SearchSpace.default(args.dataset)


def cmd_space(args: argparse.Namespace) -> int:
    space = _load_space(args)
    resolutions = args.resolution or [DATASETS[args.dataset].resolution]
    counts = {}
    for res in resolutions:
        keys = space.unique_blocks(res)
        counts["x".join(map(str, res))] = {"total": len(keys), **{k: sum(key.kind == k for key in keys) for k in BLOCK_KINDS}}
        if args.blocks_csv:
            lines = [",".join(["resolution", *keys[0].to_dict()])] if keys else []
            for key in keys:
                values = ["-".join(map(str, v)) if isinstance(v, list) else str(v) for v in key.to_dict().values()]
                lines.append(",".join(["x".join(map(str, res)), *values]))
            path = Path(args.blocks_csv) if len(resolutions) == 1 else Path(args.blocks_csv).with_suffix(f".{res[0]}x{res[1]}.csv")
            _write_new(path, "\n".join(lines) + "\n", args.force)
    b_series = {}
    for name in list_models():
        if name.startswith("efficientvit_seg_b"):
            try:
                spec = model_spec(name, args.dataset)
            except SpecError:
                continue
            b_series[name] = space.why_not(spec) or "in the space"
    out = {
        "decisions": {name: list(choices) for name, choices in space.decisions()},
        "size": space.size(),
        "fingerprint": space.fingerprint(),
        "unique_blocks": counts,
        "official_networks": b_series,
    }
    if args.json:
        _print_json(out)
        return 0
    print("decisions (name: choices):")
    for name, choices in out["decisions"].items():
        print(f"  {name:<22}{choices}")
    print(f"\nnetworks in the space: {out['size']:,} ({out['size']:.2e}); fingerprint {out['fingerprint']}")
    for res, c in counts.items():
        kinds = ", ".join(f"{k} {c[k]}" for k in BLOCK_KINDS)
        print(f"unique blocks at {res}: {c['total']} ({kinds})")
    for name, status in b_series.items():
        print(f"{name} ({args.dataset}): {status}")
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    if args.sample is not None:
        spec = _load_space(args).sample(args.sample)
    elif args.network:
        spec = resolve_network(args.network, args.dataset)
    else:
        raise CLIError("give a NETWORK (a registered name or an ArchSpec file) or --sample SEED")
    text = spec.to_json() + "\n"
    if args.output:
        _write_new(Path(args.output), text, args.force)
        print(f"wrote {args.output}: {spec.summary()}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# ----------------------------------------------------------------- latency
class _Progress:
    """tqdm bars fed by the (done, total) callbacks of the profiling code."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit, self.bar = desc, unit, None

    def __call__(self, done: int, total: int, *_: Any) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, dynamic_ncols=True, leave=True)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _remote(args: argparse.Namespace):
    from latency_tables.remote import SSHTarget

    if not args.remote:
        return None
    return SSHTarget(args.remote, port=args.port, identity=args.identity, python=args.remote_python,
                     options=tuple(args.ssh_option or ()))


def _table_path(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    h, w = args.resolution
    return Path(f"{args.device}_{h}x{w}_t{args.threads}.csv")


def cmd_profile(args: argparse.Namespace) -> int:
    from latency_tables.build import import_results, plan_profile, profile_table, reference_spec
    from latency_tables.bundle import export_bundle, load_bundle
    from latency_tables.table import LatencyTable

    output = _table_path(args)
    if args.import_results:
        if not args.bundle:
            raise CLIError("--import needs --bundle DIR (the bundle the results were measured from)")
        base = LatencyTable.load(output) if output.exists() else None
        table = import_results(load_bundle(args.bundle), args.import_results, base)
        table.save(output)
        print(f"wrote {output}: {len(table.rows)} blocks from {args.import_results}")
        return 0
    if args.resolution is None:
        raise CLIError("give --resolution HxW (the input size the table is for, e.g. 512x1024)")
    space = _load_space(args)
    existing = LatencyTable.load(output) if output.exists() and not args.export_only else None
    blocks_from = [resolve_network(n, args.dataset) for n in args.blocks_from or ()]
    plan = plan_profile(args.resolution, space, blocks_from, args.calibration, args.seed, existing)
    if existing is not None:
        print(f"extending {output}: {len(existing.rows)} blocks kept, {len(plan.blocks)} to measure", file=sys.stderr)
    if args.export_only:
        manifest = export_bundle(args.export_only, plan.resolution, plan.blocks, plan.networks, reference=reference_spec(),
                                 info={"purpose": "table", "coverage": plan.coverage,
                                       **({"space_fingerprint": plan.space_fingerprint} if plan.space_fingerprint else {})},
                                 progress=_Progress("export", "model"))
        print(f"wrote bundle {args.export_only} ({len(manifest['entries'])} models). On the device (numpy + onnxruntime):\n"
              f"  python3 {args.export_only}/profile.py run {args.export_only} -o results.csv --threads {args.threads} "
              f"--device {args.device}\nthen here:\n  evit-nas profile --import results.csv --bundle {args.export_only} -o {output}")
        return 0
    if not plan.blocks and not plan.networks:
        print(f"{output} already has every block; nothing to measure")
        return 0
    print(f"measuring {len(plan.blocks)} blocks and {len(plan.networks)} calibration networks at "
          f"{args.resolution[0]}x{args.resolution[1]}, {args.threads} thread(s), on "
          f"{args.remote or 'this machine'}", file=sys.stderr)
    table = profile_table(output, plan, args.device, args.threads, args.warmup, args.repeats, _remote(args),
                          keep_work=args.keep_work, export_progress=_Progress("export", "model"),
                          time_progress=_Progress("time", "model"))
    cal = table.calibration
    result = {"table": str(output), "blocks": len(table.rows), "calibration_networks": cal.networks,
              "calibration_fit_mape_pct": cal.fit_mape, "reference_ms": table.meta["reference"]["median_ms"]}
    if args.json:
        _print_json(result)
    else:
        print(f"wrote {output}: {len(table.rows)} blocks, calibrated on {cal.networks} networks "
              f"(fit MAPE {cal.fit_mape}%), reference B0 {result['reference_ms']:.2f} ms")
    return 0


def _load_table(args: argparse.Namespace):
    from latency_tables.table import LatencyTable

    table = LatencyTable.load(args.table)
    return table


def cmd_latency_predict(args: argparse.Namespace) -> int:
    label, spec = _network(args)
    table = _load_table(args)
    resolution = args.resolution or table.resolution
    for warning in table.check(resolution=resolution, threads=args.threads, force=args.force):
        print(warning, file=sys.stderr)
    predicted = table.predict_ms(spec, resolution)
    stages = table.breakdown_ms(spec, resolution)
    info = {k: table.meta.get(k) for k in ("device", "cpu", "arch", "threads", "onnxruntime", "date")}
    if args.json:
        _print_json({"network": label, "resolution": list(resolution), "predicted_ms": predicted, "stages_ms": stages,
                     "table": str(args.table), **info})
        return 0
    print(f"{label}: {predicted:.2f} ms predicted at {resolution[0]}x{resolution[1]}, batch 1, "
          f"{info['threads']} thread(s), on {info['device']} ({info['cpu']}, {info['arch']}, onnxruntime {info['onnxruntime']})")
    for name, ms in stages.items():
        print(f"  {name:<9}{ms:>9.2f} ms")
    return 0


def cmd_latency_validate(args: argparse.Namespace) -> int:
    import platform

    import onnxruntime

    from latency_tables.validate import held_out_networks, measure_and_compare, summarise, write_csv, write_plot

    table = _load_table(args)
    space = _load_space(args)
    remote = _remote(args)
    checks = {"space_fingerprint": space.fingerprint()} if table.meta.get("coverage") == "space" else {}
    if remote is None:
        checks.update(arch=platform.machine(), onnxruntime=onnxruntime.__version__)
    for warning in table.check(force=args.force, **checks):
        print(warning, file=sys.stderr)
    networks = held_out_networks(space, table, args.samples, args.seed)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, meta = measure_and_compare(table, networks, out_dir / "validate.work", args.warmup, args.repeats, remote,
                                     _Progress("export", "network"), _Progress("time", "network"))
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
        _print_json({"csv": str(csv_path), "png": str(png_path), **info, **{k: vars(v) for k, v in summaries.items()}})
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
    from latency_tables.measure import MEASURE_COLUMNS, measure, write_rows
    from latency_tables.table import LatencyTable

    table = LatencyTable.load(args.table) if args.table else None
    resolution = args.resolution or (tuple(table.resolution) if table else DATASETS[args.dataset].resolution)
    threads = args.threads or (int(table.meta["threads"]) if table else 1)
    device = args.device or (table.meta["device"] if table else platform_node())
    if table is not None:
        import platform

        for warning in table.check(threads=threads, arch=None if args.remote else platform.machine(), force=True):
            print(warning, file=sys.stderr)
    networks = [_resolve(n, args.dataset, peers=True) for n in args.networks]
    output = Path(args.output) if args.output else None
    if output is not None and output.exists() and not args.force:
        raise CLIError(f"{output} exists; choose another -o path or pass --force to replace it")
    work = Path(args.work or (str(output) + ".work" if output else "measure.work"))
    print(f"measuring {len(networks)} network(s) end to end at {resolution[0]}x{resolution[1]}, batch 1, "
          f"{threads} thread(s), on {args.remote or 'this machine'}", file=sys.stderr)
    rows, meta = measure(networks, resolution, work, device, threads, args.warmup, args.repeats, _remote(args), table,
                         _Progress("export", "network"), _Progress("time", "network"))
    info = {"device": meta.get("device"), "cpu": meta.get("cpu"), "arch": meta.get("arch"),
            "onnxruntime": meta.get("onnxruntime"), "threads": threads, "date": meta.get("date"),
            "table": args.table, "warmup": args.warmup, "repeats": args.repeats}
    if output is not None:
        write_rows(output, MEASURE_COLUMNS, rows, info)
    if args.json:
        _print_json({**info, "rows": rows, "csv": str(output) if output else None})
        return 0
    print(f"{'network':<26}{'measured (ms)':>14}{'p10-p90 (ms)':>17}{'predicted (ms)':>16}{'MACs (G)':>10}{'params (M)':>12}")
    for r in rows:
        predicted = "" if r["predicted_ms"] is None else f"{r['predicted_ms']:.2f}"
        print(f"{r['name']:<26}{r['measured_ms']:>14.2f}{r['p10_ms']:>8.2f}-{r['p90_ms']:<8.2f}{predicted:>16}"
              f"{_g(r['macs']):>10}{_m(r['params']):>12}")
    print(f"\non {info['device']} ({info['cpu']}, {info['arch']}, onnxruntime {info['onnxruntime']}); medians"
          + (" rescaled to the table's typical device speed" if table else "") + ". "
          "Peers are measured only (never table-predicted).")
    if output is not None:
        print(f"wrote {output}")
    return 0


# ----------------------------------------------------------------- search
def _search_progress():
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def update(done: int, total: int, feasible: int, front_size: int) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, initial=0, desc="search", unit="trial", dynamic_ncols=True)
        bar = state["bar"]
        bar.set_postfix(feasible=feasible, front=front_size, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _default_study_name(args: argparse.Namespace) -> str:
    return f"{Path(args.table).stem}-budget{args.budget_ms:g}ms-{args.objectives.replace(',', '-')}-{args.proxy}-{args.sampler}-seed{args.seed}"


def cmd_search(args: argparse.Namespace) -> int:
    from latency_tables.table import LatencyTable
    from nas.search import front, run_search, trial_result

    table = LatencyTable.load(args.table)
    space = _load_space(args)
    name = args.study or _default_study_name(args)
    study = run_search(table, space, args.budget_ms, args.trials, args.objectives, args.proxy, args.sampler,
                       args.storage, name, args.seed, table_path=str(args.table),
                       progress=None if args.json else _search_progress())
    members = front(study)
    summary = {"study": name, "storage": args.storage or "evit-nas.journal", "trials": args.trials,
               "front": [{"trial": t.number, **{k: v for k, v in trial_result(t).items() if k != "spec"},
                          "summary": ArchSpec.from_dict(trial_result(t)["spec"]).summary()} for t in members]}
    if args.json:
        _print_json(summary)
        return 0
    print(f"study {name!r} in {summary['storage']}: {len(members)} networks on the feasible Pareto front "
          f"(budget {args.budget_ms:g} ms on {table.meta['device']})")
    _print_front(members)
    print(f"\nexport them: evit-nas pareto --storage {summary['storage']} --study {name} --export DIR")
    return 0


def _print_front(members) -> None:
    from nas.search import trial_result

    print(f"{'trial':>6}{'latency (ms)':>14}{'MACs (G)':>10}{'params (M)':>12}{'proxy':>14}  network")
    for t in members:
        r = trial_result(t)
        print(f"{t.number:>6}{r['latency_ms']:>14.2f}{r['macs'] / 1e9:>10.3f}{r['params'] / 1e6:>12.3f}"
              f"{r['proxy']:>14.4g}  {ArchSpec.from_dict(r['spec']).summary()}")


def cmd_pareto(args: argparse.Namespace) -> int:
    from nas.export import export_onnx
    from nas.search import front, load_study, trial_result
    from search_space import build_model

    study = load_study(args.storage, args.study)
    members = front(study)
    attrs = study.user_attrs
    rows = [{"trial": t.number, **{k: v for k, v in trial_result(t).items()},
             "summary": ArchSpec.from_dict(trial_result(t)["spec"]).summary()} for t in members]
    if args.export:
        out = Path(args.export)
        out.mkdir(parents=True, exist_ok=True)
        resolution = tuple(attrs["table_meta"]["resolution"])
        lines = ["trial,latency_ms,macs,params,proxy,proxy_name,spec_file,onnx_file,summary"]
        for row in rows:
            spec = ArchSpec.from_dict(row["spec"])
            stem = f"trial{row['trial']:05d}"
            write_atomic(str(out / f"{stem}.json"), spec.to_json() + "\n")
            if not args.no_onnx:
                export_onnx(build_model(spec), (1, 3, *resolution), out / f"{stem}.onnx")
            lines.append(f"{row['trial']},{row['latency_ms']:.6g},{row['macs']},{row['params']},{row['proxy']:.6g},"
                         f"{row['proxy_name']},{stem}.json,{'' if args.no_onnx else stem + '.onnx'},{row['summary']}")
        write_atomic(str(out / "front.csv"), "\n".join(lines) + "\n")
    if args.json:
        _print_json({"study": args.study, "budget_ms": attrs.get("budget_ms"), "objectives": attrs.get("objectives"),
                     "front": rows})
        return 0
    from optuna.trial import TrialState

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    print(f"study {args.study!r}: {complete} trials, budget {attrs.get('budget_ms'):g} ms on "
          f"{attrs.get('table_meta', {}).get('device')} at {'x'.join(map(str, attrs.get('table_meta', {}).get('resolution', [])))}, "
          f"objectives {','.join(attrs.get('objectives', []))} (proxy: {attrs.get('proxy')}); "
          f"{len(members)} networks on the feasible front")
    _print_front(members)
    if args.export:
        print(f"\nwrote {len(rows)} ArchSpec JSON{'' if args.no_onnx else ' + ONNX'} files and front.csv to {args.export}")
    return 0


# ----------------------------------------------------------------- validate
#: brief-training resolution when no study gives one (its table's)
VALIDATE_RESOLUTION = {"synthetic": (128, 256), "cityscapes": (512, 1024), "ade20k": (512, 512)}


def cmd_validate(args: argparse.Namespace) -> int:
    from nas.search import load_study
    from nas.validate import Entry, default_recipe, front_entries, open_datasets, safe_name, validate

    if not args.study and not args.networks:
        raise CLIError("give --study NAME --top-k K (networks of a search's front), or NETWORK arguments "
                       "(with --study too, their results are recorded in that study)")
    kind = args.dataset.partition(":")[0]
    study, resolution = None, args.resolution
    entries = [Entry(*_resolve(n, kind if kind in DATASETS else "cityscapes", peers=True)) for n in args.networks]
    if args.study:
        if args.top_k is None and not args.networks:
            raise CLIError("--study needs --top-k K (how many networks of the front to train) or NETWORK arguments")
        study = load_study(args.storage, args.study)
        if args.top_k is not None:
            entries = front_entries(study, args.top_k) + entries
        table_resolution = study.user_attrs.get("table_meta", {}).get("resolution")
        if kind != "synthetic":  # the procedural task is scale-free: brief training stays at 128x256
            resolution = resolution or (tuple(table_resolution) if table_resolution else None)
    elif args.top_k is not None:
        raise CLIError("--top-k picks networks of a study's front: give --study NAME too")
    resolution = resolution or VALIDATE_RESOLUTION.get(kind, VALIDATE_RESOLUTION["synthetic"])
    recipe = default_recipe(kind, resolution, args.steps, args.batch_size, args.seed)
    train_set, val_set = open_datasets(args.dataset, resolution)
    out = Path(args.out or Path("validation") / safe_name(args.study or "networks"))
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    say(f"training {len(entries)} network(s){'' if args.no_reference else ' + B0 reference'} on {args.dataset} at "
        f"{resolution[0]}x{resolution[1]}: {recipe.steps} steps of batch {recipe.batch_size}, seed {recipe.seed}; "
        f"results in {out}")
    rows = validate(entries, train_set, val_set, args.dataset, recipe, out, args.device, study,
                    reference=not args.no_reference, progress=not args.no_progress, log=say)
    if args.json:
        parsed = ("spec", "recipe", "per_class_iou")
        _print_json({"results": str(out / "results.csv"), "study": args.study,
                     "rows": [{k: json.loads(v) if k in parsed else v for k, v in r.items()} for r in rows]})
        return 0
    print(f"\n{'network':<22}{'latency (ms)':>13}{'MACs (G)':>10}{'params (M)':>12}{'mIoU (%)':>10}{'pixel acc (%)':>15}")
    for r in rows:
        latency = "" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"
        print(f"{r['network']:<22}{latency:>13}{_g(r['macs']):>10}{_m(r['params']):>12}{r['miou']:>10.1f}"
              f"{r['pixel_accuracy']:>15.1f}")
    print(f"\nwrote {out / 'results.csv'}" + (f"; study {args.study!r} has the results as user attributes "
                                                "validation:<trial> and validation:reference" if study else ""))
    return 0


# ----------------------------------------------------------------- report, demo
def _study_table(args: argparse.Namespace, study) -> Any:
    from latency_tables.table import LatencyTable

    path = args.table or study.user_attrs.get("table")
    if not path or not Path(path).is_file():
        raise CLIError(f"the study's latency table {path!r} is not here; give it with --table FILE")
    return LatencyTable.load(path)


def cmd_report(args: argparse.Namespace) -> int:
    from nas.search import load_study
    from reports.report import write_report

    study = load_study(args.storage, args.study)
    table = _study_table(args, study)
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    summary = write_report(study, table, args.output, args.warmup, args.repeats, args.compare, _remote(args),
                           progress=lambda what: _Progress(what, "network"), log=say)
    if args.json:
        _print_json(summary)
        return 0
    _print_speedups(summary["speedups"])
    print(f"\nreport: {summary['index']}")
    return 0


def _print_speedups(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'EfficientViT':<22}{'peer':<15}{'dataset':<12}{'published Orin':>15}{'measured here':>15}")
    for r in rows:
        pub = "" if r["published_orin_speedup"] is None else f"{r['published_orin_speedup']:.2f}x"
        here = "" if r["measured_speedup_here"] is None else f"{r['measured_speedup_here']:.2f}x"
        print(f"{r['efficientvit']:<22}{r['peer']:<15}{r['dataset']:<12}{pub:>15}{here:>15}")


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from latency_tables.table import LatencyTable
    from nas.search import run_search
    from nas.validate import Entry, default_recipe, front_entries, open_datasets, validate
    from reports.report import write_report

    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table_path = Path(args.table) if args.table else Path(__file__).resolve().parents[1] / "latency_tables" / DEMO_TABLE
    table = LatencyTable.load(table_path)
    storage = str(out / "demo.journal")
    name = f"demo-budget{args.budget_ms:g}ms"
    print(f"[1/3] search: {args.trials} trials for a {args.budget_ms:g} ms budget on {table.meta['device']} "
          f"({table_path.name}); study {name!r} in {storage}")
    study = run_search(table, SearchSpace.default("cityscapes"), args.budget_ms, args.trials, "proxy,latency", "params",
                       "nsga2", storage, name, 0, table_path=str(table_path), progress=_search_progress())
    entries = front_entries(study, args.top_k)
    entries += [Entry(*_resolve(n, "cityscapes", peers=True)) for n in args.train_peers]
    recipe = default_recipe("synthetic", DEMO_RESOLUTION, args.steps, 8, 0)
    train_set, val_set = open_datasets("synthetic", DEMO_RESOLUTION)
    print(f"[2/3] validate: {len(entries)} network(s) + EfficientViT-B0, {args.steps} steps of batch 8 on the procedural "
          f"dataset at {DEMO_RESOLUTION[0]}x{DEMO_RESOLUTION[1]}")
    validate(entries, train_set, val_set, "synthetic", recipe, out / "validation", study=study)
    print("[3/3] report: measure B0-B3 and the peers end to end, draw the figures")
    summary = write_report(study, table, out / "report", args.warmup, args.repeats, args.compare,
                           progress=lambda what: _Progress(what, "network"))
    _print_speedups(summary["speedups"])
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; report: {summary['index']}")
    return 0


DEMO_TABLE = "x86_64_xeon_2core_256x512_t1.csv"
DEMO_RESOLUTION = (128, 256)


# ----------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evit-nas",
        description="Hardware-aware search for efficient EfficientViT segmentation networks.",
        epilog="NETWORK is a registered name (see `evit-nas models`) or an ArchSpec JSON file. "
        "Resolutions are HxW, e.g. 1024x2048 (H=1024, W=2048).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add_network(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("network", metavar="NETWORK", nargs=None if required else "?",
                       help="registered name (e.g. efficientvit_seg_b1) or ArchSpec JSON file")
        add_dataset(p)

    def add_space(p: argparse.ArgumentParser) -> None:
        p.add_argument("--space", help="search space JSON/YAML file (default: the built-in space)")

    def add_dataset(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", choices=sorted(DATASETS), default="cityscapes",
                       help="dataset: sets classes, head layout and the default resolution (default: cityscapes)")

    p = sub.add_parser("models", help="list the registered networks", description="List the registered networks with their parameter counts.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("describe", help="parameters and MACs per stage",
                       description=f"Print a network's parameters and fvcore MACs per stage and in total. {MACS_NOTE}.")
    add_network(p)
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW",
                   help="input size (default: the dataset's, 1024x2048 for cityscapes, 512x512 for ade20k)")
    p.add_argument("--blocks", action="store_true", help="also list every block with its params and MACs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("export", help="export a network to ONNX",
                       description="Export a network to ONNX (batch 1, fixed size) and check it against torch in onnxruntime.")
    add_network(p)
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW", help="input size (default: the dataset's)")
    p.add_argument("-o", "--output", help="ONNX file to write (default: NETWORK_HxW.onnx)")
    p.add_argument("--weights", help="checkpoint to load first (official or ours; raw state_dict or under 'state_dict')")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs difference allowed in the check (default: 1e-3)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("space", help="summarise a search space",
                       description="Show a search space's decisions, its size, and how many distinct blocks it "
                       "produces (the profiler's work list).")
    add_dataset(p)
    add_space(p)
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW", action="append",
                   help="input size; repeat for several (default: the dataset's)")
    p.add_argument("--blocks-csv", metavar="FILE", help="also write the unique blocks as CSV")
    p.add_argument("--force", action="store_true", help="replace an existing CSV file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_space)

    p = sub.add_parser("spec", help="print a network's ArchSpec JSON",
                       description="Print the ArchSpec JSON of a registered network, or of a random network of "
                       "the space; edit it and pass the file wherever a NETWORK is taken.")
    add_network(p, required=False)
    p.add_argument("--sample", type=int, metavar="SEED", help="draw a random network of the space with this seed")
    add_space(p)
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_spec)

    def add_remote(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("measuring on another device over SSH (it needs python3, numpy, onnxruntime; no torch)")
        g.add_argument("--remote", metavar="USER@HOST", help="time on this SSH host instead of this machine")
        g.add_argument("--port", type=int, default=22, help="SSH port (default: 22)")
        g.add_argument("--identity", metavar="FILE", help="SSH private key")
        g.add_argument("--remote-python", default="python3", help="Python on the device (default: python3)")
        g.add_argument("--ssh-option", action="append", metavar="OPT", help="extra `ssh -o` option (repeatable)")

    def add_timing(p: argparse.ArgumentParser) -> None:
        p.add_argument("--warmup", type=int, default=3, help="untimed visits per model (default: 3)")
        p.add_argument("--repeats", type=int, default=20, help="timed visits per model (default: 20)")

    p = sub.add_parser("profile", help="measure a device into a latency table",
                       description="Export every block the search space can produce (or the blocks of given networks) "
                       "to ONNX, time each with onnxruntime on the device, and write a latency table with its metadata. "
                       "Interrupt it at any time: the next run resumes. An existing table is extended, never lost.")
    p.add_argument("--device", default=platform_node(), help="a name for the device (default: this host's name)")
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW", help="network input size the table is for")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default: 1)")
    add_timing(p)
    p.add_argument("-o", "--output", help="table file (default: DEVICE_HxW_tTHREADS.csv)")
    add_dataset(p)
    add_space(p)
    p.add_argument("--blocks-from", nargs="+", metavar="NETWORK", help="profile only the blocks of these networks")
    p.add_argument("--calibration", type=int, default=40, help="end-to-end networks timed to calibrate (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration networks (default: 0)")
    p.add_argument("--export-only", metavar="DIR", help="only write the bundle (ONNX + manifest + profile.py) to DIR")
    p.add_argument("--import", dest="import_results", metavar="RESULTS", help="import a results CSV timed on a device")
    p.add_argument("--bundle", metavar="DIR", help="with --import: the bundle it was timed from")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder (bundle, raw results)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
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
    q.add_argument("--threads", type=int, help="refuse the table unless it was measured with this many threads")
    q.add_argument("--force", action="store_true", help="use a table with another thread count, with a warning")
    q.add_argument("--json", action="store_true", help="machine-readable output")
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
    q.add_argument("--json", action="store_true", help="machine-readable summary")
    add_remote(q)
    q.set_defaults(func=cmd_latency_validate)
    q = lat.add_parser("measure", help="end-to-end latency of networks, peers included",
                       description="Export networks whole to ONNX and time them end to end with the table protocol "
                       "(onnxruntime, batch 1, warm-up, interleaved repeats, median and p10/p90), here or over SSH. "
                       "Takes EfficientViT networks, ArchSpec files and the peers (segformer_b0..b3, segnext_t/s), so "
                       "all are measured the same way on the same device. With --table, the device, threads and "
                       "resolution default to the table's and EfficientViT networks get its prediction alongside.")
    q.add_argument("networks", metavar="NETWORK", nargs="+", help="registered names, peers or ArchSpec JSON files")
    add_dataset(q)
    q.add_argument("--table", help="latency table: defaults for device, threads, resolution; predictions to compare")
    q.add_argument("--resolution", type=parse_resolution, metavar="HxW",
                   help="input size (default: the table's, else the dataset's)")
    q.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: the table's, else 1)")
    q.add_argument("--device", help="a name for the device (default: the table's, else this host's name)")
    q.add_argument("-o", "--output", help="write the rows to this CSV (metadata as # lines)")
    q.add_argument("--work", metavar="DIR", help="work folder for the ONNX files (default: OUTPUT.work); removed after")
    q.add_argument("--force", action="store_true", help="replace an existing output file")
    add_timing(q)
    q.add_argument("--json", action="store_true", help="machine-readable output")
    add_remote(q)
    q.set_defaults(func=cmd_latency_measure)

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
    p.add_argument("--proxy", default="params", help="accuracy proxy: params, macs, naswot (default: params)")
    p.add_argument("--sampler", default="nsga2", help="nsga2, tpe or random (default: nsga2)")
    p.add_argument("--storage", help="Optuna storage: a journal file path (default: evit-nas.journal) or a URL "
                   "(sqlite:///x.db, postgresql://user:pw@host/db)")
    p.add_argument("--study", help="study name (default: derived from table, budget, objectives, proxy, sampler, seed)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    add_dataset(p)
    add_space(p)
    p.add_argument("--json", action="store_true", help="machine-readable summary (no progress bar)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("pareto", help="show and export a study's Pareto front",
                       description="Print the feasible Pareto front of a search study and optionally export each "
                       "network as ArchSpec JSON and ONNX (at the table's resolution) with a front.csv.")
    p.add_argument("--storage", help="Optuna storage (default: evit-nas.journal)")
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--export", metavar="DIR", help="write front.csv and one ArchSpec JSON + ONNX per network")
    p.add_argument("--no-onnx", action="store_true", help="with --export: skip the ONNX files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_pareto)

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
                   help="synthetic (generated, nothing to download), cityscapes:PATH or ade20k:PATH (default: synthetic)")
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW",
                   help="training crop and synthetic image size (default: 128x256 for synthetic, whose task scales "
                   "with the image; for cityscapes and ade20k the study's table resolution, else 512x1024 and 512x512)")
    p.add_argument("--steps", type=int, default=400, help="training steps per network (default: 400)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation and batch order seed (default: 0)")
    p.add_argument("--out", metavar="DIR", help="results folder (default: validation/STUDY or validation/networks)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where to train: cpu, cuda, or auto (cuda when available) (default: cpu)")
    p.add_argument("--no-reference", action="store_true", help="do not train the B0 reference")
    p.add_argument("--no-progress", action="store_true", help="no training progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable rows on standard output")
    p.set_defaults(func=cmd_validate)

    def add_comparison(p: argparse.ArgumentParser, warmup: int, repeats: int) -> None:
        g = p.add_argument_group("measuring EfficientViT B0-B3 and the peers on this machine")
        g.add_argument("--warmup", type=int, default=warmup, help=f"untimed runs per network (default: {warmup})")
        g.add_argument("--repeats", type=int, default=repeats, help=f"timed runs per network (default: {repeats})")
        g.add_argument("--compare", nargs="+", metavar="NAME",
                       help="measure only these of efficientvit_seg_b0..b3, segformer_b0..b3, segnext_t/s "
                       "(default: all; the large SegFormers take a while on a small CPU)")

    p = sub.add_parser("report", help="figures and an HTML page: the search against B0-B3, SegFormer and SegNeXt",
                       description="Write PNG + SVG figures, the CSV behind each, and OUT/index.html: published mIoU "
                       "against published MACs and against latency measured here (EfficientViT B0-B3, SegFormer "
                       "B0-B3, SegNeXt T/S, all timed end to end with the table protocol on this machine), the "
                       "search's trials and Pareto front, the validated networks' mIoU, and the latency table's "
                       "accuracy. The networks are timed on the device of the study's table: this machine, or the device "
                       "over SSH with --remote. Measurements are kept in OUT/measured.csv and reused by the next report.")
    p.add_argument("--storage", help="Optuna storage of the study (default: evit-nas.journal)")
    p.add_argument("--study", required=True, help="study name (from evit-nas search)")
    p.add_argument("-o", "--output", default="report", help="report folder (default: report)")
    p.add_argument("--table", help="the study's latency table, if it is no longer where the study says")
    add_comparison(p, warmup=2, repeats=10)
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    add_remote(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="search, validate and report on built-in defaults (about 5-10 minutes)",
                       description="The whole job on built-in defaults: search the default space for a latency budget "
                       "on the shipped x86 table, train the best few front networks (and EfficientViT-B0) briefly on "
                       "the procedural dataset, measure B0-B3 and the peers here, and write the report. Rerun to "
                       "resume: finished steps are reused.")
    p.add_argument("--out", default="evit-nas-demo", help="folder for the study, checkpoints and report (default: evit-nas-demo)")
    p.add_argument("--table", help=f"latency table (default: the shipped {DEMO_TABLE})")
    p.add_argument("--budget-ms", type=float, default=50.0, help="latency budget in ms (default: 50)")
    p.add_argument("--trials", type=int, default=300, help="search trials (default: 300)")
    p.add_argument("--top-k", type=int, default=2, help="front networks to train (default: 2)")
    p.add_argument("--steps", type=int, default=150, help="training steps per network (default: 150)")
    p.add_argument("--train-peers", nargs="*", metavar="PEER", default=["segformer_b0"],
                   help="peers to train with the same recipe, for the validation figure (default: segformer_b0, about "
                   "2x B0's training time here; segnext_t takes about 6x; `--train-peers` alone: none)")
    add_comparison(p, warmup=1, repeats=5)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (CLIError, SpecError, TableError, ProfileError, SearchError, DatasetError, TrainError, ValidateError,
            ReportError) as exc:
        print(f"evit-nas: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
