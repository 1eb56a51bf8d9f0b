"""The device agent (``profile.py``, run as a script exactly as on a device): protocol,
resumable results, no torch needed; and the package side that runs it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from latency_tables.bundle import ProfileError, export_bundle, load_bundle, profile_script, run_locally
from search_space import records
from search_space.records import RecordError, format_csv, parse_csv, read_csv, read_manifest
from search_space.registry import model_spec

from .conftest import RES

AGENT_ERROR = "profile.py: error: "


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, space):
    directory = tmp_path_factory.mktemp("bundle")
    keys = space.unique_blocks(RES)[:5]
    export_bundle(directory, RES, blocks=keys, networks=[space.sample(0)], reference=model_spec("efficientvit_seg_b0"))
    return directory


def agent_command(bundle, output, *, device="dev", threads=1, warmup=1, repeats=3, chunk=2):
    """``profile.py run`` of the bundle's own copy of the agent."""
    return [sys.executable, str(bundle / "profile.py"), "run", str(bundle), "-o", str(output), "--device", device,
            "--threads", str(threads), "--warmup", str(warmup), "--repeats", str(repeats), "--chunk", str(chunk)]


def run_agent(bundle, output, **kwargs):
    return subprocess.run(agent_command(bundle, output, **kwargs), capture_output=True, text=True, timeout=300)


def test_bundle_is_self_contained(bundle):
    manifest = read_manifest(bundle)
    assert load_bundle(bundle) == manifest
    assert (bundle / "profile.py").read_text() == profile_script().read_text()
    assert (bundle / "records.py").read_text() == open(records.__file__, encoding="utf-8").read()
    assert len(manifest["entries"]) == 6 and manifest["reference"]["id"].startswith("ref-")
    assert all((bundle / e["file"]).is_file() for e in manifest["entries"] + [manifest["reference"]])


def test_agent_writes_every_entry_with_metadata(bundle, tmp_path):
    out = tmp_path / "results.csv"
    done = run_agent(bundle, out, threads=1, warmup=1, repeats=3, chunk=2)
    assert done.returncode == 0, done.stderr
    meta, rows = read_csv(out)
    assert meta["threads"] == 1 and meta["device"] == "dev" and meta["arch"]
    assert meta["onnxruntime"] and meta["cpu"] and meta["bundle"] == read_manifest(bundle)["bundle_id"]
    assert len(rows) == 6  # every entry (the reference is timed beside them, in ref_ms)
    for row in rows:
        assert 0 < float(row["p10_ms"]) <= float(row["median_ms"]) <= float(row["p90_ms"])
        assert int(row["runs"]) >= 3 and float(row["ref_ms"]) > 0
    assert [r["id"] for r in rows] == [e["id"] for e in read_manifest(bundle)["entries"]]
    assert "6/6 timed" in done.stderr  # the agent's own progress line


