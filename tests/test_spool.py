"""The event spool: order, sequence numbers across restarts, overflow, and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ser_edge.delivery.spool import Spool, SpoolError


def test_order_and_delete(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 100)
    seqs = [spool.add(lambda n: f"event {n}") for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert spool.pending() == [(n, f"event {n}") for n in seqs]
    spool.delete(2)
    assert [s for s, _ in spool.pending()] == [1, 3, 4, 5]
    assert [s for s, _ in spool.pending(after=3, limit=1)] == [4]
    assert len(spool) == 4


def test_sequence_keeps_increasing_across_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 100)
    for _ in range(3):
        spool.add(str)
    for seq, _ in spool.pending():
        spool.delete(seq)
    spool.close()
    again = Spool(tmp_path / "s.sqlite", 100)
    assert again.add(str) == 4 and again.pending() == [(4, "4")]


def test_overflow_drops_oldest_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 10)
    for _ in range(25):
        spool.add(str)
    assert [s for s, _ in spool.pending()] == list(range(16, 26))
    assert spool.dropped == 15
    spool.close()
    assert Spool(tmp_path / "s.sqlite", 10).dropped == 15  # the counter is persistent


def test_events_survive_sigkill(tmp_path: Path) -> None:
    """A writer killed with SIGKILL right after add() returned loses nothing it reported."""
    path = tmp_path / "s.sqlite"
    writer = subprocess.Popen(
        [sys.executable, "-c", f"""
import sys, time
from ser_edge.delivery.spool import Spool
s = Spool({str(path)!r}, 1000)
for i in range(50):
    print(s.add(lambda n: "payload %d" % n), flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)  # fmt: skip
    reported = [int(writer.stdout.readline()) for _ in range(50)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert [s for s, _ in Spool(path, 1000).pending()] == reported


def test_unwritable_spool_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SpoolError, match=f"spool.path {blocker}/s.sqlite: cannot open the event spool"):
        Spool(blocker / "s.sqlite", 10)


def test_payload_failure_leaves_no_row(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 10)

    def broken(_n: int) -> str:
        raise ValueError("no")

    with pytest.raises(ValueError):
        spool.add(broken)
    assert len(spool) == 0 and spool.pending() == []


def test_a_full_disk_holds_events_in_memory_and_writes_them_later(tmp_path: Path, caplog) -> None:
    """SQLite's own "database or disk is full" (max_page_count caps the file, as a full
    tmpfs does in the daemon's fault test): nothing raises, nothing is lost up to the
    memory bound, the drops beyond it are counted, and each change is logged once."""
    path = tmp_path / "s.sqlite"
    spool = Spool(path, 100, memory_events=5)
    for _ in range(3):
        spool.add(lambda n: f"small {n}")
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count = {pages}")
    big = "x" * 20_000  # each needs new pages
    seqs = [spool.add(lambda n: f"{n} {big}") for _ in range(8)]
    assert seqs == list(range(4, 12)) and "full" in spool.failing
    assert len(spool) == 3 + 5 and spool.dropped == 3  # the three oldest held in memory went
    assert [s for s, _ in spool.pending()] == [1, 2, 3, 7, 8, 9, 10, 11]  # delivered from memory too
    spool.delete(7)
    spool.delete(1)
    assert [s for s, _ in spool.pending()] == [2, 3, 8, 9, 10, 11]
    assert sum("cannot write" in r.message for r in caplog.records) == 1
    spool._db.execute("PRAGMA max_page_count = 1073741823")  # room again
    assert [s for s, _ in spool.pending()] == [2, 3, 8, 9, 10, 11] and spool.failing == ""
    assert sum("writable again" in r.message for r in caplog.records) == 1
    spool.close()
    again = Spool(path, 100)
    assert [s for s, _ in again.pending()] == [2, 3, 8, 9, 10, 11] and again.dropped == 3
    assert again.add(lambda n: "next") == 12  # numbers never repeat
