"""3. Latency and 5. footprint, on the real daemon: ``python -m bridge run`` as a subprocess, its
scale on a pty (``os.openpty()`` + ``tty.setraw``), the simulator in this process (``SimulatorThread``,
so its request log can be read), ``$NOTIFY_SOCKET`` bound here.

- start -> READY: from ``Popen`` to the ``READY=1`` datagram (a thread reads the socket throughout,
  as systemd does: an unread queue fills up and then every notification blocks the daemon).
- latency: the last byte of a Tanita frame written to the pty master -> the weighing POST seen by the
  simulator (``requests`` entry, stamped when the route starts, before request validation); the
  simulator's own ``receivedAt`` (after validating the body against the OpenAPI) is reported beside it.
- baseline for the latency: ``bench.bare_client`` (its own process) making the same three calls in
  sequence with bare httpx, timed the same way (start -> POST seen by the simulator).
- RSS after the latency phase and through the idle phase; CPU over an idle period (utime + stime from
  /proc/<pid>/stat).
- ``loop_lag``: the daemon runs through ``bench.probed_daemon`` (the loop-lag probe on its event loop;
  its samples are read after it exits), reported over the latency phase. The probe wakes 100 times a
  second, so the idle-CPU figure of such a run includes it. ``store``: ``SCALE_BRIDGE_UPLOAD_STORE``
  for the daemon (``run_ab``: the stores alternately, ``repeats`` runs each).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tty
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.simulator import SimulatorThread
from tests.fakes.proxy import TcpProxy

from .common import PY, REPO, cpu_seconds, log, median, percentile, rss_bytes, tanita_frame
from .looplag import summarise
from .probed_daemon import ENV as LOOP_LAG_ENV

CONFIG = """\
[platform]
base_url = "{url}"
api_key = "sim-key-studio-a"
benefit_key = "BODY_SCAN"
timeout_s = 10

[scale]
name = "bench"
driver = "tanita"
port = "{port}"

[cards]
source = "scale_id"

[state]
dir = "{state}"

[log]
level = "info"
format = "json"
"""


class DaemonProc:
    def __init__(
        self,
        url: str,
        port: str,
        workdir: Path,
        *,
        stalled_notify: bool = False,
        loop_lag: bool = False,
        store: str | None = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(dir=workdir))
        self.cfg = self.dir / "config.toml"
        self.cfg.write_text(CONFIG.format(url=url, port=port, state=self.dir / "state"), encoding="utf-8")
        self.sock_path = str(self.dir / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None
        self.ready_at: float | None = None
        self.notifications = 0
        self.stalled_notify = stalled_notify  # stop reading after READY=1: a manager that does not keep up
        self._ready = threading.Event()
        self.lag_file: Path | None = self.dir / "loop-lag.jsonl" if loop_lag else None
        self.store = store

    def _listen(self) -> None:
        """Like systemd: read every notification as it comes (an unread queue fills up and makes the
        daemon's sends wait), note when READY=1 arrived."""
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.notifications += 1
            if b"READY=1" in data.split(b"\n") and self.ready_at is None:
                self.ready_at = time.perf_counter()
                self._ready.set()
                if self.stalled_notify:
                    return

    def start(self, timeout_s: float = 30.0) -> float:
        env = {**os.environ, "NOTIFY_SOCKET": self.sock_path}
        env.pop("WATCHDOG_USEC", None)
        if self.store:
            env["SCALE_BRIDGE_UPLOAD_STORE"] = self.store
        module = "bridge"
        if self.lag_file is not None:
            env[LOOP_LAG_ENV] = str(self.lag_file)
            module = "bench.probed_daemon"
        self.log_fh = open(self.dir / "daemon.log", "wb")  # noqa: SIM115
        self.sock.settimeout(0.5)
        threading.Thread(target=self._listen, name="notify-listener", daemon=True).start()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [PY, "-m", module, "run", "--config", str(self.cfg)],
            cwd=REPO,
            env=env,
            stdout=self.log_fh,
            stderr=subprocess.STDOUT,
        )
        deadline = t0 + timeout_s
        while time.perf_counter() < deadline:
            if self._ready.wait(0.2):
                assert self.ready_at is not None
                self.ready_s = self.ready_at - t0
                return self.ready_s
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.tail()}")
        raise RuntimeError("no READY=1 from the daemon")

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "daemon.log").read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_fh.close()
        self.sock.close()
        return self.proc.returncode

    def loop_lag(self) -> list[tuple[float, float]]:
        """The probe's samples (written when the daemon exits): (wall s, lag ms)."""
        if self.lag_file is None or not self.lag_file.exists():
            return []
        rows = [json.loads(line) for line in self.lag_file.read_text(encoding="utf-8").splitlines() if line]
        return [(float(a), float(b)) for a, b in rows]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


