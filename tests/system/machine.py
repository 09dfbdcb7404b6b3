"""A Debian bookworm machine booted with systemd 252 in systemd-nspawn, for the tests in this folder.

- The root file system is built once with ``debootstrap --variant=minbase`` and cached under
  ``$SCALE_BRIDGE_TEST_CACHE`` (default ``/var/cache/scale-bridge-test``), keyed by a hash of the suite,
  mirror and package list; a stale one is deleted. It is only ever used as the lower layer of
  ``--volatile=overlay``, so every boot starts from the same clean tree and nothing is written to it.
- The project is installed into it the way an installer would (``systemd/install.sh``), offline, from
  wheels built outside on the host (also cached, keyed by pyproject.toml); the container has no network
  (``--private-network``: only its own loopback).
- Flags that work on this kind of machine (host PID 1 is not systemd, cgroup v1 + an empty cgroup2):
  ``--keep-unit --register=no`` (no host systemd/machined to talk to), ``-b``; controlled with
  ``nsenter -t <container init pid> -a`` (``-M`` needs machined). Two more, found necessary here:
  ``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`` and ``--system-call-filter=bpf``: in the default (legacy) layout
  the container's systemd gets no devices controller and DevicePolicy=/DeviceAllow= are silently not
  enforced; on the unified hierarchy systemd enforces them with a BPF device program, which nspawn's
  default seccomp filter would otherwise refuse.

Run ``python tests/system/machine.py build`` to build (and time) the caches by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SCALE_BRIDGE_TEST_CACHE", "/var/cache/scale-bridge-test"))
SUITE = "bookworm"
MIRROR = os.environ.get("SCALE_BRIDGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
VARIANT = "minbase"
#: procps: /bin/kill for ExecReload=; dbus: the system bus (what BlueZ/bleak use); python3-venv: install.sh
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "procps")
#: bump when the post-processing below changes
ROOTFS_FORMAT = 1
#: units that only slow a test boot down
MASKED_UNITS = (
    "console-getty.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "systemd-tmpfiles-clean.timer",
)
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REQUIRED_TOOLS = ("systemd-nspawn", "debootstrap", "nsenter")


class MachineError(RuntimeError):
    pass


def missing_requirements() -> str | None:
    """Why nspawn tests cannot run here, or None."""
    if sys.platform != "linux":
        return "systemd-nspawn needs Linux"
    if os.geteuid() != 0:
        return "systemd-nspawn needs root"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (apt-get install systemd-container debootstrap; .ci/run does)"
    return None


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale(prefix: str, keep: Path) -> None:
    for p in CACHE.glob(prefix + "*"):
        if p != keep and p.name != keep.name + ".json":
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def rootfs_key() -> str:
    return _hash(ROOTFS_FORMAT, SUITE, MIRROR, VARIANT, sorted(PACKAGES), MASKED_UNITS, platform.machine())


def ensure_rootfs(log: Path | None = None) -> tuple[Path, dict[str, object]]:
    """The cached root file system (built if missing) and its manifest (with ``build_seconds``)."""
    key = rootfs_key()
    path = CACHE / f"rootfs-{SUITE}-{key}"
    manifest = CACHE / f"rootfs-{SUITE}-{key}.json"
    if manifest.exists() and path.is_dir():
        return path, json.loads(manifest.read_text())
    with _locked("rootfs"):
        if manifest.exists() and path.is_dir():
            return path, json.loads(manifest.read_text())
        build = CACHE / f".build-rootfs-{key}-{os.getpid()}"
        shutil.rmtree(build, ignore_errors=True)
        started = time.monotonic()
        cmd = [
            "debootstrap",
            f"--variant={VARIANT}",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(build),
            MIRROR,
        ]
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            res = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False)
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        if res.returncode != 0:
            tail = log.read_text()[-3000:] if log else ""
            shutil.rmtree(build, ignore_errors=True)
            raise MachineError(f"debootstrap failed ({res.returncode}): {' '.join(cmd)}\n{tail}")
        _post_process(build)
        seconds = round(time.monotonic() - started, 1)
        _remove_stale(f"rootfs-{SUITE}-", path)
        shutil.rmtree(path, ignore_errors=True)
        os.rename(build, path)
        meta: dict[str, object] = {
            "suite": SUITE,
            "mirror": MIRROR,
            "packages": list(PACKAGES),
            "build_seconds": seconds,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        manifest.write_text(json.dumps(meta, indent=1))
        return path, meta


def _post_process(root: Path) -> None:
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    for p in (root / "var/lib/apt/lists").glob("*_*"):
        p.unlink()
    # an empty machine-id: systemd makes a transient one at every boot
    (root / "etc/machine-id").write_text("")


def _source_tree(dest: Path) -> Path:
    """A copy of the working tree (tracked and new files, not ignored ones): pip builds in its source dir."""
    try:
        names = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.split(b"\0")
    except (OSError, subprocess.SubprocessError):
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "build"))
        return dest
    for raw in names:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if not src.is_file():
            continue  # deleted in the working tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


def _pip_wheel(args: Sequence[str], log: Path | None) -> None:
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if log:
        with open(log, "a") as fh:
            fh.write(" ".join(cmd) + "\n" + res.stdout + res.stderr)
    if res.returncode != 0:
        raise MachineError(f"pip wheel failed: {' '.join(cmd)}\n{res.stdout[-2000:]}{res.stderr[-2000:]}")


def ensure_wheels(work: Path, log: Path | None = None) -> tuple[Path, Path]:
    """(dependency wheelhouse, cached by pyproject.toml; this working tree's own wheel, built now)."""
    src = _source_tree(work / "src")
    key = _hash((REPO / "pyproject.toml").read_text(), sys.version_info[:2], platform.machine())
    deps = CACHE / f"wheels-{key}"
    if not (deps / ".complete").exists():
        with _locked("wheels"):
            if not (deps / ".complete").exists():
                build = CACHE / f".build-wheels-{key}-{os.getpid()}"
                shutil.rmtree(build, ignore_errors=True)
                build.mkdir(parents=True)
                # with the simulator extra: the tests run the platform simulator inside the container
                _pip_wheel(["--wheel-dir", str(build), f"{src}[simulator]"], log)
                for w in build.glob("scale_bridge-*.whl"):
                    w.unlink()
                (build / ".complete").write_text(str(time.time()))
                _remove_stale("wheels-", deps)
                shutil.rmtree(deps, ignore_errors=True)
                os.rename(build, deps)
    own = work / "wheel"
    own.mkdir()
    _pip_wheel(["--no-deps", "--wheel-dir", str(own), str(src)], log)
    return deps, own


SIM_VENV = "/opt/platform-sim"


def install_simulator(m: Machine, port: int) -> None:
    """The platform simulator in a venv of its own (a box's venv has no aiohttp: the ``simulator`` extra),
    from the wheels bound at /wheels/deps and /wheels/own, started as the transient unit platform-sim."""
    m.run(["python3", "-m", "venv", SIM_VENV], timeout=300)
    m.run(
        [f"{SIM_VENV}/bin/pip", "install", "--quiet", "--no-index", "--find-links", "/wheels/deps",
         "--find-links", "/wheels/own", "scale-bridge[simulator]"],
        timeout=600,
    )  # fmt: skip
    m.run(["systemd-run", "--unit=platform-sim", "--property=Type=exec",
           f"{SIM_VENV}/bin/scale-bridge", "simulator", "--port", str(port)])  # fmt: skip
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
    m.wait_for(
        "the simulator to listen",
        lambda: m.run([f"{SIM_VENV}/bin/python", "-c", probe], check=False).returncode == 0,
        60,
        0.5,
    )


class Machine:
    """One booted container. ``run`` executes a command inside it (all namespaces of its PID 1)."""

    def __init__(self, rootfs: Path, workdir: Path, binds_ro: Mapping[Path, str] | None = None) -> None:
        self.rootfs = rootfs
        self.workdir = workdir
        self.binds_ro = dict(binds_ro or {})
        self.console_log = workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------

    def boot(self, timeout_s: float = 90.0) -> None:
        cmd = [
            "systemd-nspawn",
            "--keep-unit",
            "--register=no",
            "--volatile=overlay",
            "--private-network",
            "--system-call-filter=bpf",
            f"--directory={self.rootfs}",
        ]
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro.items()]
        cmd += ["--boot"]
        env = {
            "PATH": os.environ.get("PATH", CONTAINER_PATH),
            "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1",
            "SYSTEMD_LOG_COLOR": "0",
            "LANG": "C.UTF-8",
        }
        with open(self.console_log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        try:
            self.init_pid = self.wait_for("the container's init process", self._find_init, timeout_s, 0.1)
            # Two "not yet" answers come before --wait can wait: until PID 1 listens on its private bus,
            # systemctl fails at once ("Failed to connect to bus", empty stdout); and until PID 1 has
            # created /run/systemd/system, sd_booted() is false and systemctl prints "offline" (seen on a
            # fast CI machine that entered the container a few milliseconds after exec).
            state = self.wait_for("systemd to finish booting", lambda: self._system_state(deadline),
                                  max(1.0, deadline - time.monotonic()), 0.2)
        except MachineError as exc:
            raise MachineError(f"{exc}:\n{self.console()}") from None
        if state not in ("running", "degraded"):
            raise MachineError(f"container did not boot: is-system-running={state!r}\n{self.console()}")
        if state == "degraded":
            failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
            raise MachineError(f"container booted degraded; failed units:\n{failed}")

    def _find_init(self) -> int | None:
        assert self.proc is not None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        for c in children:
            try:
                if Path(f"/proc/{c}/comm").read_text().strip() == "systemd":
                    return int(c)
            except OSError:
                continue
        return None

    def shutdown(self, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def console(self, tail: int = 4000) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    # ---- inside --------------------------------------------------------------------------------------

    def run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        assert self.init_pid is not None, "not booted"
        full = ["nsenter", "-t", str(self.init_pid), "-a", *cmd]
        res = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
            env={"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""},
        )
        if check and res.returncode != 0:
            raise MachineError(f"{' '.join(cmd)} -> {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        return res

    def path(self, inside: str) -> Path:
        """A path inside the container, seen from the host (its root mount namespace)."""
        assert self.init_pid is not None
        return Path(f"/proc/{self.init_pid}/root") / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        p = self.path(inside)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        args = ["systemctl", "show", unit] + [f"--property={p}" for p in props]
        out = self.run(args).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str | None = None, lines: int = 200) -> str:
        args = ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines)]
        if unit:
            args += ["-u", unit]
        return self.run(args, check=False).stdout

    def wait_for(self, what: str, predicate, timeout_s: float, every_s: float = 0.2):  # type: ignore[no-untyped-def]
        """``tests.helpers.wait_for`` in this machine: fails at once if the container is gone, and as a
        ``MachineError`` (the tests catch it to add the journal)."""
        from tests.helpers import wait_for  # here, not at the top: ``python machine.py build`` runs alone

        try:
            return wait_for(predicate, what, timeout_s=timeout_s, interval_s=every_s, alive=self._gone)
        except AssertionError as exc:
            raise MachineError(str(exc)) from None

    def _system_state(self, deadline: float) -> str | None:
        """``systemctl is-system-running --wait``'s answer, or None while it is one of the "not yet"s."""
        remaining_s = max(5.0, deadline - time.monotonic())
        res = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=remaining_s)
        state = res.stdout.strip()
        return state if state and state != "offline" else None

    def _gone(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"systemd-nspawn exited with {self.proc.returncode}"


def _main(argv: Sequence[str]) -> int:
    if argv[1:] != ["build"]:
        print(f"usage: {argv[0]} build", file=sys.stderr)
        return 2
    why = missing_requirements()
    if why:
        print(why, file=sys.stderr)
        return 1
    t0 = time.monotonic()
    rootfs, meta = ensure_rootfs(CACHE / "debootstrap.log")
    print(
        f"rootfs {rootfs} (built in {meta['build_seconds']} s at {meta['built_at']}); {time.monotonic() - t0:.1f} s now"
    )
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        deps, _ = ensure_wheels(Path(tmp), CACHE / "pip-wheel.log")
    print(f"wheels {deps}: {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
