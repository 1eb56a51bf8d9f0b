"""Run the timing of a bundle on another machine over SSH (no torch needed there).

The bundle (ONNX files, manifest and ``profile.py``) is copied to
``~/.cache/evit-nas/bundles/<bundle id>/`` on the device, ``profile.py run`` times it there
with the device's own Python, numpy and onnxruntime, and the results file is fetched back.
An interrupted run resumes: the copied bundle and the partial results stay on the device
until the run completes. Uses the system's ``ssh`` client (keys, agents and
``~/.ssh/config`` work as usual); it never asks for a password.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from search_space.records import write_atomic

from .bundle import ProfileError

__all__ = ["RemoteError", "SSHTarget", "check_remote", "run_remote"]


class RemoteError(ProfileError):
    """The device cannot be reached or cannot run the timing."""


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to reach the device.

    Attributes:
        host: ``user@host`` or a host alias from ``~/.ssh/config``.
        port: SSH port.
        identity: private key file (``ssh -i``), if not the default.
        python: the device's Python, with numpy and onnxruntime.
        options: extra ``ssh -o`` options, e.g. ``("StrictHostKeyChecking=accept-new",)``.
        timeout_s: how long to wait for a connection.
    """

    host: str
    port: int = 22
    identity: str | None = None
    python: str = "python3"
    options: tuple[str, ...] = field(default_factory=tuple)
    timeout_s: int = 10

    def command(self, remote_command: str) -> list[str]:
        args = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.timeout_s}"]
        if self.identity:
            args += ["-i", self.identity]
        for option in self.options:
            args += ["-o", option]
        return args + [self.host, remote_command]


def _remote_command(path: str) -> str:
    """A program path quoted for the device's shell, a leading ``~/`` left to the shell to
    expand (``--remote-python ~/venv/bin/python``)."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _ssh(target: SSHTarget, command: str, input_bytes: bytes | None = None, stream_stderr: bool = False) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            target.command(command),
            input=input_bytes,
            stdout=subprocess.PIPE,
            stderr=None if stream_stderr else subprocess.PIPE,
            timeout=None if stream_stderr else 120 + target.timeout_s,
        )
    except FileNotFoundError:
        raise RemoteError("no `ssh` client on this machine; install OpenSSH (Debian: apt-get install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{target.host} did not answer within {120 + target.timeout_s} s over SSH; check that it is up") from None


def _stderr(result: subprocess.CompletedProcess) -> str:
    text = (result.stderr or b"").decode(errors="replace").strip().splitlines()
    return text[-1] if text else "no message"


def check_remote(target: SSHTarget) -> dict:
    """Connect and check that the device can time models.

    Returns:
        The device's Python, numpy and onnxruntime versions and architecture.

    Raises:
        RemoteError: unreachable host or missing Python packages, with what to do.
    """
    probe = (
        "import json, platform\n"
        "out = {'arch': platform.machine(), 'python': platform.python_version()}\n"
        "for name in ('numpy', 'onnxruntime'):\n"
        "    try:\n"
        "        out[name] = __import__(name).__version__\n"
        "    except ImportError:\n"
        "        out[name] = None\n"
        "print(json.dumps(out))\n"
    )
    result = _ssh(target, f"{_remote_command(target.python)} -c {shlex.quote(probe)}")
    if result.returncode == 255:
        raise RemoteError(
            f"cannot reach {target.host} over SSH (port {target.port}): {_stderr(result)}. Check the address, "
            "--port and --identity, and that `ssh HOST true` works without a password"
        )
    if result.returncode != 0:
        raise RemoteError(
            f"{target.python!r} does not run on {target.host}: {_stderr(result)}. Install Python 3 there or "
            "name it with --remote-python"
        )
    import json

    try:
        info = json.loads(result.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RemoteError(f"unexpected answer from {target.host}: {result.stdout[-200:]!r}") from None
    missing = [name for name in ("numpy", "onnxruntime") if not info.get(name)]
    if missing:
        raise RemoteError(
            f"{' and '.join(missing)} missing on {target.host} ({target.python}); install with "
            f"`{target.python} -m pip install {' '.join(missing)}` there (no torch is needed), then run again"
        )
    return info


def run_remote(
    target: SSHTarget,
    bundle_dir: str | Path,
    manifest: dict,
    output: str | Path,
    *,
    device: str,
    threads: int,
    warmup: int,
    repeats: int,
) -> None:
    """Copy the bundle, time it on the device, fetch the results CSV to ``output``.

    Partial results are fetched even when the run fails or is interrupted, so nothing
    measured is lost; the next call resumes on the device.
    """
    bundle_dir = Path(bundle_dir)
    remote_dir = f"$HOME/.cache/evit-nas/bundles/{manifest['bundle_id']}"
    have = _ssh(target, f'test -f "{remote_dir}/.complete"')
    if have.returncode != 0:
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w") as tar:
                tar.add(bundle_dir, arcname=".")
            archive.seek(0)
            copy = _ssh(target, f'mkdir -p "{remote_dir}" && tar -C "{remote_dir}" -xf - && touch "{remote_dir}/.complete"',
                        input_bytes=archive.read())
        if copy.returncode != 0:
            raise RemoteError(f"could not copy the bundle to {target.host}: {_stderr(copy)} (is there `tar` and free disk space?)")
    run = (
        f'cd "{remote_dir}" && {_remote_command(target.python)} profile.py run . -o results.csv '
        f"--device {shlex.quote(device)} --threads {threads} --warmup {warmup} --repeats {repeats}"
    )
    try:
        result = _ssh(target, run, stream_stderr=True)
    finally:
        fetched = _ssh(target, f'cat "{remote_dir}/results.csv" 2>/dev/null')
        if fetched.returncode == 0 and fetched.stdout:
            write_atomic(output, fetched.stdout.decode())
    if result.returncode != 0:
        raise RemoteError(
            f"the timing on {target.host} stopped (exit code {result.returncode}); what was measured is in {output}, "
            "and running the same command again resumes"
        )
    _ssh(target, f'rm -rf "{remote_dir}"')
    sys.stderr.flush()
