"""The on-device timing script: protocol, resumable results, no torch needed."""

import json
import os
import subprocess
import sys

import pytest

from latency_tables import profile as prof
from latency_tables.bundle import export_bundle, profile_script
from search_space.zoo import model_spec

from .conftest import RES


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, space):
    directory = tmp_path_factory.mktemp("bundle")
    keys = space.unique_blocks(RES)[:5]
    export_bundle(directory, RES, blocks=keys, networks=[space.sample(0)], reference=model_spec("efficientvit_seg_b0"))
    return directory


def test_bundle_is_self_contained(bundle):
    manifest = prof.read_manifest(str(bundle))
    assert (bundle / "profile.py").read_text() == profile_script().read_text()
    assert len(manifest["entries"]) == 6 and manifest["reference"]["id"].startswith("ref-")
    assert all((bundle / e["file"]).is_file() for e in manifest["entries"] + [manifest["reference"]])


def test_run_bundle_writes_every_entry_with_metadata(bundle, tmp_path):
    out = tmp_path / "results.csv"
    prof.run_bundle(str(bundle), str(out), "dev", threads=1, warmup=1, repeats=3, chunk=2)
    meta, rows = prof.parse_csv(out.read_text(), str(out))
    assert meta["threads"] == 1 and meta["device"] == "dev" and meta["arch"]
    assert meta["onnxruntime"] and meta["cpu"] and meta["bundle"] == prof.read_manifest(str(bundle))["bundle_id"]
    assert len(rows) == 6  # every entry (the reference is timed beside them, in ref_ms)
    for row in rows:
        assert 0 < float(row["p10_ms"]) <= float(row["median_ms"]) <= float(row["p90_ms"])
        assert int(row["runs"]) >= 3 and float(row["ref_ms"]) > 0


def test_an_interrupted_run_resumes_and_keeps_finished_rows(bundle, tmp_path):
    out = tmp_path / "results.csv"

    def stop_after_first_chunk(done, total, *_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prof.run_bundle(str(bundle), str(out), "dev", 1, warmup=1, repeats=3, chunk=2, progress=stop_after_first_chunk)
    _, first = prof.parse_csv(out.read_text(), str(out))
    assert len(first) == 2
    prof.run_bundle(str(bundle), str(out), "dev", 1, warmup=1, repeats=3, chunk=2)
    _, rows = prof.parse_csv(out.read_text(), str(out))
    assert len(rows) == 6
    assert rows[:2] == first  # finished rows were kept, not measured again


def test_results_of_another_setup_are_not_overwritten(bundle, tmp_path):
    out = tmp_path / "results.csv"
    prof.run_bundle(str(bundle), str(out), "dev", 1, warmup=1, repeats=2, chunk=8)
    before = out.read_text()
    with pytest.raises(prof.ProfileError, match=r"holds results with threads=1, not 2; give another -o path"):
        prof.run_bundle(str(bundle), str(out), "dev", 2, warmup=1, repeats=2)
    assert out.read_text() == before


def test_bad_bundles_are_named(tmp_path, bundle):
    with pytest.raises(prof.ProfileError, match="no manifest.json"):
        prof.read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(prof.ProfileError, match="not valid JSON"):
        prof.read_manifest(str(tmp_path))
    manifest = json.loads((bundle / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(prof.ProfileError, match=r"onnx/blk-.*\.onnx is missing; copy the whole bundle folder again"):
        prof.read_manifest(str(tmp_path))


def test_profile_script_runs_with_only_numpy_and_onnxruntime(bundle, tmp_path):
    # Shadow torch and the project's packages: the script must not need them.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("torch", "search_space", "nas", "latency_tables", "fvcore"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is not on the device')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    out = tmp_path / "results.csv"
    done = subprocess.run(
        [sys.executable, str(bundle / "profile.py"), "run", str(bundle), "-o", str(out), "--repeats", "2", "--warmup", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(prof.parse_csv(out.read_text(), "x")[1]) == 6
    info = subprocess.run([sys.executable, str(bundle / "profile.py"), "info", "--threads", "2"], env=env,
                          cwd=tmp_path, capture_output=True, text=True)
    assert json.loads(info.stdout)["threads"] == 2


def test_summary_statistics():
    stats = prof.summarise([0.001 * v for v in range(1, 12)])
    assert stats["median_ms"] == pytest.approx(6.0)
    assert stats["p10_ms"] == pytest.approx(2.0) and stats["p90_ms"] == pytest.approx(10.0)
    assert stats["runs"] == 11


def test_metadata_csv_round_trip():
    text = prof.format_csv({"device": "pi 4", "threads": 4, "resolution": [256, 512]}, ["a", "b"], [{"a": 1, "b": "x"}])
    meta, rows = prof.parse_csv(text, "t")
    assert meta == {"device": "pi 4", "threads": 4, "resolution": [256, 512]}
    assert rows == [{"a": "1", "b": "x"}]
    with pytest.raises(prof.ProfileError, match="line 1: a metadata line must read"):
        prof.parse_csv("# nothing here\n", "t")


def test_the_reference_network_can_also_be_an_entry(tmp_path):
    b0 = model_spec("efficientvit_seg_b0")
    export_bundle(tmp_path / "b", RES, networks=[b0], reference=b0)
    prof.run_bundle(str(tmp_path / "b"), str(tmp_path / "r.csv"), "dev", 1, warmup=1, repeats=2)
    _, rows = prof.parse_csv((tmp_path / "r.csv").read_text(), "r")
    assert [r["id"] for r in rows] == [prof.read_manifest(str(tmp_path / "b"))["entries"][0]["id"]]
