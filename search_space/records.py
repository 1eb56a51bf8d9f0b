"""Files the project writes, and what they record of the machine that wrote them.

One module for every writer in the project and for the device agent
(``latency_tables/profile.py``), which carries a copy of this file to the device in each
bundle; so it needs only the Python standard library (3.8+):

- :func:`atomic_path` / :func:`write_atomic`: every file is written to a temporary name
  and renamed into place, so an interrupted write leaves the old file (or none), never
  half a file;
- the metadata CSV: ``# key: json-value`` lines on top of an ordinary CSV
  (:func:`format_csv`, :func:`parse_csv`, :func:`write_csv`, :func:`read_csv`); latency
  tables, device results, measurements and benchmark results all use it, so any of them
  can be read by any reader;
- the bundle manifest that the workstation writes and the agent reads (:func:`read_manifest`);
- provenance: :func:`package_version`, :func:`cpu_model`;
- the timing protocol's onnxruntime session settings (:func:`session_options`), the same
  for the agent and for the workstation's own profiling (``latency_tables/explain.py``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform

try:  # inside the package; on a device this file runs alone beside the agent
    from .errors import EvitNasError as _Base
except ImportError:
    _Base = type("EvitNasError", (Exception,), {})  # not Exception itself: (Exception, ValueError) has no MRO

__all__ = ["RecordError", "atomic_path", "write_atomic", "format_csv", "parse_csv", "write_csv", "read_csv",
           "read_manifest", "package_version", "cpu_model"]


class RecordError(_Base, ValueError):  # type: ignore[misc, valid-type]
    """A file that cannot be read as the record it should be; the message says what to do."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The one way this project writes a file: ``with atomic_path(p) as tmp: save(tmp)``. On
    an exception the temporary file is removed and ``path`` is left as it was. Parent
    folders are created.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    # keep the extension: some writers (matplotlib, torch.onnx) pick the format from it
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.tmp{ext}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path, data) -> None:
    """Write ``data`` (str as UTF-8, or bytes) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            with open(tmp, "wb") as handle:
                handle.write(data)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                handle.write(data)


def format_csv(meta: dict, columns, rows) -> str:
    """CSV text with ``# key: json-value`` metadata lines on top. Missing cells and None
    are written empty; columns not in ``columns`` are left out."""
    out = io.StringIO()
    for key, value in meta.items():
        out.write(f"# {key}: {json.dumps(value, ensure_ascii=False)}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()


def parse_csv(text: str, origin: str) -> tuple:
    """Inverse of :func:`format_csv`: (metadata dict, list of row dicts of strings).

    Raises:
        RecordError: a metadata line that is not ``# key: json-value``.
    """
    meta, body = {}, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if not sep:
                raise RecordError(f"{origin}, line {number}: a metadata line must read '# key: value'")
            try:
                meta[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                raise RecordError(f"{origin}, line {number}: unreadable metadata value {value.strip()!r}; "
                                  "the file is damaged (write it again)") from None
        elif line.strip():
            body.append(line)
    return meta, list(csv.DictReader(body))


def write_csv(path, columns, rows, meta=None) -> None:
    """Write a metadata CSV atomically (see :func:`format_csv`)."""
    write_atomic(path, format_csv(meta or {}, columns, rows))


def read_csv(path) -> tuple:
    """(metadata, rows) of a metadata CSV file (see :func:`parse_csv`).

    Raises:
        RecordError: a missing or unreadable file.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise RecordError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from None
    return parse_csv(text, path)


def read_manifest(bundle) -> dict:
    """The manifest of a bundle folder (ONNX files to time, written by ``evit-nas profile``),
    checked: valid JSON, the bundle format, every listed file present.

    Raises:
        RecordError: what is wrong, and to export or copy the bundle again.
    """
    bundle = os.fspath(bundle)
    path = os.path.join(bundle, "manifest.json")
    if not os.path.isfile(path):
        raise RecordError(f"{bundle} is not a bundle: no manifest.json (export one with `evit-nas profile --export-only`)")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); export the bundle again") from None
    if manifest.get("format") != "evit-nas-bundle" or not isinstance(manifest.get("entries"), list):
        raise RecordError(f"{path}: not an evit-nas bundle manifest; export the bundle again")
    for entry in manifest["entries"] + ([manifest["reference"]] if manifest.get("reference") else []):
        if not os.path.isfile(os.path.join(bundle, entry["file"])):
            raise RecordError(f"{bundle}: {entry['file']} is missing; copy the whole bundle folder again")
    return manifest


def package_version() -> str:
    """The installed evit-nas version ("unknown" when run from a copy, as on a device)."""
    try:
        from importlib import metadata

        return metadata.version("evit-nas")
    except Exception:  # not installed, or Python without importlib.metadata
        return "unknown"


def session_options(ort, threads: int):
    """onnxruntime ``SessionOptions`` of the timing protocol: ``threads`` intra-op threads,
    one inter-op thread, sequential execution, every graph optimisation, warnings off.
    ``ort`` is the onnxruntime module (imported by the caller: this file needs none)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


#: Arm Ltd. (CPU implementer 0x41) core part numbers of /proc/cpuinfo, for kernels that give no model name
ARM_CORES = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
             "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
             "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3"}


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name, as precisely as the OS tells it (``cpuinfo``: the text of
    /proc/cpuinfo, read when not given). An ARM kernel that names no model (a virtual
    machine's, some boards') gives the core from its implementer and part numbers."""
    text = cpuinfo
    if text is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    for field in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        if fields.get(field):
            return fields[field]
    if fields.get("CPU implementer") == "0x41" and fields.get("CPU part") in ARM_CORES:
        return f"ARM {ARM_CORES[fields['CPU part']]}"
    return platform.processor() or platform.machine()
