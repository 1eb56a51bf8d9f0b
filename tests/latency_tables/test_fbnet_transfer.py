"""benchmarks/fbnet_transfer.py, run for real on 400 FBNet networks (tests/data): a per-block
table of one device adapted to another from a few end-to-end timings."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "fbnet_transfer.py"
DATA = ROOT / "tests" / "data" / "fbnet_latency_400.csv"


def _run(*argv, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), "--data", str(DATA), *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture
def with_exact_target(tmp_path):
    """The data plus a device that is the Pixel 3's table 1.7x slower, with 1.2 ms more per e6 block
    and 8 ms more per network: exactly what the transfer's features can express."""
    with DATA.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        e6 = sum(op.split("_")[1] == "e6" for op in row["arch"].split() if op != "skip")
        row["exact"] = f"{1.7 * float(row['pixel3']) + 1.2 * e6 + 8.0:.6f}"
    path = tmp_path / "latency_ms.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_an_exactly_transferable_target_is_learnt_from_50_networks(with_exact_target, tmp_path):
    out = tmp_path / "r.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--data", str(with_exact_target), "--source", "pixel3",
                             "--target", "exact", "--samples", "20", "50", "--draws", "2", "--judged", "100",
                             "--json", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["command"].startswith("python benchmarks/fbnet_transfer.py --data")
    (pair,) = data["results"]
    assert (pair["source"], pair["target"]) == ("pixel3", "exact")
    assert pair["source_table_mape_pct"] < 0.01  # the Pixel 3's per-block table is recovered exactly
    assert pair["ceiling"]["mape_pct"] < 0.01
    at_50 = next(s for s in pair["samples"] if s["samples"] == 50)
    assert at_50["mape_pct"] < 0.3 and at_50["within_10_pct"] == 100.0 and at_50["spearman"] > 0.999
    assert at_50["rescaled_source_mape_pct"] > 3.0  # the fixed and per-e6 ms are what a rescaling misses
    assert pair["target_met"] is True
    log = out.with_suffix(".log").read_text()
    assert log.startswith("$ python benchmarks/fbnet_transfer.py") and "pixel3 -> exact" in log


def test_every_target_column_runs_with_all(tmp_path):
    result = _run("--source", "raspi4", "--target", "all", "--samples", "20", "--draws", "1", "--judged", "100",
                  "--json", str(tmp_path / "all.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pairs = json.loads((tmp_path / "all.json").read_text())["results"]
    assert [p["target"] for p in pairs] == ["gold_6226", "gold_6240", "silver_4114", "pixel3", "pixel2",
                                            "samsung_a50", "essential_ph_1"]
    assert all(p["target_met"] is None for p in pairs)  # no 50-network figure, no verdict
    assert "MAPE (%)" in result.stdout and "FLOP" not in result.stdout.upper()


@pytest.mark.parametrize("argv, message", [
    (["--target", "nope"], "no device column 'nope'; the file has gold_6226, gold_6240, silver_4114, raspi4, "
                           "pixel3, pixel2, samsung_a50, essential_ph_1"),
    (["--source", "arch"], "no device column 'arch'"),
    (["--judged", "390"], "--judged 390 leaves no pool of 100 networks in 400"),
])
def test_bad_input_is_one_clear_error(argv, message, tmp_path):
    result = _run(*argv, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []
