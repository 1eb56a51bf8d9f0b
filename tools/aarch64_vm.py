"""A small arm64 Debian guest under qemu-system-aarch64, for running the device agent on aarch64.

The project's users profile ARM boards (a Raspberry Pi, a Jetson's CPU, a phone) over SSH
with ``evit-nas profile --remote``. This machine has no ARM hardware, so this script builds
a whole arm64 Debian system and boots it under emulation: the agent (``profile.py``) then
runs on a real aarch64 kernel with Debian's arm64 Python and onnxruntime's aarch64 wheel,
reached over SSH like a board on the network. Emulated timings say nothing about real ARM
speed (TCG is many times slower and distorts relative costs); what the guest proves is that
every step a board goes through works on aarch64.

Why a full system and not qemu-user: onnxruntime's aarch64 wheel crashes on import under
user-mode emulation, so the agent needs its own kernel. qemu-user (binfmt_misc) is still
used to *build* the root file system: mmdebstrap installs Debian's arm64 packages and runs
their maintainer scripts through it.

What ``build`` makes, once, under the cache folder (default ``~/.cache/evit-nas/aarch64-vm``,
or ``$EVIT_NAS_ARM_VM_CACHE``, or ``--cache``):

- ``rootfs/``: Debian (bookworm by default) for arm64 from Debian's packages: the
  ``linux-image-arm64`` kernel and its initrd, systemd, Python 3, an OpenSSH server;
  numpy and onnxruntime from PyPI's aarch64 wheels, downloaded here with ``pip download
  --platform manylinux_2_X_aarch64 ...`` for the guest's Python and glibc and unpacked into
  ``/usr/local/lib/python3.X/dist-packages`` (no pip, compiler or network is needed in the
  guest);
- ``id_ed25519`` (+ ``.pub``): the client key root's ``authorized_keys`` accepts, and
  ``known_hosts``: the guest's host key, generated here, so SSH checks the guest strictly
  (under the alias ``evit-nas-aarch64``, whatever port it is forwarded to);
- ``disk.qcow2``, ``vmlinuz``, ``initrd.img``: the boot disk (ext4, made with ``mkfs.ext4
  -d``) and the kernel and initrd copied out of the root file system;
- ``build.json``: what was built (Debian release, kernel, Python, numpy, onnxruntime) and
  how long each stage took.

``start`` boots it on a fresh copy-on-write overlay of the disk (the cached disk stays as
built), with ``-M virt -cpu cortex-a72``, SSH forwarded from a port on 127.0.0.1 only, waits
until SSH answers and prints the port, the key and the ssh options to use; ``stop`` shuts
it down. Every heavy process (mmdebstrap, mkfs, qemu) runs under ``nice -n 19``.

    python3 tools/aarch64_vm.py build            # about 10 minutes, once
    python3 tools/aarch64_vm.py start --json     # boots (minutes under TCG), prints port and key
    python3 tools/aarch64_vm.py ssh -- uname -m  # aarch64
    python3 tools/aarch64_vm.py stop

Needs root (mmdebstrap in root mode, binfmt_misc) and Debian's ``qemu-system-arm``,
``qemu-user-static``, ``mmdebstrap``, ``qemu-utils`` and ``e2fsprogs``; as root on Debian
``build`` installs the missing ones with apt-get.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("EVIT_NAS_ARM_VM_CACHE") or Path.home() / ".cache" / "evit-nas" / "aarch64-vm")
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: what the guest is made of besides Debian's required packages
#: (python3-venv: Debian 12 and Raspberry Pi OS refuse system-wide pip installs, PEP 668, so a
#: board's user makes a venv; the check does the same)
GUEST_PACKAGES = ["linux-image-arm64", "systemd-sysv", "udev", "kmod", "python3", "python3-venv", "openssh-server",
                  "iproute2", "procps", "tar", "ca-certificates"]
#: the alias under which known_hosts holds the guest's host key (the forwarded port varies)
HOST_ALIAS = "evit-nas-aarch64"
HOSTNAME = "evit-arm64"
#: host programs the build and the boot need, and the Debian packages that bring them
HOST_TOOLS = {"mmdebstrap": "mmdebstrap", "qemu-aarch64-static": "qemu-user-static",
              "qemu-system-aarch64": "qemu-system-arm", "qemu-img": "qemu-utils", "mkfs.ext4": "e2fsprogs",
              "ssh": "openssh-client", "ssh-keygen": "openssh-client"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
NICE = ["nice", "-n", "19"]


class VMError(Exception):
    """A step of building or booting the guest failed; the message says which and what to do."""


def log(message: str) -> None:
    print(f"[aarch64-vm] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, nice: bool = False, check: bool = True, capture: bool = False,
        **kwargs) -> subprocess.CompletedProcess:
    """Run a command (under nice -n 19 if ``nice``), raising VMError with its last output lines."""
    full = NICE + cmd if nice else cmd
    done = subprocess.run(full, check=False, text=True, stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None, **kwargs)
    if check and done.returncode != 0:
        tail = "\n".join(((done.stderr or "") + (done.stdout or "")).strip().splitlines()[-15:])
        raise VMError(f"`{' '.join(cmd[:3])} ...` failed (exit {done.returncode})" + (f":\n{tail}" if tail else ""))
    return done


# ------------------------------------------------------------------ host set-up
def ensure_host_tools() -> None:
    """Install the missing host packages (as root, with apt-get), or say which to install."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise VMError(f"missing host packages: {' '.join(missing)}; install them (Debian: "
                      f"apt-get install {' '.join(missing)}) and run again")
    log(f"installing host packages: {' '.join(missing)}")
    run(["apt-get", "update", "-qq"], nice=True)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], nice=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def ensure_binfmt() -> None:
    """Make arm64 binaries runnable here through qemu-user (needed by mmdebstrap)."""
    if not (BINFMT / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    entry = BINFMT / "qemu-aarch64"
    if entry.exists() and entry.read_text().startswith("enabled"):
        return
    if entry.exists():  # registered but disabled
        entry.write_text("1")
        return
    conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
    if not conf.exists():
        raise VMError(f"{conf} not found; install qemu-user-static (apt-get install qemu-user-static)")
    line = next(l for l in conf.read_text().splitlines() if l.startswith(":"))
    (BINFMT / "register").write_text(line)
    if not entry.exists():
        raise VMError("could not register qemu-aarch64 with binfmt_misc")


# ------------------------------------------------------------------ build
def _stage(state: dict, name: str, started: float) -> None:
    state.setdefault("seconds", {})[name] = round(time.monotonic() - started, 1)


def _dpkg_version(rootfs: Path, package: str) -> str | None:
    text = (rootfs / "var/lib/dpkg/status").read_text(errors="replace")
    for block in text.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", block, re.MULTILINE) and "Status: install ok installed" in block:
            found = re.search(r"^Version: (\S+)", block, re.MULTILINE)
            return found.group(1) if found else None
    return None


def _guest_python(rootfs: Path) -> str:
    """The guest's python3 as X.Y (from the /usr/bin/python3 link)."""
    target = os.readlink(rootfs / "usr/bin/python3")
    found = re.fullmatch(r"python(\d+\.\d+)", Path(target).name)
    if not found:
        raise VMError(f"cannot tell the guest's Python version from /usr/bin/python3 -> {target}")
    return found.group(1)


def build_rootfs(cache: Path, suite: str, mirror: str, state: dict) -> Path:
    """Debian for arm64 with the kernel, Python 3 and sshd, via mmdebstrap (cached)."""
    rootfs = cache / "rootfs"
    stamp = cache / "rootfs.done"
    wanted = {"suite": suite, "mirror": mirror, "packages": GUEST_PACKAGES}
    if stamp.exists() and rootfs.is_dir() and json.loads(stamp.read_text()) == wanted:
        log(f"reusing the root file system in {rootfs}")
        return rootfs
    stamp.unlink(missing_ok=True)
    shutil.rmtree(rootfs, ignore_errors=True)
    started = time.monotonic()
    log(f"building Debian {suite} arm64 in {rootfs} with mmdebstrap (qemu-user; several minutes)")
    network = ("[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n")
    # Written before the kernel is installed, so its initrd is built with it: every block
    # driver (virtio's included), as the guest's disk is not this machine's.
    initramfs_conf = "MODULES=most\n"
    run(["mmdebstrap", "--mode=root", "--architectures=arm64", "--variant=minbase",
         "--aptopt=APT::Install-Recommends \"false\"",
         "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
         "--dpkgopt=path-exclude=/usr/share/locale/*",
         f"--include={','.join(GUEST_PACKAGES)}",
         ("--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" && "
          f"printf '{initramfs_conf}' > \"$1/etc/initramfs-tools/conf.d/evit-nas.conf\""),
         f"--customize-hook=echo {HOSTNAME} > \"$1/etc/hostname\"",
         f"--customize-hook=printf '127.0.0.1 localhost\\n127.0.1.1 {HOSTNAME}\\n' > \"$1/etc/hosts\"",
         "--customize-hook=printf '/dev/vda / ext4 defaults,noatime 0 1\\n' > \"$1/etc/fstab\"",
         ("--customize-hook=mkdir -p \"$1/etc/systemd/network\" && "
          f"printf '{network}' > \"$1/etc/systemd/network/20-wired.network\""),
         "--customize-hook=chroot \"$1\" systemctl enable systemd-networkd",
         # nothing in the guest should compete with the agent for the emulated CPUs
         ("--customize-hook=chroot \"$1\" systemctl mask apt-daily.timer apt-daily-upgrade.timer "
          "e2scrub_all.timer fstrim.timer systemd-networkd-wait-online.service || true"),
         suite, str(rootfs), mirror], nice=True)
    _stage(state, "mmdebstrap", started)
    stamp.write_text(json.dumps(wanted))
    return rootfs


def platform_tags(glibc: str) -> list[str]:
    """pip --platform tags for an aarch64 glibc ``2.N``: manylinux_2_N .. manylinux_2_17
    (pip does not expand a manylinux_2_N tag to the older ones itself)."""
    minor = int(glibc.split(".")[1])
    return [f"manylinux_2_{m}_aarch64" for m in range(minor, 16, -1)] + ["manylinux2014_aarch64"]


def install_wheels(cache: Path, rootfs: Path, python: str, packages: list[str], state: dict) -> dict:
    """Download numpy and onnxruntime's aarch64 wheels here and unpack them into the guest."""
    started = time.monotonic()
    glibc = (_dpkg_version(rootfs, "libc6") or "2.17").split("-")[0]
    tags = [arg for tag in platform_tags(glibc) for arg in ("--platform", tag)]
    pip_target = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp", *tags]
    wheels = cache / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    log(f"downloading {' '.join(packages)} for cp{python.replace('.', '')} aarch64 (glibc {glibc})")
    run([sys.executable, "-m", "pip", "download", "--quiet", "-d", str(wheels), *pip_target, *packages], nice=True)
    site = rootfs / f"usr/local/lib/python{python}/dist-packages"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels),
         "--target", str(site), "--no-compile", *pip_target, *packages], nice=True)
    versions = {}
    for dist in site.glob("*.dist-info"):
        name, _, version = dist.name[: -len(".dist-info")].partition("-")
        versions[name.lower()] = version
    _stage(state, "wheels", started)
    return {"wheels": sorted(p.name for p in wheels.glob("*.whl")), "versions": versions, "glibc": glibc}


def install_keys(cache: Path, rootfs: Path) -> None:
    """The client key root accepts, and a host key generated here (so known_hosts can pin it)."""
    key = cache / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "evit-nas aarch64 guest client", "-f", str(key)])
    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((cache / "id_ed25519.pub").read_text())
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    host_key = cache / "host_ed25519"
    if not host_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{HOSTNAME}", "-f", str(host_key)])
    etc_ssh = rootfs / "etc/ssh"
    for old in etc_ssh.glob("ssh_host_*"):
        old.unlink()
    shutil.copy(host_key, etc_ssh / "ssh_host_ed25519_key")
    shutil.copy(f"{host_key}.pub", etc_ssh / "ssh_host_ed25519_key.pub")
    os.chmod(etc_ssh / "ssh_host_ed25519_key", 0o600)
    (etc_ssh / "sshd_config.d").mkdir(exist_ok=True)
    (etc_ssh / "sshd_config.d/evit-nas.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUseDNS no\n")
    public = (cache / "host_ed25519.pub").read_text().split()
    (cache / "known_hosts").write_text(f"{HOST_ALIAS} {public[0]} {public[1]}\n")


def make_disk(cache: Path, rootfs: Path, state: dict) -> None:
    """Kernel and initrd copied out, and the root file system as an ext4 qcow2 disk."""
    started = time.monotonic()
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise VMError(f"no kernel in {rootfs}/boot; delete {cache} and build again")
    kernel = kernels[-1]
    release = kernel.name[len("vmlinuz-"):]
    initrd = rootfs / "boot" / f"initrd.img-{release}"
    if not initrd.exists():
        raise VMError(f"no initrd for {release} in {rootfs}/boot (update-initramfs failed during the build?)")
    shutil.copy(kernel, cache / "vmlinuz")
    shutil.copy(initrd, cache / "initrd.img")
    used = int(run(["du", "-sxm", str(rootfs)], capture=True).stdout.split()[0])
    size_mb = used + max(512, used // 2)  # room for bundles and results in the guest
    raw = cache / "disk.raw"
    raw.unlink(missing_ok=True)
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(rootfs), str(raw), f"{size_mb}M"], nice=True)
    tmp = cache / "disk.qcow2.tmp"
    run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(tmp)], nice=True)
    tmp.replace(cache / "disk.qcow2")
    raw.unlink()
    state["kernel"] = release
    state["disk_mb"] = size_mb
    _stage(state, "disk", started)


def build(cache: Path, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR,
          packages: list[str] | None = None, force: bool = False) -> dict:
    """Build the guest once (or return the cached one's build.json).

    ``packages`` are the PyPI requirements installed in the guest (default: numpy and
    onnxruntime, newest for the guest's Python); giving others, or ``force``, rebuilds the
    Python packages and the disk but reuses the Debian root file system.
    """
    cache.mkdir(parents=True, exist_ok=True)
    info_path = cache / "build.json"
    packages = packages or ["numpy", "onnxruntime"]
    if info_path.exists() and (cache / "disk.qcow2").exists() and not force:
        info = json.loads(info_path.read_text())
        if (info.get("requirements"), info.get("suite"), info.get("guest_packages")) == (packages, suite,
                                                                                        GUEST_PACKAGES):
            log(f"reusing the guest built {info.get('built')} in {cache}")
            return info
    if os.geteuid() != 0:
        raise VMError("building the guest needs root (mmdebstrap --mode=root and binfmt_misc); run it as root")
    started = time.monotonic()
    ensure_host_tools()
    ensure_binfmt()
    state: dict = {}
    rootfs = build_rootfs(cache, suite, mirror, state)
    python = _guest_python(rootfs)
    wheels = install_wheels(cache, rootfs, python, packages, state)
    install_keys(cache, rootfs)
    make_disk(cache, rootfs, state)
    stamp = json.loads((cache / "rootfs.done").read_text())
    debian_version = (rootfs / "etc/debian_version").read_text().strip()
    info = {
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "suite": stamp["suite"], "debian_version": debian_version, "mirror": stamp["mirror"],
        "kernel": state["kernel"], "kernel_package": _dpkg_version(rootfs, f"linux-image-{state['kernel']}"),
        "python": _dpkg_version(rootfs, f"python{python}"), "python_minor": python, "glibc": wheels["glibc"],
        "guest_packages": GUEST_PACKAGES, "requirements": packages, "pypi": wheels["versions"], "wheels": wheels["wheels"],
        "disk_mb": state["disk_mb"], "seconds": {**state["seconds"], "total": round(time.monotonic() - started, 1)},
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    log(f"built: Debian {debian_version}, kernel {info['kernel']}, Python {info['python']}, numpy "
        f"{info['pypi'].get('numpy')}, onnxruntime {info['pypi'].get('onnxruntime')} "
        f"({info['seconds']['total']:.0f} s)")
    return info


# ------------------------------------------------------------------ boot
def _run_dir(cache: Path) -> Path:
    return cache / "run"


def _state(cache: Path) -> dict | None:
    path = _run_dir(cache) / "state.json"
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state if _alive(state.get("pid")) else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    return cmdline.exists() and b"qemu-system-aarch64" in cmdline.read_bytes()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ssh_options(cache: Path) -> list[str]:
    """The ``-o`` options that reach the guest with its pinned host key."""
    return ["BatchMode=yes", f"UserKnownHostsFile={cache / 'known_hosts'}", f"HostKeyAlias={HOST_ALIAS}",
            "StrictHostKeyChecking=yes", "ConnectTimeout=30", "ServerAliveInterval=30", "ServerAliveCountMax=20",
            "LogLevel=ERROR"]


def ssh_command(cache: Path, port: int, command: str) -> list[str]:
    args = ["ssh", "-p", str(port), "-i", str(cache / "id_ed25519")]
    for option in ssh_options(cache):
        args += ["-o", option]
    return args + ["root@127.0.0.1", command]


def _describe(cache: Path, state: dict) -> dict:
    return {"host": "root@127.0.0.1", "port": state["port"], "identity": str(cache / "id_ed25519"),
            "ssh_options": ssh_options(cache), "pid": state["pid"], "serial_log": state["serial_log"],
            "cpu": state["cpu"], "smp": state["smp"], "memory_mb": state["memory_mb"],
            "boot_seconds": state.get("boot_seconds")}


def start(cache: Path, *, port: int | None = None, cpu: str = "cortex-a72", smp: int = 2, memory_mb: int = 2048,
          timeout_s: float = 1200.0) -> dict:
    """Boot the built guest on a fresh overlay, wait for SSH, return how to reach it."""
    running = _state(cache)
    if running is not None:
        log(f"already running (pid {running['pid']}, port {running['port']})")
        return _describe(cache, running)
    for name in ("disk.qcow2", "vmlinuz", "initrd.img", "id_ed25519", "known_hosts"):
        if not (cache / name).exists():
            raise VMError(f"{cache / name} is missing: build the guest first (python3 tools/aarch64_vm.py build)")
    if shutil.which("qemu-system-aarch64") is None:
        raise VMError("qemu-system-aarch64 not found; install it (Debian: apt-get install qemu-system-arm)")
    rundir = _run_dir(cache)
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    overlay = rundir / "overlay.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(cache / "disk.qcow2"), str(overlay)])
    port = port or _free_port()
    serial = rundir / "serial.log"
    pidfile = rundir / "qemu.pid"
    cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", cpu, "-smp", str(smp), "-m", str(memory_mb),
           "-accel", "tcg,thread=multi",
           "-kernel", str(cache / "vmlinuz"), "-initrd", str(cache / "initrd.img"),
           "-append", "root=/dev/vda rw console=ttyAMA0 net.ifnames=0",
           "-drive", f"if=none,id=hd0,format=qcow2,file={overlay}", "-device", "virtio-blk-pci,drive=hd0",
           "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22", "-device", "virtio-net-pci,netdev=net0",
           "-device", "virtio-rng-pci",
           "-display", "none", "-monitor", "none", "-serial", f"file:{serial}",
           "-daemonize", "-pidfile", str(pidfile)]
    started = time.monotonic()
    log(f"booting: -M virt -cpu {cpu} -smp {smp} -m {memory_mb}, SSH on 127.0.0.1:{port} (TCG: minutes)")
    run(cmd, nice=True, capture=True)
    pid = int(pidfile.read_text().strip())
    state = {"pid": pid, "port": port, "cpu": cpu, "smp": smp, "memory_mb": memory_mb, "serial_log": str(serial),
             "started": time.time()}
    (rundir / "state.json").write_text(json.dumps(state))
    deadline = started + timeout_s
    while True:
        if not _alive(pid):
            raise VMError(f"qemu exited during boot; the guest's console is in {serial}:\n{_tail(serial)}")
        probe = subprocess.run(ssh_command(cache, port, "true"), check=False, capture_output=True, text=True, timeout=300)
        if probe.returncode == 0:
            break
        if time.monotonic() > deadline:
            stop(cache)
            raise VMError(f"no SSH answer from the guest within {timeout_s:.0f} s (last: {probe.stderr.strip()[-200:]}); "
                          f"its console:\n{_tail(serial)}")
        time.sleep(5)
    state["boot_seconds"] = round(time.monotonic() - started, 1)
    (rundir / "state.json").write_text(json.dumps(state))
    log(f"up after {state['boot_seconds']:.0f} s: ssh -p {port} -i {cache / 'id_ed25519'} root@127.0.0.1")
    return _describe(cache, state)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no console output)"


