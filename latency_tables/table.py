"""LatencyTable: one device's measured block latencies, and the latency predictor.

A table is one CSV file: ``#`` metadata lines (what produced it: device, CPU, architecture,
OS, onnxruntime version, threads, resolution, date, package version, space fingerprint,
the reference network's typical latency, the calibration), then one row per BlockKey.

Prediction. A block timed alone is not a block inside a network: alone it pays a session
call and the layout changes at its edges, and (timed interleaved with other models, as
the protocol does) it reads its input cold from memory, while inside a network the input
was just written by the previous block and is still in cache; ONNX Runtime also fuses and
reorders across block edges. So the table also holds end-to-end timings of calibration
networks (B0-B3 where the space holds them, and random networks of the space:
``build.calibration_sample``; timed in the same run), and the predictor is a calibrated
sum::

    predicted_ms = sum over blocks b of (a[kind(b)] * table_ms(b) + p + q * input_MB(b)) + c

with one scale ``a`` per block kind, a per-block term ``p``, a term ``q`` per MB of block
input (the cold reads) and a constant ``c``, fitted by least squares on relative errors
with a light pull towards the plain sum (a = 1, p = q = c = 0), so that a kind seldom seen
cannot swing far.

Speed drift. A shared or throttling device changes speed over minutes; every chunk of
entries is timed together with a reference network (EfficientViT-B0) and each latency is
rescaled by ``reference_ms / (the reference's median in its chunk)``, so all rows are in
"the device at its typical speed", ``reference_ms`` being the median over the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from search_space.blocks import BLOCK_KINDS, BlockKey, network_blocks
from search_space.errors import EvitNasError
from search_space.records import format_csv, parse_csv, write_atomic
from search_space.spec import ArchSpec, check_resolution

from .transfer import fit_transfer

__all__ = ["TABLE_FORMAT", "FEATURES", "TableError", "MissingBlocksError", "LatencyTable", "Calibration",
           "fit_calibration", "features"]

TABLE_FORMAT = "evit-nas-latency-table"
KEY_COLUMNS = [f.name for f in fields(BlockKey)]
STAT_COLUMNS = ["median_ms", "p10_ms", "p90_ms", "runs", "raw_median_ms", "ref_ms"]
REQUIRED_META = ("format", "version", "device", "cpu", "arch", "onnxruntime", "threads", "resolution", "date")


class TableError(EvitNasError, ValueError):
    """A latency table that is unreadable or does not fit the request; says what to do."""


class MissingBlocksError(TableError):
    """The table lacks blocks a network needs."""

    def __init__(self, missing: list[BlockKey], table_path: str = "the table") -> None:
        self.missing = missing
        shown = "; ".join(k.describe() for k in missing[:3]) + (f"; and {len(missing) - 3} more" if len(missing) > 3 else "")
        super().__init__(
            f"{table_path} has no entry for {len(missing)} block(s) this network needs ({shown}). "
            "Measure them with `evit-nas profile ... --blocks-from SPEC.json -o TABLE` (the existing rows are kept)."
        )


FEATURES = tuple(f"scale_{kind}" for kind in BLOCK_KINDS) + ("per_block_ms", "per_input_mb_ms", "constant_ms")
#: The plain sum of block latencies, the prior every fit is pulled towards.
IDENTITY = {name: (1.0 if name.startswith("scale_") else 0.0) for name in FEATURES}


def input_mb(key: BlockKey) -> float:
    """Size of a block's input in MB (float32): what it reads cold when timed alone."""
    return key.in_channels * key.height * key.width * 4 / 1e6


def features(keys: Iterable[BlockKey], block_ms: dict[BlockKey, float]) -> np.ndarray:
    """A network's calibration features, in the order of ``FEATURES``: table latency summed
    per block kind, number of blocks, summed input MB, 1."""
    out = np.zeros(len(FEATURES))
    kinds = len(BLOCK_KINDS)
    for key in keys:
        out[BLOCK_KINDS.index(key.kind)] += block_ms[key]
        out[kinds] += 1
        out[kinds + 1] += input_mb(key)
    out[kinds + 2] = 1.0
    return out


