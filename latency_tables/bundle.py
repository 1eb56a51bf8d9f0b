"""Bundles: folders of ONNX models plus a manifest, exported on a workstation (needs torch)
and timed on the device by the agent ``profile.py`` (needs only numpy + onnxruntime), which
every bundle carries with ``records.py``, the file formats it shares with the project.

A bundle entry is either one block (a BlockKey, the latency table's unit) or one whole
network (an ArchSpec, or a peer's PeerSpec, for calibration and validation). Entry ids are
hashes of what they hold, so re-exporting the same work gives the same ids and partial
results stay valid.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from search_space import records
from search_space.blocks import BlockKey
from search_space.cost import DEFAULT_OPSET, export_onnx
from search_space.create import build_network
from search_space.errors import EvitNasError
from search_space.model import build_block
from search_space.network import NetworkSpec, check_input_size, network_from_dict
from search_space.records import read_manifest, write_atomic
from search_space.spec import MAX_STRIDE, check_resolution

from .quantize import PRECISIONS, QuantCalibration, float_operators, network_edges, quantize_int8, unit_normal_inputs

__all__ = ["BUNDLE_FORMAT", "ProfileError", "block_id", "network_id", "export_bundle", "profile_script", "load_bundle",
           "run_locally"]

BUNDLE_FORMAT = "evit-nas-bundle"
#: what a bundle folder holds besides its models: 2 = the agent with records.py beside it.
#: Part of the bundle id, so a device never resumes a bundle copied in an older layout.
BUNDLE_LAYOUT = 2
#: how the agent starts its one error line
AGENT_ERROR = "profile.py: error: "


class ProfileError(EvitNasError):
    """A profiling problem the user can fix (bad bundle, results of another bundle, a device
    that cannot time); the message says what to do."""


def _digest(data: dict) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def block_id(key: BlockKey) -> str:
    """Stable id of a block entry."""
    return "blk-" + _digest(key.to_dict())


def network_id(spec: NetworkSpec) -> str:
    """Stable id of a whole-network entry."""
    return "net-" + _digest(spec.to_dict())


def profile_script() -> Path:
    """Path of the device agent, the stand-alone timing script that is copied to devices."""
    return Path(__file__).with_name("profile.py")


def export_bundle(
    directory: str | Path,
    resolution: tuple[int, int],
    *,
    blocks: Iterable[BlockKey] = (),
    networks: Iterable[NetworkSpec] = (),
    reference: NetworkSpec | None = None,
    info: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
    calibration: QuantCalibration | None = None,
) -> dict:
    """Export blocks and networks to ONNX in ``directory`` and write its manifest.

    Files that already exist are kept (an interrupted export resumes). Copies of the agent
    ``profile.py`` and of ``records.py`` are put in the bundle, so the folder alone is
    enough on a device.

    Args:
        resolution: the network input size (H, W); blocks carry their own input size.
        reference: a network timed alongside every chunk of entries, to track the
            machine's speed over the run (see ``profile.run_bundle``).
        info: extra manifest fields (space fingerprint, purpose, ...).
        precision: "fp32", or "int8" for onnxruntime static quantization (:mod:`.quantize`):
            each entry's ``float_ops`` names the operators left in fp32.
        calibration: the images int8 networks are calibrated on (default: unit-normal
            tensors, as for blocks).

    Returns:
        The manifest (also written as ``manifest.json``).
    """
    if precision not in PRECISIONS:
        raise ProfileError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    calibration = calibration or QuantCalibration.unit_normal()
    blocks, networks = list(blocks), list(networks)
    if blocks or not networks:
        check_resolution(resolution)
    for spec in networks:  # a classifier takes any size (EfficientNet-B6: 528x528), the others multiples of 32
        check_input_size(spec, resolution)
    height, width = (int(v) for v in resolution)
    directory = Path(directory)
    (directory / "onnx").mkdir(parents=True, exist_ok=True)
    entries = []
    for key in dict.fromkeys(blocks):
        entries.append({"id": block_id(key), "type": "block", "key": key.to_dict(),
                        "input_shape": [1, key.in_channels, key.height, key.width]})
    for spec in dict.fromkeys(networks):
        entries.append({"id": network_id(spec), "type": "network", "spec": spec.to_dict(),
                        "input_shape": [1, 3, height, width]})
    ref_entry = None
    if reference is not None:
        # timed in every chunk, apart from the entries (it may also be one of them)
        # at the nearest size it takes, when the entries' size is not a multiple of 32 (a classifier at 528x528)
        ref_size = [max(MAX_STRIDE, round(v / MAX_STRIDE) * MAX_STRIDE) for v in (height, width)]
        ref_entry = {"id": "ref-" + network_id(reference)[4:], "type": "reference", "spec": reference.to_dict(),
                     "input_shape": [1, 3, *ref_size]}
    for number, entry in enumerate(entries + ([ref_entry] if ref_entry else []), 1):
        entry["file"] = f"onnx/{entry['id']}.onnx" if precision == "fp32" else f"onnx/{entry['id']}.{precision}.onnx"
        path = directory / entry["file"]
        if not path.exists():
            if entry["type"] == "block":
                module = build_block(BlockKey.from_dict(entry["key"]))
            else:
                module = build_network(network_from_dict(entry["spec"]))
            fp32_path = path if precision == "fp32" else path.with_name(entry["id"] + ".fp32.onnx")
            export_onnx(module, tuple(entry["input_shape"]), fp32_path, opset=opset)
            if precision == "int8":
                inputs = (calibration.inputs(entry["input_shape"]) if entry["type"] != "block"
                          else unit_normal_inputs(entry["input_shape"]))
                entry["float_ops"] = quantize_int8(fp32_path, path, inputs)
                fp32_path.unlink()
        elif precision == "int8":
            entry["float_ops"] = float_operators(path)  # an int8 file of an interrupted export
        if precision == "int8" and entry["type"] == "block":  # timed with the edges it has in an int8 network
            kind = entry["key"]["kind"]
            network_edges(path, input=kind != "stem_conv", output=kind != "seg_output")  # (a no-op once done)
        if progress is not None:
            progress(number, len(entries) + (ref_entry is not None))
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "bundle_id": _digest({"ids": [e["id"] for e in entries], "opset": opset, "layout": BUNDLE_LAYOUT,
                              "reference": None if ref_entry is None else ref_entry["id"],
                              **({} if precision == "fp32" else {"precision": precision,
                                                                 "calibration": calibration.name})}),
        "precision": precision,
        **({} if precision == "fp32" else {"calibration": calibration.name}),
        "resolution": [height, width],
        "opset": opset,
        "package_version": records.package_version(),
        "reference": ref_entry,
        **(info or {}),
        "entries": entries,
    }
    write_atomic(directory / "manifest.json", json.dumps(manifest, indent=1))
    shutil.copyfile(profile_script(), directory / "profile.py")
    shutil.copyfile(records.__file__, directory / "records.py")
    return manifest


def load_bundle(directory: str | Path) -> dict:
    """Read and check a bundle's manifest (every listed ONNX file must be there).

    Raises:
        RecordError: not a bundle, or a damaged one (the message says what to do).
    """
    return read_manifest(directory)


def run_locally(bundle_dir: str | Path, output: str | Path, *, device: str, threads: int, warmup: int,
                repeats: int) -> None:
    """Time a bundle on this machine by running its agent (``profile.py run``) as a process,
    exactly as on a device. Its progress lines are passed on to stderr. Resumes a partial
    ``output``.

    Raises:
        ProfileError: the agent stopped with an error (its message, and that rerunning resumes).
    """
    bundle_dir = Path(bundle_dir)
    command = [sys.executable, str(bundle_dir / "profile.py"), "run", str(bundle_dir), "-o", str(output),
               "--device", device, "--threads", str(threads), "--warmup", str(warmup), "--repeats", str(repeats)]
    error = ""
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as agent:
        for line in agent.stderr:  # type: ignore[union-attr]
            if line.startswith(AGENT_ERROR):
                error = line[len(AGENT_ERROR):].strip()
            elif line.strip():
                sys.stderr.write(line)
                sys.stderr.flush()
    if agent.returncode != 0:
        raise ProfileError(f"the timing of {bundle_dir} stopped: {error or f'exit code {agent.returncode}'}; "
                           f"what was measured is kept in {output}, and running the same command again resumes")