def _arrivals(sim: SimulatorThread, operation: str) -> list[str]:
    def fn() -> list[str]:
        return [r["at"] for r in sim.state.requests if r["operation"] == operation]

    return sim.call(fn)  # type: ignore[no-any-return]


def _posts(sim: SimulatorThread) -> list[str]:
    return _arrivals(sim, "createCustomerWeighing")


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _start_phase(
    starts: int, url: str, work: Path, *, stalled_notify: bool, loop_lag: bool, store: str | None
) -> tuple[DaemonProc, int, int, list[float]]:
    """start -> READY ``starts`` times (fresh state dir each time); the last daemon is kept running, with
    its pty's two ends."""
    ready: list[float] = []
    daemon: DaemonProc | None = None
    master = slave = -1
    for k in range(starts):
        master, slave, path = _pty()
        daemon = DaemonProc(url, path, work, stalled_notify=stalled_notify, loop_lag=loop_lag, store=store)
        ready.append(daemon.start())
        log(f"live: start -> READY {ready[-1] * 1000:.0f} ms")
        if k < starts - 1:
            daemon.stop()
            os.close(master)
            os.close(slave)
    assert daemon is not None
    return daemon, master, slave, ready


def _latency_phase(
    sim: SimulatorThread, master: int, frames: int, gap_s: float
) -> tuple[dict[str, Any], int, tuple[float, float] | None]:
    """Frames written to the pty, each timed to its POST at the simulator. One warm-up weighing first
    (the first after start opens the connection and runs every code path once); its latency is reported
    on its own as "cold". Returns the figures, how many POSTs arrived, and the phase's time window."""
    warm = tanita_frame(9_999_999)
    os.write(master, warm)
    warm_sent = time.time()
    deadline = time.monotonic() + 30
    while not _posts(sim) and time.monotonic() < deadline:
        time.sleep(0.01)
    cold = [(_ts(p) - warm_sent) * 1000 for p in _posts(sim)[:1]]
    time.sleep(gap_s)
    sent: list[float] = []
    for i in range(frames):
        frame = tanita_frame(10_000_000 + i)
        os.write(master, frame)
        sent.append(time.time())
        time.sleep(gap_s + (i % 7) * 0.01)
    deadline = time.monotonic() + 30
    posts = _posts(sim)[1:]
    while len(posts) < frames and time.monotonic() < deadline:
        time.sleep(0.2)
        posts = _posts(sim)[1:]
    weighings = sim.call(lambda: [w["receivedAt"] for w in sim.state.weighings])[1:]
    lat = [(_ts(p) - s) * 1000 for p, s in zip(posts, sent, strict=False)]
    window = (sent[0], max(_ts(p) for p in posts)) if posts else None
    # where the time goes: frame -> 1st GET (intake + capture commit + wake-up), 1st GET -> POST
    # (the member lookup and the benefit check, sent together, answered; the resolved+begin
    # commit; the client). The benefit check's lag behind the member lookup shows they overlap.
    g1 = [_ts(x) for x in _arrivals(sim, "getCustomerMeasurement")[1:]]
    g2 = [_ts(x) for x in _arrivals(sim, "getBenefitsByCardNumber")[1:]]
    pp = [_ts(x) for x in posts]
    legs = {
        "frame_to_get_member": [(a - s) * 1000 for a, s in zip(g1, sent, strict=False)],
        "get_member_to_post": [(c - a) * 1000 for a, c in zip(g1, pp, strict=False)],
        "get_benefits_lag_behind_get_member": [(b - a) * 1000 for a, b in zip(g1, g2, strict=False)],
    }
    lat_rec = [(_ts(w) - s) * 1000 for w, s in zip(weighings, sent, strict=False)]
    figures = {
        "frames": frames,
        "warm_up_frames": 1,
        "cold_first_weighing": cold[0] if cold else None,
        "received": len(posts),
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else None,
        "recorded_p50": percentile(lat_rec, 50),
        "recorded_p99": percentile(lat_rec, 99),
        "legs_p50": {k: percentile(v, 50) for k, v in legs.items()},
        "legs_p99": {k: percentile(v, 99) for k, v in legs.items()},
        "runs": lat,
    }
    log(f"live: latency p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms ({len(posts)}/{frames} received)")
    return figures, len(posts), window