@dataclass(frozen=True)
class Calibration:
    """``predicted = features . coefficients`` (see :data:`FEATURES`); identity when
    uncalibrated (the plain sum of the blocks' table latencies)."""

    coefficients: dict[str, float] = field(default_factory=lambda: dict(IDENTITY))
    networks: int = 0
    fit_mape: float | None = None
    #: leave-one-out MAPE (%) of the fit, the honest estimate; None when too few networks
    cv_mape: float | None = None
    #: the strength of the pull towards the prior that cross-validation chose
    prior_weight: float | None = None

    def vector(self) -> np.ndarray:
        return np.array([self.coefficients[name] for name in FEATURES])

    def to_dict(self) -> dict[str, Any]:
        return {"coefficients": self.coefficients, "networks": self.networks, "fit_mape": self.fit_mape,
                "cv_mape": self.cv_mape, "prior_weight": self.prior_weight}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        coefficients = {name: float(data["coefficients"][name]) for name in FEATURES}
        return cls(coefficients, int(data.get("networks", 0)), data.get("fit_mape"), data.get("cv_mape"),
                   data.get("prior_weight"))


def fit_calibration(feature_rows: np.ndarray, measured_ms: np.ndarray, prior_weight: float | None = None,
                    prior: dict[str, float] | None = None) -> Calibration:
    """Fit the calibration to end-to-end timings with :func:`latency_tables.transfer.fit_transfer`:
    least squares on relative errors, pulled towards ``prior`` (default: the plain sum,
    :data:`IDENTITY`) rescaled by the typical measured / prior ratio; the strength of the
    pull is chosen by leave-one-out cross-validation unless ``prior_weight`` is given. A
    ``prior`` given (another device's calibration) is trusted: with fewer than 10 networks
    its shape is kept (``transfer.TRUSTED_PRIOR_WEIGHT``).

    Args:
        feature_rows: (networks, len(FEATURES)) from :func:`features`.
        measured_ms: (networks,) measured end-to-end latencies.
    """
    fit = fit_transfer(np.asarray(feature_rows, dtype=float), np.asarray(measured_ms, dtype=float),
                       np.array([(prior or IDENTITY)[name] for name in FEATURES]), prior_weight=prior_weight,
                       trusted_prior=prior is not None)
    return Calibration(dict(zip(FEATURES, (float(v) for v in fit.coefficients))), fit.networks, fit.fit_mape,
                       fit.cv_mape, fit.prior_weight)


def _number(row: dict, column: str, origin: str, line: int) -> float:
    text = row.get(column)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise TableError(f"{origin}, row {line}: {column}={text!r} is not a number; the table is damaged, profile again") from None
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise TableError(f"{origin}, row {line}: {column}={text} is not a latency (negative, NaN or infinite); profile again")
    return value


def _key_from_row(row: dict, origin: str, line: int) -> BlockKey:
    data: dict[str, Any] = {}
    for f in fields(BlockKey):
        text = row[f.name]
        try:
            if f.name == "kind":
                data[f.name] = text
            elif f.name == "scales":
                data[f.name] = tuple(int(v) for v in text.split("-") if v)
            elif f.name in ("fewer_norm", "residual"):
                if text not in ("True", "False"):
                    raise ValueError(text)
                data[f.name] = text == "True"
            else:
                data[f.name] = int(text)
        except (TypeError, ValueError):
            raise TableError(f"{origin}, row {line}: bad {f.name}={text!r}; the table is damaged, profile again") from None
    try:
        return BlockKey(**data)
    except ValueError as exc:
        raise TableError(f"{origin}, row {line}: {exc}") from None


def _key_to_row(key: BlockKey) -> dict[str, Any]:
    row = key.to_dict()
    row["scales"] = "-".join(str(s) for s in key.scales)
    return row


