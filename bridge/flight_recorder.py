"""The flight recorder (``[scale] record_dir``): the daemon keeps the last days of raw link traffic as
capture files, so that a past incident can be replayed (``scale-bridge replay FILE``) without asking
the site to reproduce it (installer-audit S2, issue 13 theme 7).

Bounded: at most ``max_files`` files of at most ``max_bytes // max_files`` bytes each, so the
directory never holds more than ``max_bytes`` of recordings (older files are deleted first, also
those a previous run left). Each file is a complete capture (header, then one event per line, each
line flushed), ``flight-<first event UTC>-<n>.capture.jsonl``, mode 0640 in a 0750 directory.

Redacted by default: member/card IDs become pseudonyms as with ``record --redact`` (a per-run random
key, so the same card has the same pseudonym within a run; not reversible by trying card numbers).
With ``redact = False`` the files carry real card numbers: only for a site that keeps them anyway.

The recorder never stops the pipeline: a write that fails (disk full, directory removed) disables
it and leaves the reason in ``failed`` for the caller to log once.

Wiring (the daemon, not done here): build it with ``flight_recorder_for(cfg, link=..)``; in the
pump, for every ``LinkEvent`` of every link, ``recorder.record(event)`` before the intake sees it;
``recorder.close()`` at shutdown; log ``recorder.failed`` once when it turns non-None.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from drivers.capture import CaptureHeader, event_to_json
from drivers.events import LinkEvent

FILE_MODE = 0o640
DIR_MODE = 0o750
_NAME = re.compile(r"^flight-(\d{8}T\d{6}Z)-(\d{6})\.capture\.jsonl$")


class FlightRecorder:
    def __init__(
        self,
        directory: str | Path,
        max_bytes: int,
        max_files: int,
        redact: bool = True,
        *,
        driver: str = "",
        link: str = "",
        note: str = "flight recorder",
    ) -> None:
        if max_files < 1:
            raise ValueError("max_files must be at least 1")
        if max_bytes < 1024 * max_files:
            raise ValueError("max_bytes must allow at least 1 KiB per file")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.file_max_bytes = max_bytes // max_files
        self.driver = driver
        self.link = link
        self.note = note
        self.failed: str | None = None
        #: events left out because one line alone is larger than a file may be
        self.skipped = 0
        self._redactor: Any = None
        if redact:
            from .commands.record import Redactor

            self._redactor = Redactor(os.urandom(32))
        self._fh: IO[str] | None = None
        self._path: Path | None = None
        self._size = 0
        self._started_at: datetime | None = None
        self._last_t = 0.0
        self._seq = 0

    @property
    def current(self) -> Path | None:
        return self._path

    def files(self) -> list[Path]:
        """The recordings in the directory, oldest first."""
        try:
            names = [p for p in self.directory.iterdir() if _NAME.match(p.name)]
        except OSError:
            return []
        return sorted(names, key=_seq_of)

    def record(self, event: LinkEvent) -> None:
        if self.failed is not None:
            return
        events = self._redactor.event(event) if self._redactor is not None else [event]
        try:
            for ev in events:
                self._write(ev)
        except OSError as exc:
            self._fail(f"{self._path or self.directory}: {exc.strerror or exc}")

    def close(self) -> None:
        if self._redactor is not None and self.failed is None and self._started_at is not None:
            at = self._started_at
            try:
                for ev in self._redactor.flush(at):
                    self._write(ev, at_least_t=True)
            except OSError as exc:
                self._fail(f"{self._path or self.directory}: {exc.strerror or exc}")
        self._close_file()

    # -- internals ---------------------------------------------------------------------------------

    def _fail(self, why: str) -> None:
        self.failed = why
        self._close_file()

    def _close_file(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:
                self.failed = self.failed or f"{self._path}: {exc.strerror or exc}"

    def _write(self, ev: LinkEvent, *, at_least_t: bool = False) -> None:
        if self._fh is None:
            self._open(ev.received_at)
        assert self._started_at is not None
        t = self._t(ev, at_least_t)
        line = event_to_json(ev, t) + "\n"
        size = len(line.encode("utf-8"))
        if self._size + size > self.file_max_bytes:
            if self._size > self._header_size:  # the file has events: start the next one
                self._close_file()
                self._open(ev.received_at)
                t = self._t(ev, at_least_t)
                line = event_to_json(ev, t) + "\n"
                size = len(line.encode("utf-8"))
            if self._size + size > self.file_max_bytes:
                self.skipped += 1
                return
        assert self._fh is not None
        self._fh.write(line)
        self._fh.flush()
        self._size += size

    def _t(self, ev: LinkEvent, at_least_t: bool) -> float:
        assert self._started_at is not None
        t = self._last_t if at_least_t else (ev.received_at - self._started_at).total_seconds()
        t = max(self._last_t, t)  # events of several links, or a host clock step: never backwards
        self._last_t = t
        return t

    def _open(self, started_at: datetime) -> None:
        self._ensure_directory()
        stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
        existing = self.files()
        if existing:
            last = _NAME.match(existing[-1].name)
            assert last is not None
            self._seq = max(self._seq, int(last.group(2)) + 1)
        for old in existing[: max(0, len(existing) - self.max_files + 1)]:
            old.unlink(missing_ok=True)
        path = self.directory / f"flight-{stamp}-{self._seq:06d}.capture.jsonl"
        self._seq += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            fh = os.fdopen(fd, "w", encoding="utf-8")
        except BaseException:
            os.close(fd)
            raise
        extra: dict[str, Any] = {"flight_recorder": True}
        if self._redactor is not None:
            extra["redacted"] = True
        header = CaptureHeader(self.driver, self.link, self.note, started_at, extra).to_json() + "\n"
        fh.write(header)
        fh.flush()
        self._fh = fh
        self._path = path
        self._size = self._header_size = len(header.encode("utf-8"))
        self._started_at = started_at
        self._last_t = 0.0

    _header_size = 0

    def _ensure_directory(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            os.chmod(self.directory, DIR_MODE)


def _seq_of(path: Path) -> int:
    m = _NAME.match(path.name)
    return int(m.group(2)) if m else -1


def flight_recorder_for(cfg: Any, *, link: str = "") -> FlightRecorder | None:
    """The recorder ``[scale] record_dir`` asks for, or None when it is not set."""
    s = cfg.scale
    if not s.record_dir:
        return None
    return FlightRecorder(
        s.record_dir,
        int(s.record_max_mb * 1024 * 1024),
        s.record_max_files,
        s.record_redact,
        driver=s.driver,
        link=link,
    )