def test_an_interrupted_run_resumes_and_keeps_finished_rows(bundle, tmp_path):
    out = tmp_path / "results.csv"
    agent = subprocess.Popen(agent_command(bundle, out, repeats=3, chunk=2), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while agent.poll() is None and time.monotonic() < deadline:
            if out.exists() and read_csv(out)[1]:
                break
            time.sleep(0.01)
    finally:
        agent.kill()  # SIGKILL: no chance to clean up
        agent.wait()
    assert agent.returncode == -signal.SIGKILL, "the agent finished before it could be killed"
    _, first = read_csv(out)
    assert 2 <= len(first) < 6 and len(first) % 2 == 0  # whole chunks of 2, never half a file
    done = run_agent(bundle, out, repeats=3, chunk=2)
    assert done.returncode == 0, done.stderr
    _, rows = read_csv(out)
    assert len(rows) == 6
    assert rows[: len(first)] == first  # finished rows were kept, not measured again


def test_results_of_another_setup_are_not_overwritten(bundle, tmp_path):
    out = tmp_path / "results.csv"
    assert run_agent(bundle, out, threads=1, repeats=2, chunk=8).returncode == 0
    before = out.read_text()
    done = run_agent(bundle, out, threads=2, repeats=2)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(AGENT_ERROR)
    assert "holds results with threads=1, not 2; give another -o path" in line
    assert out.read_text() == before


def test_run_locally_reports_the_agents_error(bundle, tmp_path):
    out = tmp_path / "results.csv"
    run_locally(bundle, out, device="dev", threads=1, warmup=1, repeats=2)
    assert len(read_csv(out)[1]) == 6
    before = out.read_text()
    with pytest.raises(ProfileError, match=r"the timing of .* stopped: .*holds results with threads=1, not 2; "
                                           r"give another -o path.*running the same command again resumes"):
        run_locally(bundle, out, device="dev", threads=2, warmup=1, repeats=2)
    assert out.read_text() == before


def test_bad_bundles_are_named(tmp_path, bundle):
    with pytest.raises(RecordError, match="no manifest.json"):
        read_manifest(tmp_path)
    not_a_bundle = subprocess.run([sys.executable, str(bundle / "profile.py"), "run", str(tmp_path), "-o",
                                   str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert not_a_bundle.returncode == 2
    assert not_a_bundle.stderr.startswith(AGENT_ERROR) and "no manifest.json" in not_a_bundle.stderr
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        read_manifest(tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordError, match=r"onnx/blk-.*\.onnx is missing; copy the whole bundle folder again"):
        read_manifest(tmp_path)
    with pytest.raises(RecordError, match=r"onnx/blk-.*\.onnx is missing"):
        load_bundle(tmp_path)


def test_profile_script_runs_with_only_numpy_and_onnxruntime(bundle, tmp_path):
    # Shadow torch and the project's packages: the script must not need them.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("torch", "search_space", "nas", "latency_tables", "fvcore", "evit_nas"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is not on the device')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    out = tmp_path / "results.csv"
    done = subprocess.run(
        [sys.executable, str(bundle / "profile.py"), "run", str(bundle), "-o", str(out), "--repeats", "2", "--warmup", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(read_csv(out)[1]) == 6
    info = subprocess.run([sys.executable, str(bundle / "profile.py"), "info", "--threads", "2"], env=env,
                          cwd=tmp_path, capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["threads"] == 2


def test_bad_arguments_are_one_error_line(bundle, tmp_path):
    done = run_agent(bundle, tmp_path / "r.csv", repeats=0)
    assert done.returncode == 2 and not (tmp_path / "r.csv").exists()
    assert done.stderr.strip() == f"{AGENT_ERROR}--threads, --repeats and --chunk must be >= 1 and --warmup >= 0"


def test_summary_statistics(bundle):
    # the agent is imported by no module of the project: load it in a process of its own,
    # beside its records.py, as on a device
    code = ("import json, runpy; agent = runpy.run_path('profile.py'); "
            "print(json.dumps(agent['summarise']([0.001 * v for v in range(1, 12)])))")
    done = subprocess.run([sys.executable, "-c", code], cwd=bundle, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["median_ms"] == pytest.approx(6.0)
    assert stats["p10_ms"] == pytest.approx(2.0) and stats["p90_ms"] == pytest.approx(10.0)
    assert stats["runs"] == 11


def test_metadata_csv_round_trip():
    text = format_csv({"device": "pi 4", "threads": 4, "resolution": [256, 512]}, ["a", "b"], [{"a": 1, "b": "x"}])
    meta, rows = parse_csv(text, "t")
    assert meta == {"device": "pi 4", "threads": 4, "resolution": [256, 512]}
    assert rows == [{"a": "1", "b": "x"}]
    with pytest.raises(RecordError, match="line 1: a metadata line must read"):
        parse_csv("# nothing here\n", "t")


def test_the_reference_network_can_also_be_an_entry(tmp_path):
    b0 = model_spec("efficientvit_seg_b0")
    export_bundle(tmp_path / "b", RES, networks=[b0], reference=b0)
    done = run_agent(tmp_path / "b", tmp_path / "r.csv", repeats=2)
    assert done.returncode == 0, done.stderr
    _, rows = read_csv(tmp_path / "r.csv")
    assert [r["id"] for r in rows] == [read_manifest(tmp_path / "b")["entries"][0]["id"]]


@pytest.mark.parametrize("threads, most_alive", [(1, 3), (2, 1)])
def test_several_threads_time_one_session_at_a_time(bundle, monkeypatch, threads, most_alive):
    """At one thread the models' sessions are alive together and visited in turn; at more,
    an idle session's spinning worker threads would slow the next model's, so each model is
    timed with its session alone alive."""
    import weakref

    from latency_tables import profile

    paths = sorted(str(p) for p in (bundle / "onnx").glob("*.onnx"))[:3]
    alive, seen = weakref.WeakSet(), []

    class CountingTimer(profile.Timer):
        def __init__(self, path, threads):
            super().__init__(path, threads)
            alive.add(self)

        def visit(self, min_seconds, record=True):
            seen.append(len(alive))
            super().visit(min_seconds, record)

    monkeypatch.setattr(profile, "Timer", CountingTimer)
    stats = profile.time_models(paths, threads, warmup=1, repeats=2, min_visit_ms=0.0)
    assert [s["runs"] for s in stats] == [2, 2, 2]
    assert max(seen) == most_alive
