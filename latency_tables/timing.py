"""How a latency is taken: one record of the options every end-to-end timing shares.

A measurement (``measure.measure``, ``build.measure_networks``, ``explain.explain``, the
report's measurements) used to take the warm-up, the timed visits, the thread count, the
precision and the SSH target as loose arguments, each passing them on to the next. They
travel together as one frozen :class:`Timing`, so a call site cannot mix up two of them
and a report can record exactly what its numbers were taken with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from search_space.errors import EvitNasError

from .quantize import PRECISIONS

__all__ = ["Timing", "TimingError"]


class TimingError(EvitNasError, ValueError):
    """Timing options that cannot be used (a negative warm-up, no timed visits, 0 threads)."""


@dataclass(frozen=True)
class Timing:
    """How to time a network, batch 1, with onnxruntime's CPU provider.

    Attributes:
        warmup: untimed visits per network first (>= 0).
        repeats: timed visits per network (>= 1); the median and p10/p90 are reported.
        threads: onnxruntime intra-op threads (>= 1).
        precision: "fp32", or "int8" (onnxruntime static quantization, ``latency_tables.quantize``).
        remote: a ``latency_tables.remote.SSHTarget`` to time on over SSH; None: this machine.

    Raises:
        TimingError: a count out of range or an unknown precision.

    >>> Timing(warmup=1, repeats=5).where
    'this machine'
    """

    warmup: int = 3
    repeats: int = 20
    threads: int = 1
    precision: str = "fp32"
    remote: Any = None

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1 or self.threads < 1:
            raise TimingError(f"warm-up must be >= 0, repeats and threads >= 1 (got --warmup {self.warmup}, "
                              f"--repeats {self.repeats}, {self.threads} thread(s))")
        if self.precision not in PRECISIONS:
            raise TimingError(f"unknown precision {self.precision!r}; choose {' or '.join(PRECISIONS)}")

    def for_table(self, table: Any) -> Timing:
        """The same visits with ``table``'s thread count and precision (its protocol)."""
        return replace(self, threads=int(table.meta["threads"]), precision=table.precision)

    def visits(self, warmup: int, repeats: int) -> Timing:
        """The same settings with other visit counts."""
        return replace(self, warmup=warmup, repeats=repeats)

    @property
    def where(self) -> str:
        """Where the timing runs: the SSH host, or "this machine"."""
        return str(getattr(self.remote, "host", self.remote)) if self.remote is not None else "this machine"

    def describe(self) -> str:
        """``"3 warm-up + 20 timed runs, 1 thread(s), fp32"``."""
        return f"{self.warmup} warm-up + {self.repeats} timed runs, {self.threads} thread(s), {self.precision}"
