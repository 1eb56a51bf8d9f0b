"""The agent on aarch64 over SSH, in an emulated arm64 Debian guest (benchmarks/arm_check.py).

Boots a whole arm64 system under qemu (a cached build of about ten minutes the first time,
then several minutes to boot and profile under emulation), so it runs only when asked:
``EVIT_NAS_ARM_GUEST=1 pytest tests/latency_tables/test_arm_guest.py`` (or ``make arm-check``).
CI does not boot a VM.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latency_tables.table import LatencyTable
from search_space.registry import resolve_network
from search_space.space import SearchSpace

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("EVIT_NAS_ARM_GUEST") != "1",
                       reason="boots an emulated arm64 guest (minutes); set EVIT_NAS_ARM_GUEST=1 to run it"),
]

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = ["efficientvit_seg_b0", "efficientvit_seg_b1"]


@pytest.fixture(scope="module")
def arm_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("arm")
    result_file, table_file = out / "arm_check.json", out / "arm_table.csv"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "arm_check.py"), "--json", str(result_file),
                           "--table", str(table_file), "--networks", *NETWORKS], check=False, capture_output=True, text=True,
                          timeout=4 * 3600)
    assert result_file.exists(), done.stderr[-3000:]
    return json.loads(result_file.read_text()), table_file, done


def test_the_table_is_aarch64_and_every_block_has_a_latency(arm_check):
    result, table_file, _ = arm_check
    table = LatencyTable.load(table_file)
    assert table.meta["arch"] == "aarch64"
    assert result["guest"]["machine"] == "aarch64"
    space = SearchSpace.default("cityscapes")
    keys = [k for n in NETWORKS for k in space.blocks(resolve_network(n, "cityscapes"), (64, 128))]
    assert not table.missing(keys)
    assert all(table.rows[k]["median_ms"] > 0 for k in keys)


def test_every_check_passed(arm_check):
    result, _, done = arm_check
    failed = {name: c["detail"] for name, c in result["checks"].items() if not c["ok"]}
    assert not failed, failed
    for name in ("resume", "agent_killed_mid_run", "refused_here: latency measure", "every_block_has_a_latency"):
        assert result["checks"][name]["ok"], name
    assert done.returncode == 0
