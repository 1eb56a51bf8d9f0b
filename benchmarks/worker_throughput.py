"""Training workers: the claim overhead per network, and networks per hour with 1 and 2
workers against training in `evit-nas validate`.

1. Claim overhead: N queued networks, no training; one process claims each and records a
   result (``nas.queue.claim`` + ``finish``: the stale-claim check, the WAITING -> RUNNING
   change, the first heartbeat, the row and the COMPLETE state). Median and p90 in ms, on a
   journal file (and on ``--storage URL``, a database, if given).
2. Throughput: K tiny networks of the test space (brief recipe on the synthetic task)
   trained by 1 worker process, by 2 worker processes, by one `evit-nas validate` process,
   and by 2 `evit-nas validate` processes splitting the networks (what ``validate --jobs
   2`` would do: this tree's validate has no ``--jobs`` option). Every configuration uses
   the machine's cores once: a single process gets all threads, two get half each.
   Wall-clock time includes each process's start (Python, torch imports).

    python benchmarks/worker_throughput.py --quick            # ~2 minutes on 2 idle cores
    python benchmarks/worker_throughput.py --networks 8 --steps 50 --out benchmarks/results/worker_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.queue import claim, enqueue, finish, make_jobs, open_queue  # noqa: E402
from nas.search import open_storage  # noqa: E402
from nas.validate import Entry, default_recipe  # noqa: E402
from search_space import ArchSpec  # noqa: E402
from search_space.records import cpu_model, write_atomic  # noqa: E402

BIN = Path(sys.executable).parent
#: the test space's tiny network (tests/nas/test_validate.py), varied by width and head depth
TINY = ArchSpec(widths=(8, 8, 16, 16, 32), depths=(0, 1, 1, 1, 1), expand_ratios=(2, 2, 2, 2), head_dim=8,
                scales=(3,), attention=((True,), (True,)), head_width=8, head_depth=1, head_expand_ratio=2,
                head_final_expand=None, num_classes=3)


def _networks(k: int) -> list[ArchSpec]:
    return [TINY.replace(head_depth=i % 2, widths=(8, 8, 16, 16, 32 + 8 * (i // 2))) for i in range(k)]


def claim_overhead(storage: str, n: int) -> dict[str, float]:
    """Median and p90 (ms) of claim() and of finish() over ``n`` queued networks."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="bench", storage=open_storage(storage), load_if_exists=True)
    recipe = default_recipe("synthetic", (64, 128), steps=1, batch_size=1)
    entries = [Entry(f"n{i}", TINY.replace(head_width=8 + i)) for i in range(n)]  # distinct specs
    jobs = make_jobs(entries, num_classes=3, dataset="synthetic", recipe=recipe, work_dir=tempfile.mkdtemp(),
                     study_name="bench", reference=False)
    queue = open_queue(storage, "bench", create=True)
    enqueue(queue, jobs)
    claims, finishes = [], []
    for _ in range(n):
        began = time.perf_counter()
        held = claim(queue, "bench")
        claims.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        finish(held, {"network": held.job.name, "miou": 1.0}, lambda: None)
        finishes.append((time.perf_counter() - began) * 1000)

    def q(values: list[float], p: float) -> float:
        return sorted(values)[min(len(values) - 1, int(p * len(values)))]

    return {"networks": n, "claim_ms_median": statistics.median(claims), "claim_ms_p90": q(claims, 0.9),
            "finish_ms_median": statistics.median(finishes), "finish_ms_p90": q(finishes, 0.9)}


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _spec_files(folder: Path, k: int) -> list[str]:
    paths = []
    for i, spec in enumerate(_networks(k)):
        path = folder / f"net{i}.json"
        path.write_text(spec.to_json())
        paths.append(str(path))
    return paths


def throughput(k: int, steps: int, cores: int) -> list[dict[str, object]]:
    """Networks per hour for each configuration (fresh folders each)."""
    common = ["--no-reference", "--steps", str(steps), "--batch-size", "2", "--resolution", "64x128", "--no-progress"]
    rows = []
    for label, processes, mode in (("1 worker", 1, "worker"), ("2 workers", 2, "worker"),
                                   ("validate, 1 process", 1, "validate"),
                                   ("validate, 2 processes (as --jobs 2)", 2, "validate")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            specs = _spec_files(folder, k)
            threads = max(1, cores // processes)
            began = time.perf_counter()
            if mode == "worker":
                journal = str(folder / "w.journal")
                optuna.create_study(study_name="t", storage=open_storage(journal))
                subprocess.run([str(BIN / "evit-nas"), "validate", *specs, "--storage", journal, "--study", "t",
                                "--queue", *common, "--out", str(folder / "out")], check=True,
                               capture_output=True, env=_env(threads))
                began = time.perf_counter()  # the queueing is not training
                commands = [[str(BIN / "evit-nas"), "worker", "--storage", journal, "--study", "t", "--device", "cpu",
                             "--no-progress", "--poll-s", "0.5"] for _ in range(processes)]
            else:
                commands = [[str(BIN / "evit-nas"), "validate", *specs[p::processes], *common,
                             "--out", str(folder / f"out{p}")] for p in range(processes)]
            running = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env=_env(threads)) for c in commands]
            for proc in running:
                _, err = proc.communicate()
                if proc.returncode:
                    raise SystemExit(f"{label} failed:\n{err[-2000:]}")
            wall_s = time.perf_counter() - began
            rows.append({"configuration": label, "processes": processes, "threads_per_process": threads,
                         "networks": k, "wall_s": round(wall_s, 2), "networks_per_hour": round(k / wall_s * 3600, 1)})
            print(f"  {label:<38}{wall_s:>9.1f} s{rows[-1]['networks_per_hour']:>12.1f} networks/h", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: 20 claims, 4 networks of 5 steps")
    parser.add_argument("--claims", type=int, default=100, help="networks for the claim overhead (default 100)")
    parser.add_argument("--networks", type=int, default=8, help="networks for the throughput (default 8)")
    parser.add_argument("--steps", type=int, default=50, help="training steps per network (default 50)")
    parser.add_argument("--storage", help="also measure the claim overhead on this database URL (postgresql://...)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads shared by the processes")
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.claims, args.networks, args.steps = 20, 4, 5
    result: dict[str, object] = {"cpu": cpu_model(), "cores": args.cores, "date": time.strftime("%Y-%m-%d"),
                                 "load_average_at_start": os.getloadavg()[0]}
    print(f"claim overhead ({args.claims} networks, no training):")
    overheads = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"journal file": str(Path(tmp) / "claims.journal")}
        if args.storage:
            stores["database"] = args.storage
        for name, url in stores.items():
            overheads[name] = claim_overhead(url, args.claims)
            o = overheads[name]
            print(f"  {name:<14} claim {o['claim_ms_median']:.1f} ms (p90 {o['claim_ms_p90']:.1f}), record "
                  f"{o['finish_ms_median']:.1f} ms (p90 {o['finish_ms_p90']:.1f}) per network")
    result["claim_overhead"] = overheads
    print(f"throughput ({args.networks} tiny networks, {args.steps} steps of batch 2 at 64x128, {args.cores} cores):")
    result["throughput"] = throughput(args.networks, args.steps, args.cores)
    if args.out:
        write_atomic(Path(args.out), json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
