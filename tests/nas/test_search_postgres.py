"""Several workers on one study through a real PostgreSQL server started by the test
(the ``postgres_url`` fixture of ``tests/nas/conftest.py``)."""

import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from latency_tables import LatencyTable
from nas.search import load_study

pytestmark = pytest.mark.slow

EVIT_NAS = Path(sys.executable).parent / "evit-nas"


def test_two_workers_share_one_study(postgres_url, tiny_table, space, space_file):
    table = LatencyTable.load(tiny_table)
    lat = sorted(table.predict_ms(space.sample(i)) for i in range(40))
    cmd = [str(EVIT_NAS), "search", "--table", str(tiny_table), "--space", str(space_file), "--budget-ms", f"{lat[20]}",
           "--trials", "50", "--storage", postgres_url, "--study", "shared", "--sampler", "tpe", "--json"]
    workers = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    study = load_study(postgres_url, "shared")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 50  # the total, not 50 per worker
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both did work
    surplus = [t for t in study.trials if t.state != TrialState.COMPLETE]
    assert all(t.user_attrs.get("surplus") for t in surplus) and len(surplus) <= 1


def test_unreachable_database_fails_fast(tiny_table, space_file, postgres_url):
    closed = postgres_url.rsplit(":", 1)[0] + ":1/evit"
    done = subprocess.run([str(EVIT_NAS), "search", "--table", str(tiny_table), "--space", str(space_file),
                           "--budget-ms", "1000", "--trials", "3", "--storage", closed], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "cannot open storage" in done.stderr and "Traceback" not in done.stderr
