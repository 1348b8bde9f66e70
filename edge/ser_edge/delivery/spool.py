"""The on-disk event spool: every event waits here until the broker acknowledges it.

SQLite (standard library) in WAL mode with full sync: an event that ``add`` returned
survives a SIGKILL or a power cut, and leaves only on ``delete`` after the PUBACK.
Sequence numbers continue from the file's AUTOINCREMENT counter, so they keep increasing
across restarts and deletions.

Overflow policy: at ``max_events`` undelivered events, adding one drops the oldest (a
long outage keeps the most recent hours, not the first ones); the drops are counted
persistently and published in the stats.

A file that cannot be written (disk full, I/O error) does not stop the daemon: new events
wait in memory (at most ``memory_events``, the oldest dropped and counted beyond that),
are delivered from there all the same, and go to the file as soon as it takes writes
again. Each change of state is logged once, naming the file.

A damaged file (SQLite's quick_check fails, or the tables are not this version's) is
moved aside as ``<name>.corrupt-<time>`` at start, its readable events are carried into a
fresh spool, and the recovery is logged and counted (``spool_recovered`` in the stats).
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
INSERT OR IGNORE INTO counters VALUES ('recovered', 0);
"""
_TABLES = {"events": ["seq", "payload"], "counters": ["name", "value"]}
"""The columns this version reads; a file with other ones was not written by it."""


class SpoolError(OSError):
    """The spool file cannot be opened or written."""


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(_SCHEMA)
    return db


def damage(path: Path) -> str:
    """Why the spool file cannot be used as it is ("" when it can, or does not exist yet):
    SQLite's quick_check, and the tables this version writes. Opens it read-only."""
    if not path.exists() and not Path(f"{path}-wal").exists():
        return ""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                return "; ".join(problems[:3])
            for table, columns in _TABLES.items():
                have = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
                if have and have != columns:
                    return f"table {table} has columns {', '.join(have)}, not {', '.join(columns)}"
        finally:
            db.close()
    except sqlite3.Error as e:
        return str(e)
    return ""


def salvage(path: Path) -> list[tuple[int, str]]:
    """The events still readable in a damaged spool, read from both ends up to the damage,
    with its write-ahead log and without it (a log that is not a file hides the rest)."""
    found: dict[int, str] = {}
    for mode, order in itertools.product(("mode=ro", "immutable=1"), ("ASC", "DESC")):
        try:
            db = sqlite3.connect(f"file:{path}?{mode}", uri=True)
            try:
                for seq, payload in db.execute(f"SELECT seq, payload FROM events ORDER BY seq {order}"):
                    if isinstance(seq, int) and isinstance(payload, str):
                        found[seq] = payload
            finally:
                db.close()
        except sqlite3.Error:
            continue
    return sorted(found.items())


class Spool:
    """Thread-safe: the pipeline adds, the MQTT thread reads and deletes."""

    def __init__(self, path: Path, max_events: int, memory_events: int = 1000) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.memory_events = memory_events
        self._lock = threading.Lock()
        self._memory: dict[int, str] = {}  # events the file could not take yet, by seq
        self._memory_dropped = 0
        self._undeleted: set[int] = set()  # delivered, but the file could not forget them yet
        self.failing = ""
        """Why the file takes no writes now ("" while it does)."""
        self.recovered = ""
        """Where a damaged spool found at start was moved ("" when none was)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if problem := damage(self.path):
                self._recover(problem)
            else:
                self._db = _open(self.path)
            self._next = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0] + 1
            known = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            self._next = max(self._next, (known[0] if known else 0) + 1)
        except (OSError, sqlite3.Error) as e:
            raise SpoolError(f"spool.path {self.path}: cannot open the event spool ({e})") from None

    def _recover(self, problem: str) -> None:
        """A damaged file must not stop the daemon for good (systemd would restart it into
        the same error for ever): its readable events are kept, the file is moved aside
        for a post-mortem, and a fresh spool takes over."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm", "-journal"):
            part = Path(f"{self.path}{suffix}")
            if part.exists() or part.is_symlink():
                part.rename(f"{aside}{suffix}")
        rows = salvage(aside)
        self._db = _open(self.path)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO events (seq, payload) VALUES (?, ?)", rows)
            self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'recovered'")
        self.recovered = str(aside)
        log.error("spool.path %s: the event spool is damaged (%s); moved it to %s, kept %d readable events, "
                  "started a fresh spool", self.path, problem, aside, len(rows))  # fmt: skip

    def add(self, make_payload: Callable[[int], str]) -> int:
        """Store a new event whose payload is made from its sequence number; return it."""
        with self._lock:
            payload = make_payload(self._next)
            seq, self._next = self._next, self._next + 1
            self._memory[seq] = payload
            self._flush()
            if len(self._memory) > self.memory_events:
                del self._memory[min(self._memory)]
                self._memory_dropped += 1
            return seq

    def _flush(self) -> None:
        """Move the events held in memory to the file, and forget the delivered ones; a
        file that refuses keeps them in memory (lock held)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in self._undeleted])
                self._db.executemany("INSERT INTO events (seq, payload) VALUES (?, ?)", sorted(self._memory.items()))
                if self._memory_dropped:  # counted for good once the file takes it
                    self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'",
                                     (self._memory_dropped,))  # fmt: skip
                over = self._count() - self.max_events
                if over > 0:
                    oldest = "SELECT seq FROM events ORDER BY seq LIMIT ?"
                    self._db.execute(f"DELETE FROM events WHERE seq IN ({oldest})", (over,))
                    self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (over,))
        except sqlite3.Error as e:
            if not self.failing:
                log.error("spool.path %s: cannot write (%s); holding up to %d events in memory until it can",
                          self.path, e, self.memory_events)  # fmt: skip
            self.failing = str(e)
            return
        if self.failing:
            log.warning(
                "spool.path %s: writable again; %d events held in memory are in it", self.path, len(self._memory)
            )
            self.failing = ""
        self._memory.clear()
        self._undeleted.clear()
        self._memory_dropped = 0

    def pending(self, after: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Undelivered events with sequence numbers above ``after``, oldest first."""
        with self._lock:
            if self._memory or self._undeleted:
                self._flush()  # a full disk may have room again
            query = "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
            rows = [r for r in self._db.execute(query, (after, limit)).fetchall() if r[0] not in self._undeleted]
            rows += [(s, p) for s, p in self._memory.items() if s > after]
            return sorted(rows)[:limit]

    def delete(self, seq: int) -> None:
        """The broker has the event."""
        with self._lock:
            if self._memory.pop(seq, None) is not None:
                return
            try:
                self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
            except sqlite3.Error:  # a full disk can refuse even this: forget it later
                self._undeleted.add(seq)

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def __len__(self) -> int:
        with self._lock:
            return self._count() - len(self._undeleted) + len(self._memory)

    @property
    def dropped(self) -> int:
        """Events dropped by the overflow policy (ever) and for want of a writable file."""
        with self._lock:
            on_file = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0]
            return on_file + self._memory_dropped

    @property
    def recoveries(self) -> int:
        """Damaged spools this one replaced (ever)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'recovered'").fetchone()
            return row[0] if row else 0

    def close(self) -> int:
        """Write what memory holds one last time; how many events could not be written
        (lost with the process)."""
        with self._lock:
            if self._memory or self._undeleted:
                self._flush()
            lost = len(self._memory)
            self._db.close()
            return lost
