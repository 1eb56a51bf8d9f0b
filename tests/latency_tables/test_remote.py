"""Profiling over SSH against a real sshd started on 127.0.0.1 by the test itself."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency_tables.remote import RemoteError, SSHTarget, check_remote
from latency_tables.table import LatencyTable
from evit_nas.main import main
from search_space import SearchSpace

pytestmark = pytest.mark.slow

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD):
        pytest.skip("no sshd on this machine (Debian: apt-get install openssh-server); .ci/run installs it")
    if os.geteuid() != 0:
        pytest.skip("sshd needs root here to switch to the logged-in user; CI runs as root")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")
    yield {"port": port, "key": str(d / "client_key"), "user": os.environ.get("USER") or "root"}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def device_python(tmp_path_factory):
    """A Python with numpy and onnxruntime and without torch, like a phone or a Pi."""
    env_dir = tmp_path_factory.mktemp("device") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy", "onnxruntime"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot install numpy + onnxruntime into a device venv: {done.stderr[-300:]}")
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0
    return str(python)


def _target(sshd, python="python3", port=None):
    return SSHTarget(f"{sshd['user']}@127.0.0.1", port=port or sshd["port"], identity=sshd["key"], python=python,
                     options=("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"))


def _ssh_args(sshd, python):
    return ["--remote", f"{sshd['user']}@127.0.0.1", "--port", sshd["port"], "--identity", sshd["key"],
            "--remote-python", python, "--ssh-option", "StrictHostKeyChecking=no",
            "--ssh-option", "UserKnownHostsFile=/dev/null", "--ssh-option", "LogLevel=ERROR"]


def test_profile_over_ssh_builds_the_table(sshd, device_python, space_file, tmp_path, capsys):
    info = check_remote(_target(sshd, device_python))
    assert info["onnxruntime"] and info["numpy"]
    table_path = tmp_path / "remote_64x128_t1.csv"
    cache = Path.home() / ".cache" / "evit-nas" / "bundles"
    before = set(cache.iterdir()) if cache.is_dir() else set()
    code = main([str(a) for a in ["profile", "--device", "far", "--resolution", "64x128", "--space", space_file,
                                  "--calibration", "3", "--repeats", "2", "--warmup", "1", "-o", table_path,
                                  *_ssh_args(sshd, device_python)]])
    capsys.readouterr()
    assert code == 0
    table = LatencyTable.load(table_path)
    assert table.meta["device"] == "far" and table.calibration.networks == 3
    assert table.predict_ms(SearchSpace.from_file(space_file).sample(0)) > 0
    # the device's work folder is cleaned up after a complete run
    assert (set(cache.iterdir()) if cache.is_dir() else set()) <= before


def test_unreachable_host_is_one_clear_error(sshd):
    closed = _free_port()
    with pytest.raises(RemoteError, match=r"cannot reach .*127\.0\.0\.1 over SSH \(port \d+\)"):
        check_remote(_target(sshd, port=closed))


def test_missing_onnxruntime_on_the_device_is_named(sshd, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    with pytest.raises(RemoteError, match=r"numpy and onnxruntime missing on .*install with `.* -m pip install numpy onnxruntime`"):
        check_remote(_target(sshd, str(bare / "bin" / "python")))


def test_a_missing_python_is_named(sshd):
    with pytest.raises(RemoteError, match=r"'python9' does not run on .*name it with --remote-python"):
        check_remote(_target(sshd, "python9"))


def test_latency_measure_times_a_peer_on_the_device(sshd, device_python, tmp_path, capsys):
    """Peers are measured on the device exactly as EfficientViT networks (the device has no torch)."""
    out = tmp_path / "far.csv"
    code = main([str(a) for a in ["latency", "measure", "segnext_t", "efficientvit_seg_b0", "--resolution", "64x128",
                                  "--device", "far", "--warmup", "1", "--repeats", "2", "-o", out,
                                  *_ssh_args(sshd, device_python)]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = out.read_text()
    assert '# device: "far"' in text and "segnext_t,peer," in text and "efficientvit_seg_b0,efficientvit," in text


def test_a_remote_python_under_home_is_left_to_the_device_shell():
    import shlex
    import subprocess

    from latency_tables.remote import _remote_command

    assert _remote_command("python3") == "python3"
    assert _remote_command("~/venv/bin/python") == '"$HOME"/venv/bin/python'
    assert _remote_command("/opt/my python/bin/python") == shlex.quote("/opt/my python/bin/python")
    # what a POSIX shell on the device makes of it
    out = subprocess.run(["sh", "-c", f"echo {_remote_command('~/venv/bin/python')}"], capture_output=True, text=True,
                         env={"HOME": "/home/pi", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "/home/pi/venv/bin/python"
