"""Shared helpers: machine facts, /proc sampling, the simulator as a subprocess, Tanita frames."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.tanita import checksum

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")

#: the MC-780 line of the shipped demo capture (member ID field = card 3220338716, customer 1001)
MC780 = (
    '{0,16,~0,1,~1,1,~2,1,MO,"MC-780",ID,"0000003220338716",St,0,Da,"22/11/2026",TI,"09:15",Bt,0,GE,1,AG,36,'
    "Hm,181.0,Pt,1.0,Wk,84.3,FW,21.4,fW,18.0,MW,66.3,mW,63.0,sW,1,bW,3.2,wW,48.5,ww,57.5,MI,25.7,IF,9,rB,1870,"
    "rA,35,FR,19.1,fR,2.4,MR,10.2,mR,9.6,FL,19.4,fL,2.5,ML,10.1,mL,9.5,Fr,14.8,fr,0.6,Mr,3.5,mr,3.3,Fl,15.6,"
    "fl,0.7,Ml,3.4,ml,3.2,FT,23.9,fT,11.8,MT,39.1,mT,37.4,ZF,512.3,"
)
CARD = "3220338716"  # customer 1001, studio 1, benefit BODY_SCAN in the simulator seed
SIM_KEY = "sim-key-studio-a"


def tanita_frame(i: int) -> bytes:
    """A valid, plausible MC-780 line, unique for any 2,800,000 consecutive ``i`` (the ZF impedance
    carries ``i`` modulo that and stays below 3000 ohm; the weight stays above the line's 66.3 kg
    fat-free mass)."""
    body = MC780.replace("ZF,512.3", f"ZF,{100 + (i % 2_800_000) / 1000:.3f}")
    weight = 70.0 + (i % 600) / 10.0
    body = body.replace("Wk,84.3", f"Wk,{weight:.1f}")
    raw = body.encode("ascii")
    return raw + b"CS," + checksum(raw).encode("ascii") + b"\r\n"


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(p / 100.0 * len(s) + 0.5) - 1))
    return float(s[k])


# ---- /proc ---------------------------------------------------------------------------------------


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of the process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        text = fh.read()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "kernel": platform.release(), "cores": os.cpu_count()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        info["cpu"] = m.group(1).strip() if m else platform.processor()
        m = re.search(r"^Hypervisor vendor:\s*(.+)$", out, re.M)
        if m:
            info["hypervisor"] = m.group(1).strip()
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text()
        m = re.search(r"MemTotal:\s+(\d+) kB", mem)
        if m:
            info["ram_gib"] = round(int(m.group(1)) / 1024 / 1024, 1)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["df", "-hT", str(REPO)], capture_output=True, text=True, timeout=10, check=False).stdout
        line = out.strip().splitlines()[-1].split()
        info["disk"] = f"{line[0]} ({line[1]}, {line[2]})"
        dev = Path(line[0]).name
        rot = Path(f"/sys/block/{dev}/queue/rotational")
        if rot.exists():
            info["disk"] += ", rotational" if rot.read_text().strip() == "1" else ", non-rotational"
    with contextlib.suppress(Exception):
        import sqlite3

        info["sqlite"] = sqlite3.sqlite_version
    return info


# ---- the simulator as a subprocess (its own interpreter, so its own core) -------------------------


@dataclass
class Simulator:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, doc: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(doc).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def state(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.get("/_sim/state")
        doc.pop("benefitUses", None)
        doc.pop("contingents", None)
        return doc


@contextlib.contextmanager
def simulator(rate_limit_per_min: int = 1000) -> Iterator[Simulator]:
    proc = subprocess.Popen(
        [PY, "-m", "bridge", "simulator", "--port", "0", "--rate-limit", str(rate_limit_per_min)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        port = 0
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode("utf-8", "replace")
            if not line:
                raise RuntimeError(f"simulator exited with {proc.wait(5)}")
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if not port:
            raise RuntimeError("simulator did not start")
        proc.stderr.close()
        yield Simulator(proc, port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def config_doc(sim_url: str, state_dir: str, **scale: Any) -> dict[str, Any]:
    return {
        "platform": {"base_url": sim_url, "api_key": SIM_KEY, "benefit_key": "BODY_SCAN", "timeout_s": 10},
        "scale": {"name": "bench", "driver": "tanita", **scale},
        "cards": {"source": "scale_id"},
        "state": {"dir": state_dir},
        "log": {"level": "info", "format": "json"},
    }


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
