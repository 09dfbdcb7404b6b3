"""``[scale] record_dir`` (the flight recorder) is checked by ``validate`` and by ``run`` at start-up
with the state dir's check: it exists or can be created, is a directory, is writable by the running
user and is closed to others (its captures are personal data). One line naming the key, exit 78."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bridge.config import Config, config_from_dict
from bridge.envcheck import record_dir_problems
from bridge.errors import ConfigProblem
from tests.helpers import run_cli, write_config

NOBODY = 65534
BASE = {
    "platform": {"base_url": "https://mygym.open-api.perfectgym.com", "api_key": "k" * 32},
    "scale": {"driver": "tanita", "port": "/dev/null"},
}


def _config(tmp: Path, record_dir: Path) -> Path:
    cfg = write_config(
        tmp / "site.toml",
        {**BASE, "scale": {**BASE["scale"], "record_dir": str(record_dir)}, "state": {"dir": str(tmp / "state")}},
    )
    cfg.chmod(0o600)
    return cfg


def _problem_lines(r: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [line for line in r.stderr.decode().splitlines() if "warning:" not in line]


def _refused(r: subprocess.CompletedProcess[bytes], why: str) -> None:
    lines = _problem_lines(r)
    assert r.returncode == 78, r.stderr
    assert len(lines) == 1 and ": scale.record_dir: " in lines[0], lines
    assert why in lines[0], lines[0]


def test_a_missing_record_dir_under_a_missing_parent_can_be_created(tmp_path: Path) -> None:
    r = run_cli("validate", "-c", str(_config(tmp_path, tmp_path / "no" / "such" / "recordings")))
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "no").exists()  # validate only looks


def test_a_file_instead_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "recordings").write_text("")
    _refused(run_cli("validate", "-c", str(_config(tmp_path, tmp_path / "recordings"))), "is not a directory")


def test_a_path_under_a_regular_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    r = run_cli("validate", "-c", str(_config(tmp_path, tmp_path / "afile" / "recordings")))
    _refused(r, f"cannot create {tmp_path / 'afile' / 'recordings'}: {tmp_path / 'afile'} is not a directory")


def test_a_directory_others_may_read_is_refused_and_a_private_one_passes(tmp_path: Path) -> None:
    rec = tmp_path / "recordings"
    rec.mkdir()
    cfg = _config(tmp_path, rec)
    rec.chmod(0o755)
    _refused(run_cli("validate", "-c", str(cfg)), "is open to others (mode 0755")
    rec.chmod(0o750)
    r = run_cli("validate", "-c", str(cfg))
    assert r.returncode == 0, r.stderr


def test_the_file_alone_is_not_checked_against_this_machine(tmp_path: Path) -> None:
    (tmp_path / "recordings").write_text("")
    r = run_cli("validate", "--no-environment", "-c", str(_config(tmp_path, tmp_path / "recordings")))
    assert r.returncode == 0, r.stderr


def test_the_daemon_refuses_to_start_with_an_unusable_record_dir(tmp_path: Path) -> None:
    (tmp_path / "recordings").write_text("")
    r = run_cli("run", "-c", str(_config(tmp_path, tmp_path / "recordings")), timeout=120)
    _refused(r, "is not a directory")
    assert b"daemon_started" not in r.stdout + r.stderr


def _problems_as(uid: int, cfg: Config) -> list[ConfigProblem]:
    """``record_dir_problems(cfg)`` in a forked child that runs as ``uid`` (uid, gid and groups
    dropped): the real check on the real directory, as the user that would run the daemon."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only the check and os._exit
        code = 1  # unless the check ran and its answer was written
        try:
            os.close(read_end)
            if os.geteuid() != uid:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            found = [[p.key, p.message] for p in record_dir_problems(cfg)]
            os.write(write_end, json.dumps({"uid": os.geteuid(), "problems": found}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        out = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and out, "the child failed"
    doc = json.loads(out)
    assert doc["uid"] == uid
    return [ConfigProblem(k, m) for k, m in doc["problems"]]


def test_a_read_only_record_dir_is_refused_for_the_user_that_runs() -> None:
    """Root may write any directory, so as root the check runs as ``nobody``: the dir is read-only to
    the user that runs, not to root. (Outside pytest's 0700 tmp tree, so that nobody can reach it.)"""
    uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    d = Path(tempfile.mkdtemp(prefix="sb-record-dir-"))
    rec = d / "recordings"
    try:
        rec.mkdir()
        os.chown(d, uid, -1)
        os.chown(rec, uid, -1)
        cfg = config_from_dict({**BASE, "scale": {**BASE["scale"], "record_dir": str(rec)}}, env={})
        rec.chmod(0o500)  # its owner may list it, not write in it
        assert _problems_as(uid, cfg) == [
            ConfigProblem("scale.record_dir", f"{rec} is not writable by this user (uid {uid})")
        ]
        rec.chmod(0o700)
        assert _problems_as(uid, cfg) == []
    finally:
        rec.chmod(0o700) if rec.is_dir() else None
        shutil.rmtree(d, ignore_errors=True)
