"""Multi-thread timing: which protocol agrees with one plain onnxruntime session timed alone?

A user's application runs one session with ``intra_op_num_threads = N`` and onnxruntime's
other defaults. The project's timing protocol (``latency_tables.profile.time_models``) keeps
a session per model alive and visits them in turn; at N > 1 the idle sessions' worker
threads spin after each run and compete for the cores. This benchmark times the same whole
networks (B0 and ``--random`` networks of the default space) under five protocols, at
``--threads`` N:

- ``plain``: one default session at a time (10 warm-up runs, median of 40): the reference;
- ``plain_nospin``: the same with ``session.intra_op.allow_spinning = 0``;
- ``interleaved``: the project's protocol as it was (every session alive, visited in turn);
- ``interleaved_nospin``: the same with spinning off in every session;
- ``interleaved_warm``: interleaved with spinning on, each visit an untimed run first (the
  other sessions' threads stop spinning meanwhile, this one's are awake), then a timed one;
- ``agent``: the project's protocol as it is now (``time_models``, with ``--repeats``
  visits): at 1 thread interleaved, at more threads one session alive at a time (a block
  of warm-up and timed runs per model, the models in turn).

The protocols run twice, in one order and then the reverse, so that a drift of the
machine hits them alike; each one's figure is the mean of its two passes. Printed per
protocol: the median over the networks of (its ms / plain's ms - 1) and the worst such
error. Run it on a quiet CPU; the record names the CPU, onnxruntime and threads.

    python benchmarks/thread_timing.py --threads 2 --resolution 128x256 --random 5
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brief_runs import write_json  # noqa: E402  (benchmarks/ is on the path when run as a script)
from evit_nas.args import parse_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PROTOCOLS = ("plain", "plain_nospin", "interleaved", "interleaved_nospin", "interleaved_warm", "agent")
WARMUP, REPEATS = 10, 40


def export_files(specs: dict, resolution: tuple[int, int], work: Path) -> dict[str, Path]:
    """``work/NAME_HxW.onnx`` for each named network (exported once, kept for a rerun)."""
    from search_space import build_model
    from search_space.cost.export import export_onnx

    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in specs.items():
        path = work / f"{name}_{resolution[0]}x{resolution[1]}.onnx"
        if not path.is_file():
            export_onnx(build_model(spec).eval(), (1, 3, *resolution), path)
        paths[name] = path
    return paths


def export_networks(resolution: tuple[int, int], count: int, work: Path) -> dict[str, Path]:
    """B0 and ``count`` random networks of the default space (seeds 7000...)."""
    from search_space import SearchSpace
    from search_space.registry import model_spec

    space = SearchSpace.default()
    specs = {"b0": model_spec("efficientvit_seg_b0")} | {f"random{i}": space.sample(7000 + i) for i in range(count)}
    return export_files(specs, resolution, work)


def session(path: Path, threads: int, protocol: bool, spinning: bool):
    import onnxruntime as ort

    from search_space.records import session_options

    if protocol:
        options = session_options(ort, threads)
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    import numpy as np

    inp = s.get_inputs()[0]
    feeds = {inp.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in inp.shape])
             .astype(np.float32)}
    return s, feeds


def run_ms(s, feeds) -> float:
    began = time.perf_counter()
    s.run(None, feeds)
    return (time.perf_counter() - began) * 1e3


def time_alone(paths: dict[str, Path], threads: int, spinning: bool) -> dict[str, float]:
    """Each model with a plain default session (``spinning`` as given), one alive at a time:
    10 warm-up runs, the median of 40."""
    out = {}
    for name, path in paths.items():
        s, feeds = session(path, threads, False, spinning)
        for _ in range(WARMUP):
            run_ms(s, feeds)
        out[name] = statistics.median(run_ms(s, feeds) for _ in range(REPEATS))
        del s
        gc.collect()
    return out


def time_interleaved(paths: dict[str, Path], threads: int, spinning: bool, warm: bool = False) -> dict[str, float]:
    live = {name: session(path, threads, True, spinning) for name, path in paths.items()}
    for _ in range(3):
        for s, feeds in live.values():
            run_ms(s, feeds)
    times: dict[str, list[float]] = {name: [] for name in live}
    for _ in range(REPEATS // 2):
        for name, (s, feeds) in live.items():
            if warm:
                run_ms(s, feeds)
            times[name].append(run_ms(s, feeds))
    return {name: statistics.median(v) for name, v in times.items()}


def run_protocol(name: str, paths: dict[str, Path], threads: int) -> dict[str, float]:
    if name == "plain":
        return time_alone(paths, threads, spinning=True)
    if name == "plain_nospin":
        return time_alone(paths, threads, spinning=False)
    if name == "interleaved":
        return time_interleaved(paths, threads, spinning=True)
    if name == "interleaved_nospin":
        return time_interleaved(paths, threads, spinning=False)
    if name == "interleaved_warm":
        return time_interleaved(paths, threads, spinning=True, warm=True)
    from latency_tables.profile import time_models

    names = list(paths)
    stats = time_models([str(paths[n]) for n in names], threads, warmup=3, repeats=REPEATS // 2)
    return {n: s["median_ms"] for n, s in zip(names, stats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=parse_threads, default=2, help="intra-op threads (default 2)")
    parser.add_argument("--resolution", default="128x256", help="network input HxW (default 128x256)")
    parser.add_argument("--random", type=int, default=5, help="random networks besides B0 (default 5)")
    parser.add_argument("--out", default=str(RESULTS / "thread_timing.json"))
    parser.add_argument("--work", default="/tmp/evitnas-thread-timing", help="where the ONNX files are kept")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    import onnxruntime as ort

    from search_space.records import cpu_model

    resolution = tuple(int(v) for v in args.resolution.split("x"))
    paths = export_networks(resolution, args.random, Path(args.work))
    passes: dict[str, list[dict[str, float]]] = {p: [] for p in PROTOCOLS}
    for order in (PROTOCOLS, PROTOCOLS[::-1]):
        for protocol in order:
            passes[protocol].append(run_protocol(protocol, paths, args.threads))
            print(f"{protocol:>19}: " + ", ".join(f"{n} {v:.2f}" for n, v in passes[protocol][-1].items()) + " ms",
                  flush=True)
    mean = {p: {n: statistics.mean(run[n] for run in runs) for n in paths} for p, runs in passes.items()}
    report = {"command": "python benchmarks/thread_timing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cpu": cpu_model(), "onnxruntime": ort.__version__, "threads": args.threads,
              "resolution": list(resolution), "warmup": WARMUP, "repeats": REPEATS, "ms": mean, "passes": passes,
              "error_vs_plain": {}}
    print(f"\n{args.threads} thread(s), {cpu_model()}, onnxruntime {ort.__version__}: error against one plain "
          "default session timed alone")
    first, second = passes["plain"]
    noise = [second[n] / first[n] - 1 for n in paths]
    report["plain_pass2_vs_pass1"] = {"median_pct": round(100 * statistics.median(noise), 2),
                                      "worst_pct": round(100 * max(noise, key=abs), 2)}
    print(f"{'plain, pass 2 vs 1':>19}: median {100 * statistics.median(noise):+6.1f}%, worst "
          f"{100 * max(noise, key=abs):+6.1f}% (the machine's own drift over the run)")
    for protocol in PROTOCOLS[1:]:
        errors = [mean[protocol][n] / mean["plain"][n] - 1 for n in paths]
        worst = max(errors, key=abs)
        report["error_vs_plain"][protocol] = {"median_pct": round(100 * statistics.median(errors), 2),
                                              "worst_pct": round(100 * worst, 2)}
        print(f"{protocol:>19}: median {100 * statistics.median(errors):+6.1f}%, worst {100 * worst:+6.1f}%")
    write_json(Path(args.out), report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
