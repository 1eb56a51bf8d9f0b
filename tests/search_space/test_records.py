"""One atomic write and one metadata-CSV format for every file the project writes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from search_space.records import (RecordError, atomic_path, format_csv, parse_csv, read_csv, write_atomic,
                                  write_csv)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv"


def test_metadata_csv_round_trip_keeps_types():
    meta = {"device": "pi 4: lab", "threads": 4, "resolution": [256, 512], "calibration": {"a": 1.5}, "none": None}
    text = format_csv(meta, ["a", "b"], [{"a": 1, "b": "x,y"}, {"a": None}])
    got_meta, rows = parse_csv(text, "t")
    assert got_meta == meta
    assert rows == [{"a": "1", "b": "x,y"}, {"a": "", "b": ""}]


def test_the_other_dialect_is_refused_with_what_to_do():
    with pytest.raises(RecordError, match="line 1: unreadable metadata value"):
        parse_csv("# device: test-machine\na\n1\n", "old.csv")


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.txt"
    write_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_every_writer_is_read_by_every_reader(tmp_path):
    from latency_tables.table import LatencyTable

    # a latency table, a plain CSV, and results of the device agent, all read by read_csv and by the table loader
    table = LatencyTable.load(SHIPPED)
    table.save(tmp_path / "table.csv")
    meta, rows = read_csv(tmp_path / "table.csv")
    assert meta["format"] == "evit-nas-latency-table" and len(rows) == len(table.rows)
    write_csv(tmp_path / "plain.csv", ["name", "ms"], [{"name": "b0", "ms": 1.5}], {"device": "d", "threads": 1})
    assert read_csv(tmp_path / "plain.csv") == ({"device": "d", "threads": 1}, [{"name": "b0", "ms": "1.5"}])
    assert LatencyTable.load(tmp_path / "table.csv").rows == table.rows


def test_no_other_module_renames_files_into_place():
    """The atomic write lives in records.py alone."""
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or path.name == "records.py" or "tests" in path.parts:
            continue
        if re.search(r"os\.replace\(|\.replace\(\w*path\)|\.rename\(", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_agent_runs_with_the_records_copy_alone(tmp_path):
    """On a device the agent has only its bundle folder: itself and records.py."""
    import shutil

    shutil.copy(ROOT / "latency_tables" / "profile.py", tmp_path / "profile.py")
    shutil.copy(ROOT / "search_space" / "records.py", tmp_path / "records.py")
    result = subprocess.run([sys.executable, "-S", str(tmp_path / "profile.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "bundle" in result.stdout


def test_cpu_model_names_an_arm_core_when_the_kernel_gives_no_model():
    from search_space.records import cpu_model

    qemu_a72 = "processor\t: 0\nBogoMIPS\t: 125.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd08\n"
    assert cpu_model(qemu_a72) == "ARM Cortex-A72"
    assert cpu_model("model name\t: AMD EPYC 7B13\nCPU part\t: 0xd08\n") == "AMD EPYC 7B13"
    assert cpu_model("CPU implementer\t: 0x41\nCPU part\t: 0xfff\n")  # an unknown part: still a name
