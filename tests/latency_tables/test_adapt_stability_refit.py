"""benchmarks/adapt_stability.py --refit, on the tables a real run kept (five adaptations of the
shipped table on the AMD VM, committed beside their results): refitting offline must reproduce
what the run itself recorded when it uses the run's own calibration rule, and a missing table
must stop it with a clear message. Nothing is timed."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "adapt_stability.py"
RUN = ROOT / "benchmarks" / "results" / "adapt_stability_w60_f6_blocks.json"


def _copy(tmp_path: Path) -> Path:
    results = tmp_path / RUN.name
    shutil.copyfile(RUN, results)
    shutil.copytree(RUN.with_name(RUN.stem + "_tables"), tmp_path / (RUN.stem + "_tables"))
    return results


def _refit(results: Path, *weights: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--refit", str(results), "--weights", *weights],
                          capture_output=True, text=True, timeout=300, cwd=results.parent)


def test_the_refit_reproduces_the_run_and_scores_each_pull(tmp_path):
    results = _copy(tmp_path)
    recorded = json.loads(results.read_text())
    done = _refit(results, "10", "1000")
    assert done.returncode == 0, done.stderr
    refit = json.loads(results.read_text())["refit"]
    assert [e["prior_weight"] for e in refit] == [None, 10.0, 1000.0]
    # the cross-validated pull is how the run fitted (the tables kept then): the same judgement, network for network
    as_run = refit[0]
    assert [a["within_10_pct"] for a in as_run["adaptations"]] == [a["within_10_pct"] for a in recorded["adaptations"]]
    assert [a["bias_pct"] for a in as_run["adaptations"]] == [a["bias_pct"] for a in recorded["adaptations"]]
    assert as_run["fronts"]["50"]["within_10_pct"] == recorded["fronts"]["50"]["within_10_pct"]
    # a fixed pull is fitted as asked, and every adaptation and front gets its figures
    for entry in refit[1:]:
        assert all(a["prior_weight"] == entry["prior_weight"] for a in entry["adaptations"])
        assert set(entry["fronts"]) == set(recorded["fronts"]) and len(entry["adaptations"]) == 5
    assert "cross-validated: within ±10%" in done.stdout and "pull 10: within ±10%" in done.stdout


def test_a_missing_kept_table_is_named(tmp_path):
    results = _copy(tmp_path)
    before = results.read_text()
    (tmp_path / (RUN.stem + "_tables") / "adapted3.csv").unlink()
    done = _refit(results, "10")
    assert done.returncode != 0 and "adapted3.csv is missing" in done.stderr and "Traceback" not in done.stderr
    assert results.read_text() == before  # nothing already saved is changed
