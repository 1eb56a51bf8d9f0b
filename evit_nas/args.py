"""Arguments shared by the command groups, and the small helpers every handler uses to
turn them into library objects (networks, spaces, SSH targets) and to print results."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from search_space.errors import EvitNasError
from search_space.network import NetworkSpec, check_input_size
from search_space.records import write_atomic
from search_space.registry import default_resolution, resolve_any, resolve_network
from search_space.spec import DATASETS, SEG_DATASETS, ArchSpec, SpecError, check_resolution

MACS_NOTE = "MACs are multiply-accumulates as counted by fvcore (batch 1); params are trainable parameters"


class CLIError(EvitNasError):
    """A command-line request that cannot run (a missing option, an existing output file)."""


def parse_input_size(text: str) -> tuple[int, int]:
    """``"528x528"`` -> (528, 528) (H x W): any positive size; the network checks it
    (:func:`checked_resolution`)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 1024x2048, got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive HxW, got {text!r}")
    return height, width


def parse_resolution(text: str) -> tuple[int, int]:
    """``"1024x2048"`` -> (1024, 2048) (H x W), multiples of 32 (a segmentation network's input)."""
    try:
        return check_resolution(parse_input_size(text))
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_threads(text: str) -> int:
    """``--threads``: onnxruntime intra-op threads, a whole number >= 1. (onnxruntime reads 0 as
    "pick for me", which would record a thread count that is not the one used.)"""
    try:
        threads = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads such as 1, got {text!r}") from None
    if threads < 1:
        raise argparse.ArgumentTypeError(f"{threads} threads: give 1 or more (e.g. --threads 1)")
    return threads


def host_name() -> str:
    return (platform.node() or "device").split(".")[0]


# ------------------------------------------------------------------ options
def add_dataset(p: argparse.ArgumentParser, any_network: bool = False) -> None:
    """``--dataset``: a segmentation dataset (default cityscapes); with ``any_network`` also
    imagenet, and the default is the network's own (the name's suffix, else its first)."""
    if any_network:
        p.add_argument("--dataset", choices=sorted(DATASETS), default=None,
                       help="dataset configuration: sets classes, head and the default resolution (default: the "
                       "network's own: cityscapes for the segmentation networks, imagenet for the classifiers)")
    else:
        p.add_argument("--dataset", choices=sorted(SEG_DATASETS), default="cityscapes",
                       help="dataset: sets classes, head layout and the default resolution (default: cityscapes)")


def add_network(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("network", metavar="NETWORK", nargs=None if required else "?",
                   help="registered name (e.g. efficientvit_seg_b1, efficientvit_cls_b3) or ArchSpec JSON file")
    add_dataset(p, any_network=True)


def add_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", help="search space JSON/YAML file (default: the built-in space)")


def add_json(p: argparse.ArgumentParser, help: str = "machine-readable output") -> None:
    p.add_argument("--json", action="store_true", help=help)


def add_force(p: argparse.ArgumentParser, help: str = "replace an existing output file") -> None:
    p.add_argument("--force", action="store_true", help=help)


def add_timing(p: argparse._ActionsContainer, warmup: int = 3, repeats: int | None = 20, repeats_help: str = "") -> None:
    p.add_argument("--warmup", type=int, default=warmup, help=f"untimed visits per model (default: {warmup})")
    p.add_argument("--repeats", type=int, default=repeats,
                   help=f"timed visits per model (default: {repeats_help or repeats})")


def timing_arg(args: argparse.Namespace, threads: int = 1, precision: str = "fp32") -> Any:
    """``--warmup``, ``--repeats`` and ``--remote`` (where the command has it) as a
    ``latency_tables.timing.Timing`` with ``threads`` and ``precision``.

    Raises:
        TimingError: counts out of range (one line, exit 2).
    """
    from latency_tables.timing import Timing

    return Timing(args.warmup, args.repeats, threads, precision, remote_target(args))


PRECISION_CHOICES = ("fp32", "int8")


def add_precision(p: argparse.ArgumentParser, default: str | None = "fp32", default_help: str = "fp32") -> None:
    g = p.add_argument_group("deployment precision")
    g.add_argument("--precision", choices=PRECISION_CHOICES, default=default,
                   help=f"fp32, or int8: onnxruntime static quantization (QDQ, per-channel int8 weights, uint8 "
                   f"activations calibrated on a few images); operators without an int8 kernel stay in fp32 and are "
                   f"named (default: {default_help})")
    g.add_argument("--quant-data", default="synthetic", metavar="DATA",
                   help="int8: the images activation ranges are calibrated on: synthetic (generated), camvid:PATH, "
                   "cityscapes:PATH or ade20k:PATH (default: synthetic)")
    g.add_argument("--quant-images", type=int, default=8, metavar="N", help="int8: calibration images (default: 8)")


def quant_images(args: argparse.Namespace, resolution: tuple[int, int], split: str = "train") -> tuple[Any, ...]:
    """``--quant-images`` images of ``--quant-data``'s ``split``, evenly spread over it, as
    (1, 3, H, W) float32 arrays normalised as for training."""
    if args.quant_images < 1:
        raise CLIError(f"--quant-images {args.quant_images}: give at least 1 calibration image")
    from nas.data import image_arrays, open_dataset

    return image_arrays(open_dataset(args.quant_data, split, tuple(resolution), seed=0, length=args.quant_images),
                        args.quant_images)


def quant_calibration(args: argparse.Namespace, resolution: tuple[int, int], precision: str | None = None) -> Any:
    """The int8 calibration of ``--quant-data`` (a ``latency_tables.quantize.QuantCalibration``:
    its training images), or None for fp32."""
    if (precision or args.precision) != "int8":
        return None
    from latency_tables.quantize import QuantCalibration

    images = quant_images(args, resolution)
    return QuantCalibration(f"{args.quant_data}: {len(images)} images", images)


def warn_float_ops(entries: Any, label: Any) -> None:
    """Print the int8 export's warning about operators left in fp32, if any."""
    from latency_tables.quantize import float_ops_line

    line = float_ops_line(entries, label)
    if line:
        print(line, file=sys.stderr)


def add_remote(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("measuring on another device over SSH (it needs python3, numpy, onnxruntime; no torch)")
    g.add_argument("--remote", metavar="USER@HOST", help="time on this SSH host instead of this machine")
    g.add_argument("--port", type=int, default=22, help="SSH port (default: 22)")
    g.add_argument("--identity", metavar="FILE", help="SSH private key")
    g.add_argument("--remote-python", default="python3", help="Python on the device (default: python3)")
    g.add_argument("--ssh-option", action="append", metavar="OPT", help="extra `ssh -o` option (repeatable)")


# ------------------------------------------------------------------ objects
def resolve(network: str, dataset: str | None, peers: bool = False) -> tuple[str, NetworkSpec]:
    """A registered name, an ArchSpec file (or, with ``peers``, a peer's name) -> (label, spec);
    the label is the name or the file name."""
    spec = resolve_any(network, dataset) if peers else resolve_network(network, dataset)
    return (network if not Path(str(network)).is_file() else Path(network).name), spec


def network_arg(args: argparse.Namespace) -> tuple[str, ArchSpec]:
    return resolve(args.network, args.dataset)  # type: ignore[return-value]


def resolution_arg(args: argparse.Namespace, spec: NetworkSpec) -> tuple[int, int]:
    """``--resolution``, else the network's default input size, checked against ``spec``."""
    return check_input_size(spec, args.resolution or default_resolution(args.network, args.dataset))


def load_space(args: argparse.Namespace) -> Any:
    from search_space.space import SearchSpace

    return SearchSpace.from_file(args.space) if args.space else SearchSpace.default(args.dataset or "cityscapes")


def remote_target(args: argparse.Namespace) -> Any:
    """The SSH target of ``--remote``, or None."""
    if not getattr(args, "remote", None):
        return None
    from latency_tables.remote import SSHTarget

    return SSHTarget(args.remote, port=args.port, identity=args.identity, python=args.remote_python,
                     options=tuple(args.ssh_option or ()))


# ------------------------------------------------------------------ output
def refuse_existing(path: Path, force: bool, what: str = "output path") -> None:
    if path.exists() and not force:
        raise CLIError(f"{path} exists; choose another {what} or pass --force to replace it")


def write_new(path: Path, text: str, force: bool) -> None:
    """Write ``text`` atomically; refuse to replace an existing file unless ``force``."""
    refuse_existing(path, force)
    write_atomic(path, text)


def warn_about_table(table: Any, remote: Any = None) -> None:
    """Print the table's one-line notices (uncalibrated; measured on another CPU than this
    machine's, unless the work happens on ``remote``) to stderr."""
    import sys

    from search_space.records import cpu_model

    here = (None, None) if remote is not None else (cpu_model(), platform.machine())
    for line in table.notices(*here):
        print(line, file=sys.stderr)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def millions(n: int) -> str:
    return f"{n / 1e6:.3f}"


def billions(n: int) -> str:
    return f"{n / 1e9:.3f}"
