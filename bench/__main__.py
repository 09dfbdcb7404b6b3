"""``python -m bench`` (= ``make bench``): every benchmark, a JSON report and a Markdown table.

python -m bench                      # everything, a few minutes on 2 cores
python -m bench --quick              # smoke run (seconds), same report shape
python -m bench --only capture,parsers
python -m bench soak --n 1000000     # the long soak, on its own
python -m bench simvalidate          # the simulator's request validation, compiled vs openapi-core
python -m bench drain --n 10000 --rate-limit 1000   # full backlog at the real platform limit
python -m bench drain --n 3000 --rate-limit 3000 --pacer-ratio 0.96 --stores inline,thread --repeats 3
python -m bench live --rtt-ms 20 --idle-s 3 --stores inline,thread --repeats 3   # the upload store A/B
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .common import REPO, log, machine

ALL = ("capture", "drain", "live", "parsers", "soak", "simvalidate")


def _fmt(x: Any, unit: str = "", digits: int = 0) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and math.isnan(x):
        return "—"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}{unit}"
    return str(x)


class _Row(Protocol):
    def __call__(  # noqa: PLR0917 - one table row, in column order
        self, metric: str, result: str, baseline: str, ratio: str, target: str, met: bool | None
    ) -> None: ...


def _capture_rows(row: _Row, c: Any) -> None:
    if not c:
        return
    row(
        "1. durable capture, weighings committed/s (`Outbox.capture`)",
        _fmt(c["outbox_per_s"], "/s"),
        f"bare sqlite3 INSERT+COMMIT {_fmt(c['bare_per_s'], '/s')}",
        _fmt(c["ratio"], "", 2),
        "≥ 0.8",
        c["ratio"] >= 0.8,
    )


def _drain_rows(row: _Row, d: Any) -> None:
    if not d:
        return
    lim = d.get("limited") or {}
    for rr in lim.values():
        if not isinstance(rr, dict):
            continue
        row(
            f"2. catch-up drain of {lim['n']:,} at L = {lim['rate_limit_per_min']:,}/min/endpoint "
            f"(pacer {rr['pacer_per_min']:,}/min)",
            _fmt(rr["seconds"], " s", 1),
            f"T_min = 60·N/L = {_fmt(lim['t_min_s'], ' s', 1)}",
            _fmt(rr["ratio_to_t_min"], "x", 3),
            "≤ 1.05x",
            rr["ratio_to_t_min"] <= 1.05 and rr["drained"],
        )
        row("2. HTTP 429 seen during that drain", _fmt(rr["http_429"]), "—", "—", "0", rr["http_429"] == 0)
    u = d.get("unlimited")
    if u:
        row(
            f"2. drain with no limit, weighings/s (N = {u['n']:,}, concurrency 4)",
            _fmt(u["uploader_per_s"], "/s", 1),
            f"bare httpx, same 3 calls {_fmt(u['bare_per_s'], '/s', 1)}",
            _fmt(u["ratio"], "", 2),
            "≥ 0.7",
            u["ratio"] >= 0.7,
        )
        row(
            "2. client CPU per weighing (no limit)",
            _fmt(u["uploader_client_cpu_ms_per_weighing"], " ms", 2),
            f"bare httpx {_fmt(u['bare_client_cpu_ms_per_weighing'], ' ms', 2)}",
            _fmt(u["uploader_client_cpu_ms_per_weighing"] / u["bare_client_cpu_ms_per_weighing"], "x", 2),
            "—",
            None,
        )


def _drain_ab_rows(row: _Row, ab: Any) -> None:
    if not ab:
        return
    base = ab["baseline"]
    for store, st in ab["stores"].items():
        vs = st.get("ratio_vs_" + base) or {}
        row(
            f"2. drain, store {store} (median of {st['runs']}): time / loop lag p50 · p99 · max",
            f"{_fmt(st['seconds'], ' s', 1)} / {st['loop_lag_p50_ms']:.2f} · {st['loop_lag_p99_ms']:.2f} · "
            f"{st['loop_lag_max_ms']:.1f} ms",
            f"T_min {_fmt(ab['t_min_s'], ' s', 1)}" + ("" if store == base else f"; vs {base}"),
            _fmt(st["ratio_to_t_min"], "x", 3)
            + ("" if not vs else f"; time {vs['seconds']:.3f}x, lag p99 {vs['loop_lag_p99']:.2f}x"),
            "—",
            None,
        )


def _live_ab_rows(row: _Row, lab: Any) -> None:
    if not lab:
        return
    base = lab["baseline"]
    for store, st in lab["stores"].items():
        vs = st.get("ratio_vs_" + base) or {}
        row(
            f"3. frame → POST, store {store} (median of {st['runs']}): p50 / p99; daemon loop lag p99",
            f"{st['p50_ms']:.1f} / {st['p99_ms']:.1f} ms; {st['loop_lag_p99_ms']:.2f} ms",
            f"bare httpx {st['bare_p50_ms']:.1f} / {st['bare_p99_ms']:.1f} ms"
            + ("" if store == base else f"; vs {base}"),
            "" if not vs else f"p50 {vs['p50']:.2f}x, p99 {vs['p99']:.2f}x, lag p99 {vs['loop_lag_p99']:.2f}x",
            "—",
            None,
        )


def _live_rows(row: _Row, lv: Any) -> None:
    if not (lv and "latency_ms" in lv):
        return
    lat = lv["latency_ms"]
    bare50, bare99 = lat.get("bare_p50"), lat.get("bare_p99")
    row(
        f"3. pty frame → POST at the simulator, p50 ({lat['received']}/{lat['frames']} frames)",
        _fmt(lat["p50"], " ms", 1),
        f"bare httpx, same calls {_fmt(bare50, ' ms', 1)}",
        _fmt(lat["p50"] / bare50 if bare50 else None, "x", 2),
        "—",
        None,
    )
    row(
        "3. pty frame → POST at the simulator, p99",
        _fmt(lat["p99"], " ms", 1),
        f"bare httpx, same calls {_fmt(bare99, ' ms', 1)}",
        _fmt(lat["p99"] / bare99 if bare99 else None, "x", 2),
        "≤ 25 ms",
        lat["p99"] <= 25 and lat["received"] == lat["frames"],
    )
    if lat.get("cold_first_weighing") is not None:
        bare_cold = lat.get("bare_cold_first")
        row(
            "3. the first weighing after start (the warm-up frame, not in p50/p99)",
            _fmt(lat["cold_first_weighing"], " ms", 1),
            f"bare httpx, its first sequence {_fmt(bare_cold, ' ms', 1)}",
            "—",
            "—",
            None,
        )
    fp = lv["footprint"]
    row(
        "5. daemon RSS, steady (serial + uploader, after traffic)",
        _fmt(fp["rss_after_traffic_mb"], " MB", 1),
        f"at READY {_fmt(fp['rss_at_ready_mb'], ' MB', 1)}",
        "—",
        "≤ 45 MB",
        fp["rss_after_traffic_mb"] <= 45,
    )
    row(
        f"5. daemon CPU while idle ({fp['idle_s']:.0f} s)",
        _fmt(fp["idle_cpu_percent"], " %", 3),
        "—",
        "—",
        "≤ 0.2 %",
        fp["idle_cpu_percent"] <= 0.2,
    )
    row(
        f"5. start → READY=1 (median of {len(lv['ready_s']['runs'])})",
        _fmt(lv["ready_s"]["median"], " s", 2),
        "—",
        "—",
        "≤ 1.5 s",
        lv["ready_s"]["median"] <= 1.5,
    )


def _parser_rows(row: _Row, p: Any) -> None:
    if not p:
        return
    for name, r in p.items():
        if not isinstance(r, dict):
            continue
        row(
            f"4. {name}",
            _fmt(r["frames_per_s"], " frames/s"),
            f"wire max {_fmt(r['wire_max_frames_per_s'], '/s', 1)}",
            _fmt(r["ratio_to_wire"], "x"),
            "—",
            None,
        )


def _soak_rows(row: _Row, s: Any) -> None:
    if not s:
        return
    row(
        f"6. soak {s['n']:,} weighings: RSS growth after 10 %",
        _fmt(s["rss_growth_mb"], " MB", 2),
        f"RSS at 10 % {_fmt(s['rss_warm_mb'], ' MB', 1)}",
        "—",
        "≤ 5 MB",
        s["rss_growth_mb"] <= 5,
    )
    b = s.get("db_bounded")
    row(
        f"6. soak: DB size (retention {s['retention_s']:.0f} s)",
        f"max {_fmt(s['db_bytes_max'] / 2**20, ' MB', 1)}, end {_fmt(s['db_bytes_end'] / 2**20, ' MB', 1)}",
        f"first half max {_fmt(s['db_max_first_half'] / 2**20, ' MB', 1)}"
        + (
            f" at {_fmt(s['weighings_per_s_first_half'], '/s', 0)} (2nd half"
            f" {_fmt(s['weighings_per_s_second_half'], '/s', 0)})"
            if "weighings_per_s_first_half" in s
            else ""
        ),
        "—",
        "bounded (pages per weighing held and wal: 2nd half ≤ 1.1 x 1st)",
        b,
    )
    row("6. soak throughput, decode → outbox → simulator", _fmt(s["weighings_per_s"], "/s", 1), "—", "—", "—", None)


def _simvalidate_rows(row: _Row, v: Any) -> None:
    if not v:
        return
    for rname in ("weighing_post", "benefits_get"):
        r = v[rname]
        row(
            f"7. simulator validation CPU per request, {rname} (compiled vs openapi-core)",
            _fmt(r["compiled"]["median_ms"], " ms", 3),
            f"openapi-core {_fmt(r['openapi_core']['median_ms'], ' ms', 3)}",
            _fmt(r["ratio"], "x", 1),
            "≤ 2 ms",
            r["compiled"]["median_ms"] <= 2.0,
        )


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows: metric, result, baseline, ratio, target, met."""
    rows: list[dict[str, Any]] = []

    def row(metric: str, result: str, baseline: str, ratio: str, target: str, met: bool | None) -> None:  # noqa: PLR0917
        rows.append(
            {
                "metric": metric,
                "result": result,
                "baseline": baseline,
                "ratio": ratio,
                "target": target,
                "met": None if met is None else bool(met),
            }
        )

    _capture_rows(row, results.get("capture"))
    _drain_rows(row, results.get("drain"))
    _drain_ab_rows(row, (results.get("drain") or {}).get("limited_ab"))
    _live_ab_rows(row, (results.get("live") or {}).get("ab"))
    _live_rows(row, results.get("live"))
    _parser_rows(row, results.get("parsers"))
    _soak_rows(row, results.get("soak"))
    _simvalidate_rows(row, results.get("simvalidate"))
    return rows



