"""The device agent: time ONNX models with ONNX Runtime, on the device.

A stand-alone script, imported by no module: it needs only Python 3.8+, numpy,
onnxruntime and ``records.py`` (the project's file formats, standard library only), which
every bundle carries beside it; no torch, no evit-nas install. So a bundle folder can be
copied to a phone (Termux), a Raspberry Pi or a Jetson and run there::

    python3 profile.py run BUNDLE_DIR --threads 1 -o results.csv
    python3 profile.py info --threads 1

On the workstation, ``evit-nas profile`` runs this same script, as a process, over SSH or
locally.

A bundle is a folder of ONNX files and a ``manifest.json`` (written by ``evit-nas
profile --export-only`` on a workstation). The results file is a CSV with one row per
manifest entry and ``#`` metadata lines on top (device, CPU, architecture, OS, onnxruntime
version, threads, ...). It is rewritten atomically after every entry, so an interrupted
run resumes where it stopped and keeps the finished rows.

Protocol: CPU execution provider, ``intra_op_num_threads`` set explicitly, one inter-op
thread, sequential execution, all graph optimisations; warm-up visits, then timed visits
that go round a chunk of entries in turn (A B C A B C ...), together with the bundle's
reference network, whose median in each chunk (``ref_ms``) tracks the machine's speed;
per entry the median and the 10th/90th percentiles of the single-run times.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

try:  # in a bundle: the copy beside this script
    from records import RecordError, cpu_model, format_csv, parse_csv, read_manifest, session_options, write_atomic
except ImportError:  # in a source checkout
    from search_space.records import (RecordError, cpu_model, format_csv, parse_csv, read_manifest, session_options,
                                      write_atomic)

FORMAT = "evit-nas-results"
RESULT_COLUMNS = ["id", "median_ms", "p10_ms", "p90_ms", "runs", "ref_ms"]
#: when stderr is not a terminal (a log file, CI, SSH), one progress line at most this often
LOG_EVERY_S = 10.0


class ProfileError(Exception):
    """A problem the user can fix (bad bundle, missing onnxruntime, mismatched results)."""


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ProfileError(
            "onnxruntime is not installed on this machine; install it with "
            "`python3 -m pip install onnxruntime numpy` (on Termux: `pkg install python-onnxruntime` "
            "if pip has no wheel), then run again"
        ) from None
    return onnxruntime


def device_info(device: str, threads: int) -> dict:
    """What produced a measurement: device name, CPU, architecture, OS, versions, threads."""
    ort = _ort()
    import numpy

    return {
        "device": device,
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": ort.__version__,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def make_session(path: str, threads: int):
    """An onnxruntime CPU session set up by the protocol."""
    ort = _ort()
    return ort.InferenceSession(path, session_options(ort, threads), providers=["CPUExecutionProvider"])


def _feeds(session, seed: int = 0) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        if inp.type in ("tensor(uint8)", "tensor(int8)"):  # a block of an int8 table: a quantized activation
            bounds = np.iinfo(np.uint8 if inp.type == "tensor(uint8)" else np.int8)
            feeds[inp.name] = rng.integers(bounds.min, bounds.max + 1, size=shape, dtype=bounds.dtype)
        else:
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarise(times_s: list) -> dict:
    """Median, p10 and p90 in milliseconds of single-run times given in seconds."""
    return {
        "median_ms": _percentile(times_s, 0.5) * 1e3,
        "p10_ms": _percentile(times_s, 0.1) * 1e3,
        "p90_ms": _percentile(times_s, 0.9) * 1e3,
        "runs": len(times_s),
    }


class Timer:
    """One loaded model, ready to be timed run by run."""

    def __init__(self, path: str, threads: int) -> None:
        self.session = make_session(path, threads)
        self.feeds = _feeds(self.session)
        self.times: list = []

    def visit(self, min_seconds: float, record: bool = True) -> None:
        """Run once, and again until ``min_seconds`` were spent (tiny models)."""
        session, feeds = self.session, self.feeds
        spent = 0.0
        while True:
            start = time.perf_counter()
            session.run(None, feeds)
            elapsed = time.perf_counter() - start
            spent += elapsed
            if record:
                self.times.append(elapsed)
            if spent >= min_seconds:
                return


def time_models(paths: list, threads: int, warmup: int = 3, repeats: int = 20, min_visit_ms: float = 2.0) -> list:
    """Time several models; returns one summary per path.

    At one thread, fully interleaved: after ``warmup`` untimed visits each, the models are
    visited in turn ``repeats`` times (A B C A B C ...), so that a slow phase of the machine
    hits them all alike, and each model runs with the caches that the others left, as a
    block does inside a network. A visit runs a model once, or several times for models
    faster than ``min_visit_ms``.

    At more threads, one after another, each model's session alone alive while it is timed
    (its warm-up and timed visits back to back, then the session is closed): an idle
    session's intra-op threads spin after each run and take the cores from the next model's,
    so interleaved sessions ran 2.2x slower than one session timed alone at 2 threads, while
    one session at a time agrees with it (``benchmarks/thread_timing.py``). The reference
    network timed in every chunk follows the machine's speed instead.
    """
    if threads > 1:  # each model alone: its session and threads end before the next model's start
        return [summary for path in paths for summary in _time_together([path], threads, warmup, repeats, min_visit_ms)]
    return _time_together(paths, threads, warmup, repeats, min_visit_ms)


def _time_together(paths: list, threads: int, warmup: int, repeats: int, min_visit_ms: float) -> list:
    """The models of ``paths`` alive together, visited in turn (their sessions end on return)."""
    timers = [Timer(p, threads) for p in paths]
    for _ in range(warmup):
        for timer in timers:
            timer.visit(0.0, record=False)
    for _ in range(repeats):
        for timer in timers:
            timer.visit(min_visit_ms / 1e3)
    return [summarise(t.times) for t in timers]


def run_bundle(
    bundle: str,
    output: str,
    device: str,
    threads: int,
    warmup: int = 3,
    repeats: int = 20,
    chunk: int = 12,
    progress=None,
) -> None:
    """Time every entry of a bundle and write the results CSV, resuming a partial one.

    Entries are timed ``chunk`` at a time, fully interleaved, together with the bundle's
    reference network; each row keeps that chunk's reference median (``ref_ms``), so that
    the machine's changes of speed over the run can be measured and taken out. The results
    file is rewritten atomically after each chunk.

    Raises:
        ProfileError: bad bundle, or an existing results file from another bundle, thread
            count, architecture or onnxruntime version (it is never overwritten then).
    """
    manifest = read_manifest(bundle)
    meta = device_info(device, threads)
    meta.update({"format": FORMAT, "bundle": manifest.get("bundle_id", ""), "warmup": warmup, "repeats": repeats})
    done: dict = {}
    if os.path.exists(output):
        with open(output, encoding="utf-8") as handle:
            old_meta, old_rows = parse_csv(handle.read(), output)
        for field in ("format", "bundle", "threads", "arch", "onnxruntime"):
            if old_meta.get(field) != meta.get(field):
                raise ProfileError(
                    f"{output} holds results with {field}={old_meta.get(field)!r}, not {meta.get(field)!r}; "
                    "give another -o path (it is left untouched)"
                )
        done = {row["id"]: row for row in old_rows}
        meta["date"] = old_meta.get("date", meta["date"])
    reference = manifest.get("reference")
    todo = [e for e in manifest["entries"] if e["id"] not in done]
    total = len(manifest["entries"])
    start = time.monotonic()
    for first in range(0, len(todo), chunk):
        batch = todo[first:first + chunk]
        paths = [os.path.join(bundle, e["file"]) for e in batch]
        if reference is not None:
            paths.append(os.path.join(bundle, reference["file"]))
        stats = time_models(paths, threads, warmup, repeats)
        ref_ms = stats[-1]["median_ms"] if reference is not None else ""
        for entry, entry_stats in zip(batch, stats):
            row = {"id": entry["id"], "ref_ms": ref_ms, **entry_stats}
            done[entry["id"]] = {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}
        order = [e["id"] for e in manifest["entries"] if e["id"] in done]
        write_atomic(output, format_csv(meta, RESULT_COLUMNS, [done[i] for i in order]))
        if progress is not None:
            progress(len(done), total, time.monotonic() - start, first + len(batch), len(todo))


class _Progress:
    """Progress on stderr: one line rewritten in place on a terminal; elsewhere (a log, CI,
    a pipe over SSH) a plain line at most every LOG_EVERY_S seconds, and the last one."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int, elapsed: float, new_done: int, new_total: int) -> None:
        eta = elapsed / new_done * (new_total - new_done) if new_done else 0.0
        text = f"{done}/{total} timed, {elapsed:.0f} s elapsed, about {eta:.0f} s left"
        if self.tty:
            self.stream.write(f"\r{text}   " + ("\n" if done == total else ""))
        elif done == total or time.monotonic() - self.last >= LOG_EVERY_S:
            self.stream.write(text + "\n")
            self.last = time.monotonic()
        self.stream.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="profile.py",
        description="Time the ONNX models of an evit-nas bundle with onnxruntime (needs only numpy + onnxruntime).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="time every model of a bundle")
    run.add_argument("bundle", help="bundle folder (manifest.json + ONNX files)")
    run.add_argument("-o", "--output", required=True, help="results CSV (resumed if it exists)")
    run.add_argument("--device", default=platform.node() or "device", help="a name for this device")
    run.add_argument("--threads", type=int, default=1, help="intra-op threads (default: 1)")
    run.add_argument("--warmup", type=int, default=3, help="untimed visits per model (default: 3)")
    run.add_argument("--repeats", type=int, default=20, help="timed visits per model (default: 20)")
    run.add_argument("--chunk", type=int, default=12, help="models timed together, interleaved (default: 12)")
    info = sub.add_parser("info", help="print this device's metadata as JSON")
    info.add_argument("--device", default=platform.node() or "device")
    info.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print(json.dumps(device_info(args.device, args.threads), indent=2))
            return 0
        if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.chunk < 1:
            raise ProfileError("--threads, --repeats and --chunk must be >= 1 and --warmup >= 0")
        run_bundle(args.bundle, args.output, args.device, args.threads, args.warmup, args.repeats, args.chunk,
                   progress=_Progress())
    except (ProfileError, RecordError) as exc:
        print(f"profile.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
