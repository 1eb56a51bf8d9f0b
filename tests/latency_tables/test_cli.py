"""evit-nas profile / latency predict / latency validate, run for real on a tiny space."""

import csv
import json
import subprocess
import sys

import pytest

from latency_tables.table import LatencyTable
from latency_tables.validate import Summary, kendall, spearman
from evit_nas.main import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_latency_predict_json(tiny_table, space, tmp_path, capsys):
    spec_file = tmp_path / "net.json"
    spec_file.write_text(space.sample(4).to_json())
    code, out, _ = run(capsys, "latency", "predict", "--table", tiny_table, spec_file, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["predicted_ms"] == pytest.approx(LatencyTable.load(tiny_table).predict_ms(space.sample(4)))
    assert data["threads"] == 1 and data["device"] == "test-machine"
    assert sum(data["stages_ms"].values()) == pytest.approx(data["predicted_ms"])


def test_latency_predict_errors(tiny_table, capsys):
    code, _, err = run(capsys, "latency", "predict", "--table", tiny_table, "efficientvit_seg_b1")
    assert code == 2 and "Measure them with `evit-nas profile ... --blocks-from" in err
    code, _, err = run(capsys, "latency", "predict", "--table", tiny_table, "efficientvit_seg_b0", "--resolution", "128x256")
    assert code == 2 and "was measured at 64x128, not 128x256" in err
    code, _, err = run(capsys, "latency", "predict", "--table", tiny_table, "efficientvit_seg_b0", "--threads", "2")
    assert code == 2 and "pass --force to use it anyway" in err
    code, _, err = run(capsys, "latency", "predict", "--table", "missing.csv", "efficientvit_seg_b0")
    assert code == 2 and "latency table not found: missing.csv" in err


@pytest.mark.slow
def test_profile_export_import_round_trip(space_file, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    table = tmp_path / "dev_64x128_t1.csv"
    code, out, _ = run(capsys, "profile", "--device", "dev", "--resolution", "64x128", "--space", space_file,
                       "--calibration", "3", "--export-only", bundle, "-o", table)
    assert code == 0 and "profile.py run" in out and not table.exists()
    # what a device does with the bundle alone: run its agent
    done = subprocess.run([sys.executable, str(bundle / "profile.py"), "run", str(bundle), "-o",
                           str(tmp_path / "results.csv"), "--repeats", "2", "--warmup", "1"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code, out, _ = run(capsys, "profile", "--import", tmp_path / "results.csv", "--bundle", bundle, "-o", table)
    assert code == 0 and table.is_file()
    entries = json.loads((bundle / "manifest.json").read_text())["entries"]
    loaded = LatencyTable.load(table)
    assert len(loaded.rows) == sum(e["type"] == "block" for e in entries)
    assert loaded.calibration.networks == 3


@pytest.mark.slow
def test_latency_validate_writes_csv_and_plot(tiny_table, space_file, tmp_path, capsys):
    out_dir = tmp_path / "val"
    code, out, _ = run(capsys, "latency", "validate", "--table", tiny_table, "--space", space_file, "--samples", "4",
                       "--seed", "3", "--repeats", "3", "--warmup", "1", "-o", out_dir, "--json")
    data = json.loads(out)
    assert code == 0
    rows = list(csv.DictReader(line for line in open(data["csv"]) if not line.startswith("#")))
    assert len(rows) == 4  # B0-B3 are not in the tiny space
    for row in rows:
        assert float(row["measured_ms"]) > 0 and float(row["predicted_ms"]) > 0
        assert float(row["error_pct"]) == pytest.approx((float(row["predicted_ms"]) / float(row["measured_ms"]) - 1) * 100, abs=1e-2)
    assert data["table"]["networks"] == 4 and 0 <= data["table"]["within_10"] <= 100
    assert (out_dir / data["png"].split("/")[-1]).stat().st_size > 10_000
    assert not (out_dir / "validate.work").exists()


def test_validate_refuses_a_table_of_another_space(tiny_table, capsys):
    code, _, err = run(capsys, "latency", "validate", "--table", tiny_table, "--samples", "2")
    assert code == 2 and "built for another search space" in err


def test_spearman_and_summary():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, rel=1e-6)
    # Kendall tau-b: 5 concordant, 1 discordant of 6 pairs; with a tie in x: 2 / sqrt(2 * 3)
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 6 ** 0.5)
    assert kendall([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert kendall([1, 1], [1, 2]) != kendall([1, 1], [1, 2])  # NaN: no ordered pair
    s = Summary.of([100, 108, 96, 120], [100, 100, 100, 100])
    assert (s.within_5, s.within_10, s.mape, s.max_error) == (50.0, 75.0, pytest.approx(8.0), pytest.approx(20.0))
