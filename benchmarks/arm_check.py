"""The device agent on aarch64, end to end over SSH, as a Raspberry Pi user runs it (issue 16).

One command: build (or reuse) an arm64 Debian guest (``tools/aarch64_vm.py``), boot it under
``qemu-system-aarch64 -M virt -cpu cortex-a72``, then, from this machine,

1. ask the agent in the guest what it sees (``profile.py info``: ``platform.machine()``,
   CPU model, Python, numpy, onnxruntime), as ``evit-nas profile`` will record it;
2. ``evit-nas profile --remote root@127.0.0.1 --port PORT --identity KEY --blocks-from
   efficientvit_seg_b0 efficientvit_seg_b1 --resolution 64x128``, and kill the agent
   (``kill -9``, inside the guest) once its first chunk of results is written;
3. run the same command again: it must resume (the rows timed before the kill are kept,
   not timed again) and write the table;
4. check the table: its metadata says aarch64, and every block of both networks has a
   finite, positive latency;
5. check that this x86_64 machine refuses the aarch64 table for a measurement here
   (``latency measure --table``, with and without ``--force``; ``latency validate``), that
   ``latency predict`` still predicts with it for the ARM device (with a warning), and that
   ``latency measure --table ... --remote`` measures on the guest;
6. print the table's path and metadata, stop the guest, and write
   ``benchmarks/results/arm_check.json`` (versions, timings of every step, the outcome of
   every check) and the table beside it.

The timings are emulated: they say nothing about real ARM speed (TCG is many times slower
than a board and distorts relative costs). What this proves is that every step a board
goes through works on a real aarch64 kernel with onnxruntime's aarch64 wheel.

    python benchmarks/arm_check.py             # or: make arm-check
    python benchmarks/arm_check.py --keep-running --json /tmp/arm.json --table /tmp/arm.csv

Needs root the first time (the guest's build); exit 0 when every check passed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import aarch64_vm as vm  # noqa: E402

from latency_tables.table import LatencyTable  # noqa: E402
from search_space.records import cpu_model, package_version, write_atomic  # noqa: E402
from search_space.registry import resolve_network  # noqa: E402
from search_space.space import SearchSpace  # noqa: E402

EVIT_NAS = str(Path(sys.executable).parent / "evit-nas")
RESULTS = ROOT / "benchmarks" / "results"
NETWORKS = ["efficientvit_seg_b0", "efficientvit_seg_b1"]

#: Runs in the guest: wait for the agent's first chunk of results, then kill -9 the agent
#: (the Python process only: its command line starts with "python3 profile.py run").
KILL_AFTER_FIRST_CHUNK = r"""
deadline=$(( $(date +%s) + {timeout} ))
while :; do
  f=$(ls $HOME/.cache/evit-nas/bundles/*/results.csv 2>/dev/null | head -n 1)
  if [ -n "$f" ] && [ "$(grep -vc '^#' "$f")" -ge 2 ]; then break; fi
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "timeout"; exit 3; fi
  sleep 0.5
done
pid=$(pgrep -o -f '^python3 profile.py run')
if [ -z "$pid" ]; then echo "no-agent"; exit 4; fi
kill -9 "$pid"
echo "killed $pid $(( $(grep -vc '^#' "$f") - 1 ))"
"""

#: Runs in the guest with the agent's own files: what it records, and how long imports take.
PROBE = r"""
import json, os, platform, subprocess, sys, sysconfig, time
start = time.perf_counter(); import numpy; t_numpy = time.perf_counter() - start
start = time.perf_counter(); import onnxruntime; t_ort = time.perf_counter() - start
info = json.loads(subprocess.run([sys.executable, "profile.py", "info", "--threads", "1", "--device", "probe"],
                                 capture_output=True, text=True, check=True).stdout)
cpuinfo = open("/proc/cpuinfo").read()
first = cpuinfo.split("\n\n")[0]
print(json.dumps({"agent_info": info, "import_numpy_s": round(t_numpy, 2), "import_onnxruntime_s": round(t_ort, 2),
                  "providers": onnxruntime.get_available_providers(), "kernel": platform.release(),
                  "debian_version": open("/etc/debian_version").read().strip(), "nproc": os.cpu_count(),
                  "externally_managed": os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")),
                  "cpuinfo_first_cpu": {k.strip(): v.strip() for k, _, v in (l.partition(":") for l in first.splitlines())
                                        if v}}))
"""


def log(message: str) -> None:
    print(f"[arm-check] {message}", file=sys.stderr, flush=True)


def ssh(cache: Path, port: int, command: str, *, input_bytes: bytes | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(vm.ssh_command(cache, port, command), check=False, input=input_bytes, capture_output=True,
                          timeout=timeout)


def evit(argv: list[str], *, timeout: float = 3600) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([EVIT_NAS, *argv], check=False, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return done, round(time.monotonic() - started, 1)


def tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def copy_into_guest(cache: Path, port: int, files: dict[str, Path], folder: str, what: str) -> None:
    """Replace the guest's ``folder`` with ``files`` (name in the guest -> path here), over SSH
    as a tar stream.

    Raises:
        RuntimeError: the copy failed (names ``what``).
    """
    import io
    import tarfile

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, path in files.items():
            tar.add(path, arcname=name)
    copy = ssh(cache, port, f"rm -rf {folder} && mkdir -p {folder} && tar -C {folder} -xf -",
               input_bytes=archive.getvalue())
    if copy.returncode != 0:
        raise RuntimeError(f"could not copy {what} to the guest: {copy.stderr.decode()[-300:]}")


def probe_guest(cache: Path, port: int) -> dict:
    """The agent's view of the guest: run ``profile.py info`` there with the bundle's files."""
    copy_into_guest(cache, port, {"profile.py": ROOT / "latency_tables" / "profile.py",
                                  "records.py": ROOT / "search_space" / "records.py"}, "/root/agent-probe", "the agent")
    done = ssh(cache, port, "cd /root/agent-probe && python3 -", input_bytes=PROBE.encode())
    if done.returncode != 0:
        raise RuntimeError(f"the agent does not run in the guest: {done.stderr.decode()[-1500:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


#: Runs in the guest: what a board's user does (Debian 12 / Raspberry Pi OS refuse a
#: system-wide pip install, PEP 668): a venv with numpy and onnxruntime, here from the
#: aarch64 wheels the build downloaded (the guest has no HTTPS route to PyPI here).
PI_VENV = ("rm -rf /root/pi-venv && python3 -m venv /root/pi-venv && /root/pi-venv/bin/pip install --quiet "
           "--disable-pip-version-check --no-index --find-links /root/wheels numpy onnxruntime && "
           "/root/pi-venv/bin/python -c 'import numpy, onnxruntime; print(numpy.__version__, onnxruntime.__version__)'")
PI_PYTHON = "/root/pi-venv/bin/python"


def pi_venv(cache: Path, port: int) -> str:
    """Make the venv a board's user makes, in the guest; returns its numpy and onnxruntime versions."""
    copy_into_guest(cache, port, {".": cache / "wheels"}, "/root/wheels", "the wheels")
    done = ssh(cache, port, PI_VENV, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"venv + pip install failed in the guest: {done.stderr.decode()[-1500:]}")
    return done.stdout.decode().strip().splitlines()[-1]


def read_rows(path: Path) -> dict[str, str]:
    """id -> median_ms of a results CSV (``#`` metadata lines skipped)."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return {row["id"]: row["median_ms"] for row in csv.DictReader(lines)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=vm.DEFAULT_CACHE, help="the guest's cache folder")
    parser.add_argument("--cpu", default="cortex-a72", help="QEMU CPU model (default: cortex-a72)")
    parser.add_argument("--smp", type=int, default=2, help="guest CPUs (default: 2)")
    parser.add_argument("--memory", type=int, default=2048, help="guest memory in MiB (default: 2048)")
    parser.add_argument("--resolution", default="64x128", help="table resolution (default: 64x128)")
    parser.add_argument("--networks", nargs="+", default=NETWORKS, help=f"--blocks-from (default: {' '.join(NETWORKS)})")
    parser.add_argument("--warmup", type=int, default=2, help="agent warm-up visits (default: 2)")
    parser.add_argument("--repeats", type=int, default=10, help="agent timed visits (default: 10)")
    parser.add_argument("--json", type=Path, default=RESULTS / "arm_check.json", help="result file")
    parser.add_argument("--table", type=Path, help="where the table goes (default: beside the result file)")
    parser.add_argument("--keep-running", action="store_true", help="leave the guest running afterwards")
    args = parser.parse_args()
    cache = args.cache.expanduser().resolve()
    device = f"qemu-{args.cpu}"
    table_out = args.table or args.json.with_name(f"arm_check_{device}_{args.resolution}_t1.csv")
    began = time.monotonic()
    timings: dict[str, float] = {}
    checks: dict[str, dict] = {}
    result: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": package_version(),
                    "host": {"cpu": cpu_model(), "arch": platform.machine(), "python": platform.python_version()},
                    "networks": args.networks, "resolution": args.resolution, "warmup": args.warmup,
                    "repeats": args.repeats, "table": str(table_out), "timings_s": timings, "checks": checks,
                    "caveat": "emulated (qemu TCG on x86_64): timings say nothing about real ARM speed"}

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = {"ok": bool(ok), "detail": detail}
        log(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")

    def finish() -> int:
        timings["total"] = round(time.monotonic() - began, 1)
        result["passed"] = bool(checks) and all(c["ok"] for c in checks.values())
        write_atomic(args.json, json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json} ({'all checks passed' if result['passed'] else 'SOME CHECKS FAILED'}, "
            f"{timings['total']:.0f} s)")
        return 0 if result["passed"] else 1

    # ---------------------------------------------------------------- build and boot
    started = time.monotonic()
    cached = (cache / "build.json").exists() and (cache / "disk.qcow2").exists()
    try:
        build = vm.build(cache)
    except vm.VMError as exc:
        check("build", False, str(exc))
        return finish()
    timings["build"] = round(time.monotonic() - started, 1)
    result["guest_build"] = build
    result["guest_build_reused"] = cached
    check("build", True, f"Debian {build['debian_version']}, kernel {build['kernel']}, Python {build['python']}, "
          f"numpy {build['pypi'].get('numpy')}, onnxruntime {build['pypi'].get('onnxruntime')}"
          + (f" (reused; built in {build['seconds']['total']:.0f} s)" if cached else ""))
    started = time.monotonic()
    try:
        guest = vm.start(cache, cpu=args.cpu, smp=args.smp, memory_mb=args.memory)
    except vm.VMError as exc:
        check("boot", False, str(exc))
        return finish()
    timings["boot"] = round(time.monotonic() - started, 1)
    result["qemu"] = {k: guest[k] for k in ("cpu", "smp", "memory_mb")}
    check("boot", True, f"SSH answered on 127.0.0.1:{guest['port']} after {timings['boot']:.0f} s")
    port = guest["port"]
    remote = ["--remote", "root@127.0.0.1", "--port", str(port), "--identity", guest["identity"]]
    for option in guest["ssh_options"]:
        remote += ["--ssh-option", option]
    try:
        # ------------------------------------------------------------ what the agent sees
        started = time.monotonic()
        try:
            probe = probe_guest(cache, port)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            check("agent_runs", False, str(exc))
            return finish()
        timings["probe"] = round(time.monotonic() - started, 1)
        info = probe["agent_info"]
        result["guest"] = {"machine": info["arch"], "cpu_model": info["cpu"], "python": info["python"],
                           "numpy": info["numpy"], "onnxruntime": info["onnxruntime"], "os": info["os"],
                           "cpu_count": info["cpu_count"], **{k: v for k, v in probe.items() if k != "agent_info"}}
        check("agent_runs", info["arch"] == "aarch64",
              f"profile.py info in the guest: {info['arch']}, CPU {info['cpu']!r}, Python {info['python']}, numpy "
              f"{info['numpy']}, onnxruntime {info['onnxruntime']} (import {probe['import_onnxruntime_s']} s)")
        started = time.monotonic()
        try:
            versions = pi_venv(cache, port)
            check("pi_user_venv", True, f"python3 -m venv + pip install numpy onnxruntime in the guest: {versions}")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            check("pi_user_venv", False, str(exc))
            versions = None
        timings["pi_venv"] = round(time.monotonic() - started, 1)
        result["pi_venv"] = {"python": PI_PYTHON, "numpy_onnxruntime": versions}

        with tempfile.TemporaryDirectory(prefix="arm-check-") as tmp:
            table = Path(tmp) / table_out.name
            profile = ["profile", "--device", device, "--resolution", args.resolution, "--threads", "1",
                       "--warmup", str(args.warmup), "--repeats", str(args.repeats), "-o", str(table),
                       "--blocks-from", *args.networks, *remote]
            # -------------------------------------------------------- profile, killed mid-run
            log(f"profiling {' + '.join(args.networks)} at {args.resolution} on the guest; the agent is killed "
                "after its first chunk")
            started = time.monotonic()
            killer = subprocess.Popen(vm.ssh_command(cache, port, KILL_AFTER_FIRST_CHUNK.format(timeout=3000)),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            first, _ = evit(profile)
            killed = killer.communicate(timeout=600)[0].strip()
            timings["profile_until_killed"] = round(time.monotonic() - started, 1)
            work = Path(str(table) + ".work")
            partial = sorted(work.glob("results-*.csv"))
            kept = read_rows(partial[0]) if partial else {}
            result["kill"] = {"killer": killed, "exit_code": first.returncode, "rows_fetched": len(kept),
                              "message": tail(first.stderr, 2)}
            check("agent_killed_mid_run", killed.startswith("killed") and first.returncode != 0 and bool(kept),
                  f"guest: {killed!r}; evit-nas profile exited {first.returncode} with {len(kept)} rows fetched: "
                  f"{tail(first.stderr, 1)}")
            # -------------------------------------------------------- the same command resumes
            started = time.monotonic()
            second, _ = evit(profile + ["--keep-work"])
            timings["profile_resume"] = round(time.monotonic() - started, 1)
            timings["profile"] = round(timings["profile_until_killed"] + timings["profile_resume"], 1)
            if second.returncode != 0:
                check("resume", False, f"second run exited {second.returncode}: {tail(second.stderr)}")
                return finish()
            final = read_rows(sorted(work.glob("results-*.csv"))[0])
            same = {k: v for k, v in kept.items() if final.get(k) == v}
            progress = [line for line in second.stderr.splitlines() if " timed, " in line]
            check("resume", bool(kept) and len(same) == len(kept) and len(final) > len(kept),
                  f"{len(same)} of the {len(kept)} rows timed before the kill kept unchanged, "
                  f"{len(final) - len(kept)} timed after; {len(final)} in all; agent's first progress line: "
                  f"{progress[0].strip() if progress else 'none'}")
            # -------------------------------------------------------- the table
            loaded = LatencyTable.load(table)
            meta = loaded.meta
            result["table_meta"] = {k: meta.get(k) for k in ("device", "cpu", "arch", "os", "python", "numpy",
                                                            "onnxruntime", "threads", "cpu_count", "resolution",
                                                            "date", "coverage", "precision", "build_seconds",
                                                            "reference")}
            check("table_arch", meta.get("arch") == "aarch64",
                  f"arch {meta.get('arch')!r}, cpu {meta.get('cpu')!r}, onnxruntime {meta.get('onnxruntime')}")
            height, width = (int(v) for v in args.resolution.split("x"))
            space = SearchSpace.default("cityscapes")
            keys = list(dict.fromkeys(k for n in args.networks
                                      for k in space.blocks(resolve_network(n, "cityscapes"), (height, width))))
            missing = loaded.missing(keys)
            bad = [k for k in keys if k in loaded.rows and not (math.isfinite(loaded.rows[k]["median_ms"])
                                                               and loaded.rows[k]["median_ms"] > 0)]
            medians = sorted(loaded.rows[k]["median_ms"] for k in keys if k in loaded.rows)
            result["blocks"] = {"count": len(keys), "missing": len(missing), "non_positive": len(bad),
                                "median_ms_min": medians[0] if medians else None,
                                "median_ms_max": medians[-1] if medians else None}
            check("every_block_has_a_latency", not missing and not bad and bool(keys),
                  f"{len(keys) - len(missing) - len(bad)} of {len(keys)} blocks with a finite positive latency "
                  f"({medians[0]:.3f}..{medians[-1]:.3f} ms emulated)" if medians else "no blocks")
            # -------------------------------------------------------- the x86 refusal
            started = time.monotonic()
            refusals = {}
            for name, argv in {
                "measure": ["latency", "measure", "--table", str(table), "efficientvit_seg_b0", "--repeats", "1",
                            "--warmup", "0"],
                "measure --force": ["latency", "measure", "--table", str(table), "efficientvit_seg_b0", "--repeats",
                                    "1", "--warmup", "0", "--force"],
                "validate": ["latency", "validate", "--table", str(table), "--samples", "2", "-o",
                             str(Path(tmp) / "validate")],
            }.items():
                done, seconds = evit(argv, timeout=600)
                refused = done.returncode != 0 and "aarch64" in done.stderr and platform.machine() in done.stderr
                refusals[name] = {"exit_code": done.returncode, "message": tail(done.stderr, 1), "seconds": seconds}
                check(f"refused_here: latency {name}", refused,
                      f"exit {done.returncode}: {tail(done.stderr, 1)}")
            done, seconds = evit(["latency", "predict", "--table", str(table), "efficientvit_seg_b0", "--json"])
            warned = [line for line in done.stderr.splitlines() if line.startswith("WARNING") and "aarch64" in line]
            predicted = json.loads(done.stdout)["predicted_ms"] if done.returncode == 0 else None
            refusals["predict"] = {"exit_code": done.returncode, "predicted_ms": predicted,
                                   "warning": warned[-1] if warned else None, "seconds": seconds}
            check("predict_for_the_arm_device_warns", done.returncode == 0 and bool(warned),
                  f"exit {done.returncode}, {predicted} ms predicted for the guest, with a warning naming aarch64: "
                  f"{bool(warned)}")
            timings["refusal_checks"] = round(time.monotonic() - started, 1)
            result["refusals"] = refusals
            # -------------------------------------------------------- the table used on its own device
            # with the venv's Python, as a board's user runs it (--remote-python, an absolute path)
            venv = ["--remote-python", PI_PYTHON] if versions else []
            done, seconds = evit(["latency", "measure", "--table", str(table), "efficientvit_seg_b0", "--repeats",
                                  str(args.repeats), "--warmup", str(args.warmup), "--json", *remote, *venv])
            timings["measure_remote"] = seconds
            if done.returncode == 0:
                measured = json.loads(done.stdout)
                row = measured["rows"][0]
                result["measure_remote"] = {"arch": measured["arch"], "measured_ms": row["measured_ms"],
                                            "predicted_ms": row["predicted_ms"],
                                            "remote_python": PI_PYTHON if venv else "python3"}
                check("measure_on_the_guest_accepts_the_table", measured["arch"] == "aarch64",
                      f"B0 at {args.resolution}: {row['measured_ms']:.2f} ms measured on {measured['arch']} with "
                      f"{result['measure_remote']['remote_python']}, {row['predicted_ms']:.2f} ms predicted (emulated)")
            else:
                check("measure_on_the_guest_accepts_the_table", False, f"exit {done.returncode}: {tail(done.stderr)}")
            table_out.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(table_out, table.read_text())
        print(f"table: {table_out}")
        for key, value in result["table_meta"].items():
            print(f"  {key}: {json.dumps(value)}")
    finally:
        if not args.keep_running:
            started = time.monotonic()
            vm.stop(cache)
            timings["stop"] = round(time.monotonic() - started, 1)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
