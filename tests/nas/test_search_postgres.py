"""Several workers on one study through a real PostgreSQL server started by the test."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from optuna.trial import TrialState

from latency_tables import LatencyTable
from nas.search import load_study

pytestmark = pytest.mark.slow

EVIT_NAS = Path(sys.executable).parent / "evit-nas"


@pytest.fixture(scope="module")
def postgres_url():
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("no PostgreSQL server here (Debian: apt-get install postgresql); .ci/run installs it")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting PostgreSQL needs root (to run it as the postgres user); CI runs as root")
    bin_dir = Path(initdb[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="evitnas-pg-"))
    os.chmod(root, 0o755)
    shutil.chown(root, "postgres", "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    def as_postgres(*args):
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, args)], check=True, capture_output=True, text=True)

    as_postgres(bin_dir / "initdb", "-D", root / "data", "-A", "trust", "-U", "postgres")
    as_postgres(bin_dir / "pg_ctl", "-D", root / "data", "-l", root / "log", "-w", "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        as_postgres(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "evit")
        yield f"postgresql://postgres@127.0.0.1:{port}/evit"
    finally:
        as_postgres(bin_dir / "pg_ctl", "-D", root / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


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
