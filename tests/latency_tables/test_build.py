"""Building tables for real on this machine (tiny space, tiny resolution)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency_tables.build import plan_profile, profile_table
from latency_tables.table import LatencyTable, MissingBlocksError
from search_space import ArchSpec, BlockKey, SearchSpace
from search_space.records import read_csv, read_manifest

from .conftest import RES

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.slow


def test_table_covers_the_space_and_predicts(tiny_table, space):
    table = LatencyTable.load(tiny_table)
    assert set(space.unique_blocks(RES)) <= set(table.rows)
    meta = table.meta
    for field in ("device", "cpu", "arch", "os", "onnxruntime", "threads", "resolution", "date", "package_version",
                  "space_fingerprint", "reference"):
        assert meta.get(field) not in (None, ""), field
    assert meta["space_fingerprint"] == space.fingerprint() and meta["resolution"] == list(RES)
    assert table.calibration.networks == 6 and table.calibration.fit_mape is not None
    for seed in range(5):
        assert table.predict_ms(space.sample(seed)) > 0
    for stats in table.rows.values():
        assert stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]


def test_blocks_from_extends_a_table_and_keeps_its_rows(tiny_table, space, tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(tiny_table.read_bytes())
    before = LatencyTable.load(path)
    outside = ArchSpec.from_dict({**space.sample(0).to_dict(), "widths": [8, 24, 16, 32, 32]})
    with pytest.raises(MissingBlocksError):
        before.predict_ms(outside)
    plan = plan_profile(RES, space, blocks_from=[outside], existing=before)
    assert 0 < len(plan.blocks) < len(space.blocks(outside, RES))
    profile_table(path, plan, device="test-machine", threads=1, warmup=1, repeats=3)
    after = LatencyTable.load(path)
    assert after.predict_ms(outside) > 0
    assert all(after.rows[k]["raw_median_ms"] == pytest.approx(v["raw_median_ms"], rel=1e-5) for k, v in before.rows.items())
    assert after.meta["reference"] == before.meta["reference"]


def test_an_interrupted_profile_resumes(space_file, tmp_path):
    space = SearchSpace.from_file(space_file)
    path = tmp_path / "t.csv"
    work = tmp_path / "t.csv.work"
    # The profile runs in a process group of its own (it and its agent), killed like a
    # closed terminal once the agent has written its first chunk of 12 results.
    script = ("import sys; from latency_tables.build import plan_profile, profile_table; "
              "from search_space import SearchSpace; "
              "plan = plan_profile((64, 128), SearchSpace.from_file(sys.argv[2]), calibration_networks=3); "
              "profile_table(sys.argv[1], plan, device='m', threads=1, warmup=1, repeats=2)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(space_file)], cwd=ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            results = list(work.glob("results-*.csv"))
            if results and read_csv(results[0])[1]:
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the profile finished before it could be killed"
    assert not path.exists()
    (results,) = work.glob("results-*.csv")
    _, finished = read_csv(results)
    manifest = read_manifest(work / "bundle")
    assert 12 <= len(finished) < len(manifest["entries"]) and len(finished) % 12 == 0  # whole chunks only
    plan = plan_profile(RES, space, calibration_networks=3)
    profile_table(path, plan, device="m", threads=1, warmup=1, repeats=2)
    table = LatencyTable.load(path)
    assert set(space.unique_blocks(RES)) <= set(table.rows)
    assert not work.exists()
    keys = {e["id"]: BlockKey.from_dict(e["key"]) for e in manifest["entries"] if e["type"] == "block"}
    kept = [row for row in finished if row["id"] in keys]
    assert kept  # the finished rows were kept, not timed again
    for row in kept:
        assert table.rows[keys[row["id"]]]["raw_median_ms"] == pytest.approx(float(row["median_ms"]), rel=1e-5)