def stop(cache: Path, timeout_s: float = 90.0) -> bool:
    """Power the guest off (kill qemu if it does not stop); False if it was not running."""
    state = _state(cache)
    if state is None:
        return False
    pid = state["pid"]
    subprocess.run(ssh_command(cache, state["port"], "systemctl poweroff"), check=False, capture_output=True,
                   timeout=120)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(1)
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(20):
            if not _alive(pid):
                break
            time.sleep(0.5)
    (_run_dir(cache) / "overlay.qcow2").unlink(missing_ok=True)
    log(f"stopped (pid {pid})")
    return True


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aarch64_vm.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"cache folder (default: $EVIT_NAS_ARM_VM_CACHE or {DEFAULT_CACHE})")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the guest (once; reused afterwards)")
    b.add_argument("--suite", default=DEFAULT_SUITE, help=f"Debian release (default: {DEFAULT_SUITE})")
    b.add_argument("--mirror", default=DEFAULT_MIRROR, help=f"Debian mirror (default: {DEFAULT_MIRROR})")
    b.add_argument("--package", action="append", dest="packages",
                   help="PyPI requirement for the guest, repeatable (default: numpy and onnxruntime; "
                        "e.g. --package numpy --package onnxruntime==1.20.1)")
    b.add_argument("--force", action="store_true", help="rebuild the Python packages and the disk")
    s = sub.add_parser("start", help="boot the guest and wait for SSH")
    s.add_argument("--port", type=int, help="host port forwarded to the guest's SSH (default: a free one)")
    s.add_argument("--cpu", default="cortex-a72", help="QEMU CPU model (default: cortex-a72; or cortex-a76)")
    s.add_argument("--smp", type=int, default=2, help="guest CPUs (default: 2)")
    s.add_argument("--memory", type=int, default=2048, help="guest memory in MiB (default: 2048)")
    s.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for SSH (default: 1200)")
    s.add_argument("--json", action="store_true", help="print how to reach the guest as JSON")
    sub.add_parser("stop", help="shut the guest down")
    st = sub.add_parser("status", help="is the guest running, and how to reach it")
    st.add_argument("--json", action="store_true")
    sh = sub.add_parser("ssh", help="run a command in the running guest")
    sh.add_argument("remote", nargs=argparse.REMAINDER, help="the command (after --)")
    args = parser.parse_args(argv)
    cache = args.cache.expanduser().resolve()
    try:
        if args.command == "build":
            print(json.dumps(build(cache, args.suite, args.mirror, args.packages, args.force), indent=2))
        elif args.command == "start":
            info = start(cache, port=args.port, cpu=args.cpu, smp=args.smp, memory_mb=args.memory,
                         timeout_s=args.timeout)
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                print(f"port {info['port']}\nidentity {info['identity']}\n"
                      f"evit-nas profile --remote root@127.0.0.1 --port {info['port']} --identity {info['identity']} "
                      + " ".join(f"--ssh-option {o}" for o in info["ssh_options"]))
        elif args.command == "stop":
            if not stop(cache):
                log("not running")
        elif args.command == "status":
            state = _state(cache)
            if args.json:
                print(json.dumps(_describe(cache, state) if state else None))
            else:
                print(f"running: pid {state['pid']}, port {state['port']}" if state else "not running")
            return 0 if state else 1
        elif args.command == "ssh":
            state = _state(cache)
            if state is None:
                raise VMError("the guest is not running; start it first (python3 tools/aarch64_vm.py start)")
            remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
            return subprocess.call(ssh_command(cache, state["port"], " ".join(remote) or "uname -a"))
    except VMError as exc:
        print(f"aarch64_vm.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
