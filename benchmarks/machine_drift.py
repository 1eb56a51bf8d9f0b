"""How much does this machine's speed drift? What any latency method can reach here.

One network (EfficientViT-B0 by default) is timed with a plain onnxruntime loop every
``--every`` seconds for ``--minutes`` minutes: each sample is the median of ``--runs``
back-to-back runs of one session kept alive (after a warm-up). Printed: the samples'
spread around their overall median (p10, p90, min, max in %), and what a short window
sees: for windows as long as a short adaptation (``--window`` seconds), the spread of each
window's median against the overall one. A table adapted inside one such window takes that
window's speed as the machine's. Run it on a quiet CPU.

    python benchmarks/machine_drift.py --minutes 10 --every 10 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brief_runs import write_json  # noqa: E402
from evit_nas.args import parse_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="efficientvit_seg_b0")
    parser.add_argument("--resolution", default="256x512", help="input HxW (default 256x512)")
    parser.add_argument("--threads", type=parse_threads, default=1)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--runs", type=int, default=10, help="runs per sample, their median is the sample")
    parser.add_argument("--window", type=float, default=20.0, help="a short adaptation's window in s (default 20)")
    parser.add_argument("--out", default=str(RESULTS / "machine_drift.json"))
    args = parser.parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.every <= 0 or args.minutes <= 0:
        parser.error("--threads and --runs must be at least 1, --every and --minutes positive")
    import numpy as np
    import onnxruntime as ort

    from search_space import build_model
    from search_space.cost.export import export_onnx
    from search_space.records import cpu_model
    from search_space.registry import model_spec

    resolution = tuple(int(v) for v in args.resolution.split("x"))
    path = Path("/tmp") / f"evitnas-drift-{args.network}-{args.resolution}.onnx"
    if not path.is_file():
        export_onnx(build_model(model_spec(args.network)).eval(), (1, 3, *resolution), path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, *resolution)).astype(np.float32)
    for _ in range(10):
        session.run(None, {name: x})
    samples: list[tuple[float, float]] = []  # (seconds since start, median ms)
    began = time.monotonic()
    end = began + args.minutes * 60
    next_at = began
    while time.monotonic() < end:
        time.sleep(max(0.0, next_at - time.monotonic()))
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            session.run(None, {name: x})
            times.append((time.perf_counter() - start) * 1e3)
        samples.append((round(time.monotonic() - began, 2), round(statistics.median(times), 4)))
        next_at += args.every
        print(f"{samples[-1][0]:7.1f} s: {samples[-1][1]:.3f} ms", flush=True)
    values = [ms for _, ms in samples]
    overall = statistics.median(values)
    rel = [100 * (v / overall - 1) for v in values]
    per_window = min(len(values), max(1, round(args.window / args.every)))
    windows = [100 * (statistics.median(values[i:i + per_window]) / overall - 1)
               for i in range(0, len(values) - per_window + 1)]
    report = {"command": "python benchmarks/machine_drift.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cpu": cpu_model(), "onnxruntime": ort.__version__, "threads": args.threads,
              "network": args.network, "resolution": list(resolution), "runs_per_sample": args.runs,
              "every_s": args.every, "minutes": args.minutes, "median_ms": overall, "samples": samples,
              "sample_pct": {"p10": round(percentile(rel, 0.1), 2), "p90": round(percentile(rel, 0.9), 2),
                             "min": round(min(rel), 2), "max": round(max(rel), 2)},
              "window_s": args.window,
              "window_pct": {"p10": round(percentile(windows, 0.1), 2), "p90": round(percentile(windows, 0.9), 2),
                             "min": round(min(windows), 2), "max": round(max(windows), 2)}}
    write_json(Path(args.out), report)
    s, w = report["sample_pct"], report["window_pct"]
    print(f"\n{args.network} at {args.resolution}, {args.threads} thread(s), {cpu_model()}, onnxruntime "
          f"{ort.__version__}: median {overall:.3f} ms over {len(values)} samples in {args.minutes:g} min")
    print(f"samples against it: p10 {s['p10']:+.1f}%, p90 {s['p90']:+.1f}%, min {s['min']:+.1f}%, max {s['max']:+.1f}%")
    print(f"{args.window:g}-s windows against it: p10 {w['p10']:+.1f}%, p90 {w['p90']:+.1f}%, "
          f"min {w['min']:+.1f}%, max {w['max']:+.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
