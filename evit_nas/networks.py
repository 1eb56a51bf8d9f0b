"""Commands about networks: ``models``, ``describe``, ``export``, ``space``, ``spec``."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

from search_space.blocks import BLOCK_KINDS, network_blocks
from search_space.network import PeerSpec
from search_space.registry import default_resolution, entries, model_spec, resolve_network
from search_space.spec import DATASETS, SpecError
from search_space.records import atomic_path, write_csv

from .args import (MACS_NOTE, CLIError, add_dataset, add_force, add_json, add_network, add_precision, add_space,
                   billions, load_space, millions, parse_input_size, parse_resolution, print_json, quant_calibration,
                   quant_images, refuse_existing, resolution_arg, resolve, warn_float_ops, write_new)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered networks",
                       description="List the registered networks (EfficientViT B0-B3 and the peers) with their "
                       "parameter counts, for each dataset they have a configuration for.")
    add_json(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("describe", help="parameters and MACs per stage",
                       description=f"Print a network's parameters and fvcore MACs per stage and in total. {MACS_NOTE}.")
    add_network(p)
    p.add_argument("--resolution", type=parse_input_size, metavar="HxW",
                   help="input size (default: the network's: 1024x2048 for cityscapes, 512x512 for ade20k, the "
                   "official size for a classifier, e.g. 288x288 for efficientvit_cls_b3)")
    p.add_argument("--blocks", action="store_true", help="also list every block with its params and MACs")
    add_json(p)
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("export", help="export a network to ONNX",
                       description="Export a network to ONNX (batch 1, fixed size) and check it against torch in onnxruntime.")
    add_network(p)
    p.add_argument("--resolution", type=parse_input_size, metavar="HxW", help="input size (default: the network's)")
    p.add_argument("-o", "--output", help="ONNX file to write (default: NETWORK_HxW.onnx)")
    p.add_argument("--weights", help="checkpoint to load first (official or ours; raw state_dict or under 'state_dict')")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs difference allowed in the check (default: 1e-3)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    add_precision(p)
    add_force(p)
    add_json(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("space", help="summarise a search space",
                       description="Show a search space's decisions, its size, and how many distinct blocks it "
                       "produces (the profiler's work list).")
    add_dataset(p)
    add_space(p)
    p.add_argument("--resolution", type=parse_resolution, metavar="HxW", action="append",
                   help="input size; repeat for several (default: the dataset's)")
    p.add_argument("--blocks-csv", metavar="FILE", help="also write the unique blocks as CSV")
    add_force(p, "replace an existing CSV file")
    add_json(p)
    p.set_defaults(func=cmd_space)

    p = sub.add_parser("spec", help="print a network's ArchSpec JSON",
                       description="Print the ArchSpec JSON of a registered network, or of a random network of "
                       "the space; edit it and pass the file wherever a NETWORK is taken.")
    add_network(p, required=False)
    p.add_argument("--sample", type=int, metavar="SEED", help="draw a random network of the space with this seed")
    add_space(p)
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    add_force(p)
    p.set_defaults(func=cmd_spec)


def cmd_models(args: argparse.Namespace) -> int:
    # Parameter counts come from the registry (checked against the built networks by the
    # tests), so listing builds nothing.
    rows = []
    for entry in entries():
        for dataset in entry.datasets:
            spec = model_spec(entry.name, dataset)
            row: dict[str, Any] = {"name": entry.name, "dataset": dataset, "family": entry.family,
                                   "params": entry.params[dataset],
                                   "resolution": list(default_resolution(entry.name, dataset))}
            if isinstance(spec, PeerSpec):
                row["summary"] = spec.summary()
            else:
                row.update(widths=list(spec.widths), depths=list(spec.depths))
            rows.append(row)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'network':<22}{'dataset':<12}{'params (M)':>11}  {'resolution':<11} widths / depths")
    for r in rows:
        if "summary" not in r:
            res = "x".join(map(str, r["resolution"]))
            print(f"{r['name']:<22}{r['dataset']:<12}{millions(r['params']):>11}  {res:<11} {r['widths']} / {r['depths']}")
    print("\npeers (outside the search space: described, exported, measured and trained, never table-predicted):")
    for r in rows:
        if "summary" in r and r["dataset"] != "imagenet":
            res = "x".join(map(str, r["resolution"]))
            print(f"{r['name']:<22}{r['dataset']:<12}{millions(r['params']):>11}  {res:<11} {r['summary']}")
    print("\nImageNet classifiers (the backbone comparison: described, exported and measured; "
          "other official sizes via --resolution):")
    for r in rows:
        if r["dataset"] == "imagenet":
            res = "x".join(map(str, r["resolution"]))
            print(f"{r['name']:<22}{r['dataset']:<12}{millions(r['params']):>11}  {res:<11} {r['summary']}")
    print("\nNETWORK arguments also take an ArchSpec JSON file (see `evit-nas spec`); "
          "a _cityscapes or _ade20k suffix picks the dataset.")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    label, spec = resolve(args.network, args.dataset, peers=True)  # a bad name fails before torch loads
    resolution = resolution_arg(args, spec)
    if isinstance(spec, PeerSpec):
        return _describe_peer(args, label, spec, resolution)
    from search_space.cost import block_macs, block_params, stage_costs

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
        print_json(out)
        return 0
    print(f"{label} at {resolution[0]}x{resolution[1]} (H x W), {spec.num_classes} classes")
    print(f"  {spec.summary()}")
    print(f"\n{'stage':<8}{'blocks':>7}{'params':>12}{'MACs (M)':>12}{'share':>8}")
    for name, s in stages.items():
        print(f"{name:<8}{s['blocks']:>7}{s['params']:>12,}{s['macs'] / 1e6:>12,.1f}{s['macs'] / total_macs:>8.1%}")
    blocks_total = sum(s["blocks"] for s in stages.values())
    print(f"{'total':<8}{blocks_total:>7}{total_params:>12,}{total_macs / 1e6:>12,.1f}{1:>8.1%}")
    print(f"\n{total_params / 1e6:.3f} M params, {billions(total_macs)} G MACs")
    if blocks is not None:
        print(f"\n{'stage':<8}{'#':>3} {'role':<8}{'params':>11}{'MACs (M)':>11}  block")
        for slot, key in network_blocks(spec, resolution):
            print(f"{slot.stage:<8}{slot.index:>3} {slot.role:<8}{block_params(slot.key):>11,}"
                  f"{block_macs(key) / 1e6:>11.2f}  {key.describe()}")
    print(f"\n{MACS_NOTE}.")
    return 0


def _describe_peer(args: argparse.Namespace, label: str, spec: PeerSpec, resolution: tuple[int, int]) -> int:
    from search_space.cost import count_macs, count_params

    params, macs = count_params(spec), count_macs(spec, resolution)  # peer MACs are cached on disk
    if args.json:
        print_json({"network": label, "resolution": list(resolution), "spec": spec.to_dict(), "family": spec.family,
                    "total": {"params": params, "macs": macs},
                    "units": {"macs": "multiply-accumulates (fvcore)", "params": "count"}})
        return 0
    print(f"{label} at {resolution[0]}x{resolution[1]} (H x W): {spec.summary()}")
    print(f"\n{params / 1e6:.3f} M params, {billions(macs)} G MACs")
    print("(a peer is outside the search space: no per-block breakdown and no table prediction; "
          "measure it with `evit-nas latency measure`)")
    print(f"\n{MACS_NOTE}.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    label, spec = resolve(args.network, args.dataset, peers=True)
    resolution = resolution_arg(args, spec)
    output = Path(args.output or f"{Path(label).stem}_{resolution[0]}x{resolution[1]}.onnx")
    refuse_existing(output, args.force, "-o path")
    from search_space.cost import export_onnx, onnx_parity
    from search_space.create import build_network, load_checkpoint

    shape = (1, 3, *resolution)
    calibration = held_out = None
    if args.precision == "int8":  # read the images first: a bad --quant-data fails before any work
        from latency_tables.quantize import QuantCalibration, argmax_agreement, quantize_int8

        calibration = quant_calibration(args, resolution)
        if not args.no_check:  # the agreement is measured on the validation split, not the calibration images
            held_out = QuantCalibration("held out", quant_images(args, resolution, split="val")).inputs(shape)
    model = build_network(spec)
    if args.weights:
        load_checkpoint(model, args.weights)
    result: dict[str, Any] = {"network": label, "output": str(output), "resolution": list(resolution),
                              "opset": args.opset, "precision": args.precision}
    with contextlib.ExitStack() as stack:  # -o appears once every step succeeded; a failure leaves no file
        written = Path(stack.enter_context(atomic_path(output)))
        fp32_path = written
        if calibration is not None:  # the fp32 model, quantized into -o, lives in a folder removed on any exit
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=written.parent))
            fp32_path = Path(work) / "fp32.onnx"
        export_onnx(model, shape, fp32_path, opset=args.opset)
        if not args.no_check:
            result["max_abs_diff"] = onnx_parity(model, fp32_path, shape)
            result["tolerance"] = args.tolerance
        if calibration is not None:
            result["float_ops"] = quantize_int8(fp32_path, written, calibration.inputs(shape))
            result["quant_calibration"] = calibration.name
            if held_out is not None:
                result["argmax_agreement_pct"] = round(100 * argmax_agreement(fp32_path, written, held_out), 2)
        result["bytes"] = written.stat().st_size
    if calibration is not None:
        warn_float_ops([{"float_ops": result["float_ops"]}], lambda e: label)
    if args.json:
        print_json(result)
    else:
        print(f"wrote {output} ({result['bytes'] / 1e6:.1f} MB, opset {args.opset}, input 1x3x{resolution[0]}x{resolution[1]})")
        if "max_abs_diff" in result:
            print(f"onnxruntime vs torch on a random input: max abs difference {result['max_abs_diff']:.2e} "
                  f"(tolerance {args.tolerance:g}" + (", the fp32 model before quantization)" if args.precision == "int8" else ")"))
        if "argmax_agreement_pct" in result:
            print(f"int8, calibrated on {result['quant_calibration']}: the same class as fp32 at "
                  f"{result['argmax_agreement_pct']:.2f}% of output positions on {args.quant_images} other images")
    if result.get("max_abs_diff", 0.0) > args.tolerance:
        print(f"evit-nas: error: the ONNX model differs from torch by more than {args.tolerance:g} "
              f"(the file is kept at {output} for inspection)", file=sys.stderr)
        return 1
    return 0


def cmd_space(args: argparse.Namespace) -> int:
    space = load_space(args)
    resolutions = args.resolution or [DATASETS[args.dataset].resolution]
    counts = {}
    for res in resolutions:
        keys = space.unique_blocks(res)
        counts["x".join(map(str, res))] = {"total": len(keys), **{k: sum(key.kind == k for key in keys) for k in BLOCK_KINDS}}
        if args.blocks_csv:
            path = Path(args.blocks_csv) if len(resolutions) == 1 else Path(args.blocks_csv).with_suffix(f".{res[0]}x{res[1]}.csv")
            refuse_existing(path, args.force)
            columns = ["resolution", *keys[0].to_dict()] if keys else ["resolution"]
            rows = [{"resolution": "x".join(map(str, res)),
                     **{k: "-".join(map(str, v)) if isinstance(v, list) else v for k, v in key.to_dict().items()}}
                    for key in keys]
            write_csv(path, columns, rows)
    b_series = {}
    for entry in entries():
        if not entry.is_peer:
            try:
                spec = model_spec(entry.name, args.dataset)
            except SpecError:
                continue
            b_series[entry.name] = space.why_not(spec) or "in the space"
    out = {
        "decisions": {name: list(choices) for name, choices in space.decisions()},
        "size": space.size(),
        "fingerprint": space.fingerprint(),
        "unique_blocks": counts,
        "official_networks": b_series,
    }
    if args.json:
        print_json(out)
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
        spec = load_space(args).sample(args.sample)
    elif args.network:
        spec = resolve_network(args.network, args.dataset)
    else:
        raise CLIError("give a NETWORK (a registered name or an ArchSpec file) or --sample SEED")
    text = spec.to_json() + "\n"
    if args.output:
        write_new(Path(args.output), text, args.force)
        print(f"wrote {args.output}: {spec.summary()}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
