"""The soak's DB verdict (``bench.soak._bounded``) on made-up samples: a faster second half (more
weighings held, a bigger file) is still bounded; pages that grow while the weighings held do not, or a
``-wal`` file that outgrows its limit, are not. The verdict issue #17's 20,000 soak got wrong: its
delivery rate went from ~17/s to ~94/s and the old "2nd half <= 1.1 x 1st" on raw sizes said unbounded."""

from __future__ import annotations

from bench.soak import WAL_ALLOWED_BYTES, DbSample, _bounded

ROW_BYTES = 4500
WAL = 4 * 2**20


def _samples(rows: list[int], *, leak_per_s: int = 0, wal: list[int] | None = None) -> list[DbSample]:
    out = []
    for i, held in enumerate(rows):
        pages = held * ROW_BYTES + leak_per_s * i
        w = WAL if wal is None else wal[i]
        out.append(DbSample(float(i), 100 * i, 40 * 2**20, pages, w, 32768, pages, held))
    return out


def test_a_faster_second_half_is_still_bounded() -> None:
    rows = [400] * 20 + [3000] * 20  # the rate went up 7x: the file holds 7x the weighings
    v = _bounded(_samples(rows), 0, True)
    assert v["db_bounded"] is True
    assert v["rows_held_max_second_half"] == 3000


def test_pages_that_grow_while_the_weighings_held_do_not_are_unbounded() -> None:
    v = _bounded(_samples([2000] * 40, leak_per_s=2**20), 0, True)
    assert v["db_bounded"] is False


def test_a_wal_that_outgrows_its_limit_is_unbounded() -> None:
    wal = [WAL] * 20 + [WAL_ALLOWED_BYTES + 4096] * 20
    assert _bounded(_samples([2000] * 40, wal=wal), 0, True)["db_bounded"] is False
    wal = [WAL] * 20 + [WAL_ALLOWED_BYTES] * 20  # up to the limit and one cycle past it: not growth
    assert _bounded(_samples([2000] * 40, wal=wal), 0, True)["db_bounded"] is True


def test_too_short_a_run_gives_no_verdict() -> None:
    assert _bounded(_samples([2000] * 40), 0, False)["db_bounded"] is None