def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| metric | result | baseline (same run) | ratio | target | met? |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
        out.append(f"| {r['metric']} | {r['result']} | {r['baseline']} | {r['ratio']} | {r['target']} | {met} |")
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", nargs="?", default="all", choices=("all", *ALL))
    ap.add_argument("--quick", action="store_true", help="smoke run: small N, few repeats")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(ALL))
    ap.add_argument("--n", type=int, default=None, help="soak: weighings; drain: backlog size")
    ap.add_argument("--rate-limit", type=int, default=None, help="drain: the simulator's L (requests/min/endpoint)")
    ap.add_argument(
        "--pacer-ratio",
        type=float,
        default=None,
        help="drain: the uploader's pacer as a fraction of L (default: the shipped config, 960/1000 = 0.96)",
    )
    ap.add_argument(
        "--stalled-notify",
        action="store_true",
        help="live: stop reading $NOTIFY_SOCKET after READY=1 (a service manager that lags)",
    )
    ap.add_argument(
        "--rtt-ms", type=float, default=0.0, help="live: a network round trip added to every answer (TCP proxy)"
    )
    ap.add_argument("--idle-s", type=float, default=None, help="live: idle period for the CPU figure")
    ap.add_argument(
        "--stores",
        default=None,
        help="drain, live: the uploader's outbox store(s), comma-separated: inline (on the loop), thread "
        "(AsyncOutbox); several are run alternately (live: the daemon gets SCALE_BRIDGE_UPLOAD_STORE)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="drain, live: runs per store (alternating)")
    ap.add_argument(
        "--loop-lag", action="store_true", help="live: run the daemon with the loop-lag probe (always with --stores)"
    )
    ap.add_argument(
        "--json",
        default=None,
        help="report path (default: bench/results/<what>.json; --quick: $TMPDIR/scale-bridge-bench/)",
    )
    return ap


def _run_one(w: str, args: argparse.Namespace, stores: tuple[str, ...]) -> dict[str, Any]:
    """One benchmark's results (its module imported only when it runs)."""
    if w == "capture":
        from . import capture

        return capture.run(args.quick)
    if w == "drain":
        from . import drain

        return drain.run(
            args.quick,
            limited_n=args.n,
            rate_limit=args.rate_limit,
            skip_unlimited=args.what == "drain" and args.n is not None,
            pacer_ratio=args.pacer_ratio,
            stores=stores or ("inline",),
            repeats=args.repeats,
        )
    if w == "live":
        from . import live

        if stores:
            return live.run_ab(args.quick, stores, args.repeats, idle_s=args.idle_s, rtt_ms=args.rtt_ms)
        return live.run(
            args.quick,
            idle_s=args.idle_s,
            stalled_notify=args.stalled_notify,
            rtt_ms=args.rtt_ms,
            loop_lag=args.loop_lag,
        )
    if w == "parsers":
        from . import parsers

        return parsers.run(args.quick)
    if w == "simvalidate":
        from . import simvalidate

        return simvalidate.run(args.quick)
    if w == "soak":
        from . import soak

        return soak.run(args.n or (100 if args.quick else 2000))
    raise AssertionError(f"unknown benchmark {w!r}")  # main() checked the name


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)

    which = [args.what] if args.what != "all" else [w for w in (args.only.split(",") if args.only else ALL) if w]
    unknown = [w for w in which if w not in ALL]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    stores = tuple(x.strip() for x in args.stores.split(",") if x.strip()) if args.stores else ()
    if any(x not in ("inline", "thread") for x in stores):
        ap.error("--stores: inline and/or thread")
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "load_avg_before": os.getloadavg(),
        "quick": args.quick,
        "results": {},
    }
    t0 = time.perf_counter()
    res = report["results"]
    for w in which:
        t = time.perf_counter()
        log(f"== {w}")
        res[w] = _run_one(w, args, stores)
        res[w]["bench_seconds"] = time.perf_counter() - t
    report["seconds"] = time.perf_counter() - t0
    report["load_avg_after"] = os.getloadavg()
    rows = table(res)
    report["table"] = rows
    name = args.what + ("-quick" if args.quick else "")
    path = (
        Path(args.json)
        if args.json
        else (
            Path(tempfile.gettempdir()) / "scale-bridge-bench" / f"{name}.json"
            if args.quick
            else REPO / "bench" / "results" / f"{name}.json"
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    print(markdown(rows))
    print(
        f"\n{report['date']}, {report['seconds']:.0f} s, load average {report['load_avg_before'][0]:.1f} → "
        f"{report['load_avg_after'][0]:.1f}; report: {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