@dataclass
class LatencyTable:
    """Block latencies of one device at one resolution and thread count.

    Attributes:
        meta: what produced the table (see the module docstring).
        rows: BlockKey -> statistics (``median_ms``, ``p10_ms``, ``p90_ms``: rescaled to the
            device's typical speed; ``raw_median_ms`` as timed; ``ref_ms`` the reference's
            median in the same chunk; ``runs``).
        calibration: the fitted correction (identity if none).
        path: where it was loaded from, for messages.
    """

    meta: dict[str, Any]
    rows: dict[BlockKey, dict[str, float]]
    calibration: Calibration = field(default_factory=Calibration)
    path: str = "the table"

    def __post_init__(self) -> None:
        self.rows = {key.canonical(): stats for key, stats in self.rows.items()}

    # ------------------------------------------------------------------ IO
    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        """Read and check a table file.

        Raises:
            TableError: missing file, truncated or damaged CSV, missing columns or
                metadata, negative/NaN latencies, duplicate rows.
        """
        path = Path(path)
        origin = str(path)
        if not path.is_file():
            raise TableError(f"latency table not found: {path} (build one with `evit-nas profile`)")
        try:
            text = path.read_text(encoding="utf-8")
            meta, raw_rows = parse_csv(text, origin)
        except (UnicodeDecodeError, ValueError) as exc:
            raise TableError(f"{origin}: not a latency table ({exc})") from None
        if meta.get("format") != TABLE_FORMAT:
            raise TableError(f"{origin}: not an evit-nas latency table (no '# format: \"{TABLE_FORMAT}\"' line); build one with `evit-nas profile`")
        missing_meta = [m for m in REQUIRED_META if m not in meta]
        if missing_meta:
            raise TableError(f"{origin}: metadata {missing_meta} missing; the table is damaged, profile again")
        if not text.endswith("\n"):
            raise TableError(f"{origin}: the file ends in the middle of a line (truncated?); profile again")
        header = next((line for line in text.splitlines() if line and not line.startswith("#")), "")
        missing_cols = [c for c in KEY_COLUMNS + ["median_ms"] if c not in header.split(",")]
        if missing_cols:
            raise TableError(f"{origin}: column(s) {missing_cols} missing; the table is damaged, profile again")
        rows: dict[BlockKey, dict[str, float]] = {}
        for line, row in enumerate(raw_rows, 2):
            if None in row or any(v is None for v in row.values()):
                raise TableError(f"{origin}, row {line}: wrong number of fields (truncated or damaged); profile again")
            key = _key_from_row(row, origin, line)
            if key in rows:
                raise TableError(f"{origin}, row {line}: {key.describe()} appears twice; profile again")
            rows[key] = {c: _number(row, c, origin, line) for c in STAT_COLUMNS if row.get(c, "") != ""}
            if "median_ms" not in rows[key]:
                raise TableError(f"{origin}, row {line}: no median_ms")
        try:
            calibration = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else Calibration()
        except (KeyError, TypeError, ValueError, AttributeError):
            raise TableError(f"{origin}: unreadable calibration metadata; profile again") from None
        return cls(meta, rows, calibration, origin)

    def save(self, path: str | Path) -> None:
        """Write the table atomically (an interrupted save leaves the old file intact)."""
        # the format first; the long list of calibration networks last
        meta = {"format": TABLE_FORMAT, **{k: v for k, v in self.meta.items() if k not in ("format", "calibration_networks")},
                "calibration": self.calibration.to_dict(), "calibration_networks": self.meta.get("calibration_networks", [])}
        rows = [{**_key_to_row(key), **{c: f"{v:.6g}" for c, v in stats.items()}} for key, stats in sorted(self.rows.items())]
        write_atomic(path, format_csv(meta, KEY_COLUMNS + STAT_COLUMNS, rows))

    # ------------------------------------------------------------ checks
    @property
    def resolution(self) -> tuple[int, int]:
        return tuple(self.meta["resolution"])  # type: ignore[return-value]

    def notices(self, cpu: str | None = None, arch: str | None = None) -> list[str]:
        """One-line warnings about using this table: it is uncalibrated (a plain sum of block
        latencies), or it was measured on another CPU or architecture than ``cpu``/``arch``
        (the machine a command runs or measures on), so its latencies may not hold there."""
        out = []
        if self.calibration.networks == 0:
            out.append(f"WARNING: {self.path} is not calibrated (no end-to-end network could be fitted: "
                       f"{self.meta.get('calibration_note', 'too few calibration networks')}); its predictions are "
                       "plain sums of block latencies. Profile more networks into it (evit-nas profile --blocks-from "
                       "... -o TABLE) to calibrate it")
        theirs = (self.meta.get("cpu"), self.meta.get("arch"))
        if (cpu is not None and theirs[0] != cpu) or (arch is not None and theirs[1] != arch):
            out.append(f"WARNING: {self.path} was measured on {theirs[0]} ({theirs[1]}), not on this machine's "
                       f"{cpu} ({arch}); its latencies are that device's. For this machine, adapt it in minutes: "
                       f"evit-nas profile --adapt-from {self.path} --resolution {'x'.join(map(str, self.resolution))}")
        return out

    @property
    def precision(self) -> str:
        """The deployment precision the table was measured in: "fp32" or "int8"."""
        return str(self.meta.get("precision", "fp32"))

    def check(self, resolution: Any = None, threads: int | None = None, space_fingerprint: str | None = None,
              arch: str | None = None, onnxruntime: str | None = None, force: bool = False,
              precision: str | None = None) -> list[str]:
        """Refuse a table that does not fit the request; return warnings for forced mismatches.

        Resolution, precision, space and architecture mismatches are errors (``force`` does
        not change that). Thread count and onnxruntime version mismatches are errors unless
        ``force``, then loud warnings.
        """
        warnings: list[str] = []
        if precision is not None and precision != self.precision:
            raise TableError(
                f"{self.path} was measured in {self.precision}, not {precision}; a table of one precision is never "
                f"used for another: build a {precision} table (`evit-nas profile --precision {precision}`) or use "
                f"--precision {self.precision}"
            )
        if resolution is not None and tuple(check_resolution(resolution)) != self.resolution:
            h, w = self.resolution
            raise TableError(
                f"{self.path} was measured at {h}x{w}, not {resolution[0]}x{resolution[1]}; use a table for "
                f"{resolution[0]}x{resolution[1]} (`evit-nas profile --resolution {resolution[0]}x{resolution[1]}`) or predict at {h}x{w}"
            )
        if space_fingerprint is not None and self.meta.get("space_fingerprint") not in (None, space_fingerprint):
            raise TableError(
                f"{self.path} was built for another search space (fingerprint {self.meta.get('space_fingerprint')}, "
                f"not {space_fingerprint}); profile this space or pass the space the table was built for"
            )
        if arch is not None and self.meta["arch"] != arch:
            raise TableError(
                f"{self.path} was measured on {self.meta['arch']}, and this machine is {arch}; run the measurement on "
                f"the table's device (`--remote user@host`) or build a table here"
            )
        for name, wanted in (("threads", threads), ("onnxruntime", onnxruntime)):
            if wanted is not None and self.meta[name] != wanted:
                message = f"{self.path} was measured with {name}={self.meta[name]}, not {wanted}"
                if not force:
                    raise TableError(message + "; build a matching table, or pass --force to use it anyway")
                warnings.append("WARNING: " + message + "; its latencies may not hold here")
        return warnings

    # ------------------------------------------------------------ predict
    def block_ms(self, key: BlockKey) -> float:
        """Table latency of one block (ms at the device's typical speed)."""
        try:
            return self.rows[key]["median_ms"]
        except KeyError:
            raise MissingBlocksError([key], self.path) from None

    def missing(self, keys: Iterable[BlockKey]) -> list[BlockKey]:
        """The keys (distinct, in order) that the table lacks."""
        rows = self.rows
        return [k for k in dict.fromkeys(keys) if k not in rows]

    def predict_ms(self, spec: ArchSpec, resolution: Any = None) -> float:
        """Predicted end-to-end latency of ``spec`` in ms (batch 1, the table's threads).

        Raises:
            TableError: the table is for another resolution.
            MissingBlocksError: the table lacks some of the network's blocks.
        """
        if resolution is None:
            resolution = self.resolution
        self.check(resolution=resolution)
        return self.predict_blocks([key for _, key in network_blocks(spec, resolution)])

    def predict_blocks(self, keys: list[BlockKey]) -> float:
        """Predicted latency (ms) of a network given as its BlockKeys (at this table's size)."""
        return float(self._block_features(keys) @ self._vector)

    def _block_features(self, keys: list[BlockKey]) -> np.ndarray:
        missing = self.missing(keys)
        if missing:
            raise MissingBlocksError(missing, self.path)
        return features(keys, {k: self.rows[k]["median_ms"] for k in keys})

    @property
    def _vector(self) -> np.ndarray:
        cached = self.__dict__.get("_vector_cache")
        if cached is None or cached[0] is not self.calibration:
            cached = (self.calibration, self.calibration.vector())
            self.__dict__["_vector_cache"] = cached
        return cached[1]

    def features(self, spec: ArchSpec, resolution: Any = None) -> np.ndarray:
        """The calibration features of ``spec`` (see :func:`features`).

        Raises:
            MissingBlocksError: the table lacks some of the network's blocks.
        """
        return self._block_features([key for _, key in network_blocks(spec, resolution or self.resolution)])

    def breakdown_ms(self, spec: ArchSpec, resolution: Any = None) -> dict[str, float]:
        """Predicted ms per stage (stem, stage1..4, head) and ``overhead`` (the per-network
        and per-block terms of the calibration); they add up to :meth:`predict_ms`."""
        resolution = resolution or self.resolution
        self.check(resolution=resolution)
        coef = self.calibration.coefficients
        out: dict[str, float] = {}
        for slot, key in network_blocks(spec, resolution):
            ms = coef[f"scale_{key.kind}"] * self.block_ms(key) + coef["per_block_ms"] + coef["per_input_mb_ms"] * input_mb(key)
            out[slot.stage] = out.get(slot.stage, 0.0) + ms
        out["overhead"] = coef["constant_ms"]
        return out
