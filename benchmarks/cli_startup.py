"""How fast the command line answers when it only reads: ``--help``, ``models``, an
argument error, a user error, and ``profile`` against an unreachable host.

Each command runs ``--runs`` times as a fresh process (the console script of the current
environment); the median and the slowest wall time are printed and written to
``benchmarks/results/cli_startup.json`` with the machine's CPU model. Targets (issue 11):
``--help``, ``models`` and argument errors under 1.5 s; an unreachable host fails within 15 s.

    python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search_space.records import cpu_model, package_version, write_atomic  # noqa: E402

EVIT_NAS = str(Path(sys.executable).parent / "evit-nas")
COMMANDS = {
    "--help": (["--help"], 1.5),
    "models": (["models"], 1.5),
    "argument error": (["describe", "efficientvit_seg_b0", "--resolution", "100x100"], 1.5),
    "unknown network": (["describe", "nope"], 1.5),
    "unreachable host": (["profile", "--remote", "nobody@127.0.0.1", "--port", "1", "--resolution", "64x128",
                          "-o", "{tmp}/t.csv"], 15.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (default: 5)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (argv, target_s) in COMMANDS.items():
            times, codes = [], set()
            for _ in range(args.runs):
                start = time.perf_counter()
                done = subprocess.run([EVIT_NAS, *(a.replace("{tmp}", tmp) for a in argv)], capture_output=True,
                                      stdin=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
                codes.add(done.returncode)
            row = {"command": name, "argv": argv, "median_s": round(statistics.median(times), 3),
                   "max_s": round(max(times), 3), "target_s": target_s, "exit_codes": sorted(codes),
                   "meets_target": max(times) < target_s}
            rows.append(row)
            print(f"{name:<18} median {row['median_s']:6.3f} s  max {row['max_s']:6.3f} s  target < {target_s:g} s  "
                  f"{'ok' if row['meets_target'] else 'MISSED'}  (exit {row['exit_codes']})", flush=True)
    meta = {"cpu": cpu_model(), "arch": platform.machine(), "python": platform.python_version(),
            "package_version": package_version(), "runs": args.runs,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = ROOT / "benchmarks" / "results" / "cli_startup.json"
    write_atomic(out, json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"on {meta['cpu']} ({meta['arch']}); wrote {out.relative_to(ROOT)}")
    return 0 if all(r["meets_target"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
