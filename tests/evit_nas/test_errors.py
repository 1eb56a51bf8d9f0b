"""Every subcommand, given bad input, fails with one line on stderr, exit code 2, no traceback."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

EVIT_NAS = Path(sys.executable).parent / "evit-nas"

# (arguments, a piece of the one error line)
RUNTIME_ERRORS = [
    (["describe", "nope"], "unknown network 'nope'"),
    (["describe", "efficientvit_seg_b0", "--dataset", "ade20k"], "no official ade20k configuration"),
    (["export", "nope"], "unknown network 'nope'"),
    (["space", "--space", "{tmp}/missing.yaml"], "search space file not found"),
    (["spec"], "give a NETWORK"),
    (["spec", "segformer_b0"], "is a peer network"),
    (["profile"], "give --resolution HxW"),
    (["profile", "--import", "r.csv"], "--import needs --bundle DIR"),
    (["latency", "predict", "--table", "{tmp}/missing.csv", "efficientvit_seg_b0"], "latency table not found"),
    (["latency", "validate", "--table", "{tmp}/missing.csv"], "latency table not found"),
    (["latency", "measure", "nope"], "unknown network 'nope'"),
    (["search", "--table", "{tmp}/missing.csv", "--budget-ms", "10"], "latency table not found"),
    (["pareto", "--storage", "{tmp}/s.journal", "--study", "nope"], "no study 'nope'"),
    (["validate"], "give --study NAME --top-k K"),
    (["validate", "efficientvit_seg_b0", "--dataset", "cityscapes:{tmp}/none"], "Cityscapes: no folder"),
    (["report", "--storage", "{tmp}/s.journal", "--study", "nope"], "no study 'nope'"),
    (["demo", "--table", "{tmp}/missing.csv", "--out", "{tmp}/demo"], "latency table not found"),
]

ARGUMENT_ERRORS = [
    ["models", "--bogus"],
    ["describe", "efficientvit_seg_b0", "--resolution", "100x100"],
    ["latency"],
    ["search", "--table", "t.csv"],
]


def _run(argv, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    return subprocess.run([str(EVIT_NAS), *args], capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("argv, message", RUNTIME_ERRORS, ids=[" ".join(a[:2]) for a, _ in RUNTIME_ERRORS])
def test_a_user_error_is_one_line_and_exit_code_2(argv, message, tmp_path):
    result = _run(argv, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("evit-nas: error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv", ARGUMENT_ERRORS, ids=[" ".join(a[:2]) for a in ARGUMENT_ERRORS])
def test_an_argument_error_is_argparse_usage_and_exit_code_2(argv, tmp_path):
    result = _run(argv, tmp_path)
    assert result.returncode == 2
    assert "error:" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr


SHIPPED_TABLE = str(Path(__file__).resolve().parents[2] / "latency_tables" / "x86_64_xeon_2core_256x512_t1.csv")
#: every option that takes an onnxruntime thread count
THREAD_OPTIONS = [
    ["profile", "--adapt-from", SHIPPED_TABLE, "-o", "{tmp}/t.csv"],
    ["profile", "--resolution", "64x128", "-o", "{tmp}/t.csv"],
    ["latency", "predict", "--table", SHIPPED_TABLE, "efficientvit_seg_b0"],
    ["latency", "measure", "efficientvit_seg_b0", "-o", "{tmp}/m.csv"],
    ["latency", "explain", "efficientvit_seg_b0", "--csv", "{tmp}/e.csv"],
]


@pytest.mark.parametrize("threads", ["0", "-2"])
@pytest.mark.parametrize("argv", THREAD_OPTIONS, ids=[" ".join(a[:2]) for a in THREAD_OPTIONS])
def test_a_thread_count_below_1_is_refused_and_nothing_is_written(argv, threads, tmp_path):
    # `profile --adapt-from T --threads 0` used to write a 1-thread table (0 read as "not given")
    args = [a.replace("{tmp}", str(tmp_path)) for a in [*argv, "--threads", threads]]
    result = subprocess.run([str(EVIT_NAS), *args], capture_output=True, text=True, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, timeout=120)  # accepted, it would start timing for minutes
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith(f"argument --threads: {threads} threads: give 1 or more (e.g. --threads 1)"), last
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_host_fails_before_any_export(tmp_path):
    start = time.monotonic()
    result = _run(["profile", "--remote", "nobody@127.0.0.1", "--port", "1", "--resolution", "64x128",
                   "-o", "{tmp}/t.csv"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot reach nobody@127.0.0.1" in result.stderr
    assert not (tmp_path / "t.csv.work").exists()  # nothing was exported
    assert time.monotonic() - start < 60  # (the speed target, 15 s, is measured by benchmarks/cli_startup.py)


def test_reading_commands_do_not_load_torch_or_optuna():
    code = ("import sys, contextlib, io\n"
            "from evit_nas.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['models']) == 0\n"
            "print(sorted(m for m in ('torch', 'optuna', 'onnxruntime') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
