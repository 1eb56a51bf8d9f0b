"""Building tables for real on this machine (tiny space, tiny resolution)."""

import pytest

from latency_tables.build import plan_profile, profile_table
from latency_tables.table import LatencyTable, MissingBlocksError
from search_space import ArchSpec

from .conftest import RES

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
    profile_table(path, plan, "test-machine", threads=1, warmup=1, repeats=3)
    after = LatencyTable.load(path)
    assert after.predict_ms(outside) > 0
    assert all(after.rows[k]["raw_median_ms"] == pytest.approx(v["raw_median_ms"], rel=1e-5) for k, v in before.rows.items())
    assert after.meta["reference"] == before.meta["reference"]


def test_an_interrupted_profile_resumes(space, tmp_path):
    path = tmp_path / "t.csv"
    plan = plan_profile(RES, space, calibration_networks=3)
    calls = []

    def interrupt(done, total, *_):
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        profile_table(path, plan, "m", 1, warmup=1, repeats=2, time_progress=interrupt)
    assert not path.exists()
    (results,) = (tmp_path / "t.csv.work").glob("results-*.csv")
    finished = results.read_text().splitlines()
    profile_table(path, plan, "m", 1, warmup=1, repeats=2)
    table = LatencyTable.load(path)
    assert set(space.unique_blocks(RES)) <= set(table.rows)
    assert not (tmp_path / "t.csv.work").exists()
    assert calls == [12] and len([l for l in finished if not l.startswith("#")]) == 13  # header + one chunk