def _bare_phase(sim: SimulatorThread, url: str, frames: int, gap_s: float, posts_before: int) -> dict[str, Any]:
    """The baseline: a bare httpx client process making the same three calls the same way."""
    proc = subprocess.run(
        [PY, "-m", "bench.bare_client", url, str(frames), str(gap_s)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    starts_bare = json.loads(proc.stdout)  # its first sequence is its warm-up, like ours
    posts_bare = [_ts(x) for x in _posts(sim)[posts_before + 1 :]]
    bare_all = [(p - s) * 1000 for p, s in zip(posts_bare, starts_bare, strict=False)]
    bare = bare_all[1:]
    log(f"live: bare httpx 3 calls p50 {percentile(bare, 50):.1f} ms, p99 {percentile(bare, 99):.1f} ms")
    return {
        "bare_cold_first": bare_all[0] if bare_all else None,
        "bare_p50": percentile(bare, 50),
        "bare_p99": percentile(bare, 99),
        "bare_runs": bare,
    }


def _footprint_phase(daemon: DaemonProc, rss_at_ready: int, idle_s: float) -> dict[str, Any]:
    """RSS after traffic, CPU over an idle period."""
    time.sleep(2.0)
    rss_steady = rss_bytes(daemon.pid)
    samples = []
    c0, t0 = cpu_seconds(daemon.pid), time.monotonic()
    while time.monotonic() - t0 < idle_s:
        time.sleep(min(1.0, idle_s / 5))
        samples.append(rss_bytes(daemon.pid))
    cpu = cpu_seconds(daemon.pid) - c0
    wall = time.monotonic() - t0
    log(f"live: RSS {rss_steady / 2**20:.1f} MB, idle CPU {100 * cpu / wall:.3f} % over {wall:.0f} s")
    return {
        "rss_at_ready_mb": rss_at_ready / 2**20,
        "rss_after_traffic_mb": rss_steady / 2**20,
        "rss_idle_max_mb": max(samples) / 2**20,
        "idle_s": wall,
        "idle_cpu_s": cpu,
        "idle_cpu_percent": 100.0 * cpu / wall,
    }


def _loop_lag_phase(daemon: DaemonProc, window: tuple[float, float] | None) -> dict[str, Any]:
    samples = daemon.loop_lag()
    lo, hi = window or (float("-inf"), float("inf"))
    figures = {
        "latency_phase": summarise([lag for at, lag in samples if lo <= at <= hi]),
        "whole_run": summarise([lag for _, lag in samples]),
    }
    ll = figures["latency_phase"]
    log(
        f"live: daemon loop lag in the latency phase p50/p99/max {ll['p50_ms']:.2f}/{ll['p99_ms']:.2f}/"
        f"{ll['max_ms']:.1f} ms ({ll['samples']} samples)"
    )
    return figures


def run(
    quick: bool,
    idle_s: float | None = None,
    *,
    stalled_notify: bool = False,
    rtt_ms: float = 0.0,
    loop_lag: bool = False,
    store: str | None = None,
    starts: int | None = None,
) -> dict[str, Any]:
    starts = starts or (2 if quick else 5)
    frames = 10 if quick else 100
    idle = idle_s if idle_s is not None else (3.0 if quick else 60.0)
    gap_s = 0.2
    out: dict[str, Any] = {"stalled_notify": stalled_notify, "rtt_ms": rtt_ms, "store": store or "default"}
    window: tuple[float, float] | None = None
    with contextlib.ExitStack() as stack:
        d = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-live-"))
        sim = stack.enter_context(SimulatorThread())
        url = sim.url
        if rtt_ms > 0:  # the platform a network away: every answer reaches the client rtt_ms late
            proxy = stack.enter_context(TcpProxy(int(sim.url.rsplit(":", 1)[1])))
            proxy.rtt_s = rtt_ms / 1000
            url = proxy.url
        daemon, master, slave, ready = _start_phase(
            starts, url, Path(d), stalled_notify=stalled_notify, loop_lag=loop_lag, store=store
        )
        out["ready_s"] = {"median": median(ready), "runs": ready}
        try:
            time.sleep(1.0)
            rss_at_ready = rss_bytes(daemon.pid)
            out["latency_ms"], received, window = _latency_phase(sim, master, frames, gap_s)
            out["latency_ms"].update(_bare_phase(sim, url, frames, gap_s, received))
            out["footprint"] = _footprint_phase(daemon, rss_at_ready, idle)
        finally:
            code = daemon.stop()
            os.close(master)
            os.close(slave)
        out["exit_code"] = code
        if loop_lag:
            out["loop_lag"] = _loop_lag_phase(daemon, window)
    return out


def run_ab(
    quick: bool, stores: Sequence[str], repeats: int, *, idle_s: float | None = None, rtt_ms: float = 0.0
) -> dict[str, Any]:
    """``run`` with the loop-lag probe for each store in turn (alternating order each round), ``repeats``
    rounds; one start per run (start -> READY is not what is compared here)."""
    by_store: dict[str, list[dict[str, Any]]] = {s: [] for s in stores}
    for r in range(repeats):
        for store in stores if r % 2 == 0 else list(reversed(stores)):
            log(f"live A/B round {r + 1}/{repeats}: store {store}")
            res = run(quick, idle_s if idle_s is not None else 3.0, rtt_ms=rtt_ms, loop_lag=True, store=store, starts=1)
            res["round"] = r
            by_store[store].append(res)
    base = stores[0]
    summary: dict[str, Any] = {"baseline": base, "rtt_ms": rtt_ms, "stores": {}}

    def pick(res: dict[str, Any]) -> dict[str, float]:
        lat, lag = res["latency_ms"], res["loop_lag"]["latency_phase"]
        return {
            "p50": lat["p50"],
            "p99": lat["p99"],
            "bare_p50": lat["bare_p50"],
            "bare_p99": lat["bare_p99"],
            "loop_lag_p99": lag["p99_ms"],
            "loop_lag_p50": lag["p50_ms"],
            "loop_lag_max": lag["max_ms"],
        }

    for store, runs in by_store.items():
        vals = [pick(x) for x in runs]
        st: dict[str, Any] = {
            "runs": len(runs),
            "p50_ms": median([v["p50"] for v in vals]),
            "p99_ms": median([v["p99"] for v in vals]),
            "bare_p50_ms": median([v["bare_p50"] for v in vals]),
            "bare_p99_ms": median([v["bare_p99"] for v in vals]),
            "p50_to_bare": median([v["p50"] / v["bare_p50"] for v in vals]),
            "p99_to_bare": median([v["p99"] / v["bare_p99"] for v in vals]),
            "loop_lag_p50_ms": median([v["loop_lag_p50"] for v in vals]),
            "loop_lag_p99_ms": median([v["loop_lag_p99"] for v in vals]),
            "loop_lag_max_ms": median([v["loop_lag_max"] for v in vals]),
            "received_all": all(x["latency_ms"]["received"] == x["latency_ms"]["frames"] for x in runs),
            "each": vals,
        }
        if store != base:
            pairs = list(zip([pick(x) for x in by_store[base]], vals, strict=False))
            st["ratio_vs_" + base] = {
                k: median([v[k] / b[k] for b, v in pairs]) for k in ("p50", "p99", "loop_lag_p99")
            }
        summary["stores"][store] = st
    return {"ab": summary, "runs": by_store}
