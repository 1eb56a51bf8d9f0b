"""Fixtures shared by the tests of nas/: a real PostgreSQL server."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of its own (started as the postgres user, stopped after the
    session) and the URL of its empty database ``evit``; skipped where PostgreSQL or root
    is missing (CI has both)."""
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
