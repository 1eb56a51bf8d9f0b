"""Progress of long jobs on stderr: a tqdm bar on a terminal; elsewhere (CI, a log file,
``make demo > log``) a plain line at most every ``LOG_EVERY_S`` seconds and one at the end,
instead of thousands of carriage-return updates."""

from __future__ import annotations

import sys
import time
from typing import Any

#: seconds between progress lines when stderr is not a terminal
LOG_EVERY_S = 10.0


class Progress:
    """A ``(done, total, **postfix)`` callback; close() ends the bar or line."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit = desc, unit
        self.bar: Any = None
        self.started = self.last = 0.0

    def __call__(self, done: int, total: int, *_: Any, **postfix: Any) -> None:
        if not sys.stderr.isatty():
            now = time.monotonic()
            if not self.started:
                self.started = self.last = now
            if done >= total or now - self.last >= LOG_EVERY_S:
                extra = "".join(f", {k} {v}" for k, v in postfix.items())
                print(f"{self.desc}: {done}/{total} {self.unit}s{extra} ({now - self.started:.0f} s)",
                      file=sys.stderr, flush=True)
                self.last = now
            if done >= total:
                self.started = 0.0
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, dynamic_ncols=True, leave=True)
        if postfix:
            self.bar.set_postfix(refresh=False, **postfix)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
