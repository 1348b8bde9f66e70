"""The on-disk event spool: every event waits here until the broker acknowledges it.

SQLite (standard library) in WAL mode with full sync: an event that ``add`` returned
survives a SIGKILL or a power cut, and leaves only on ``delete`` after the PUBACK.
Sequence numbers come from an AUTOINCREMENT key, so they keep increasing across
restarts and deletions.

Overflow policy: at ``max_events`` undelivered events, adding one drops the oldest (a
long outage keeps the most recent hours, not the first ones); the drops are counted
persistently and published in the stats.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
"""


class SpoolError(OSError):
    """The spool file cannot be opened or written."""


class Spool:
    """Thread-safe: the pipeline adds, the MQTT thread reads and deletes."""

    def __init__(self, path: Path, max_events: int) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise SpoolError(f"spool.path {self.path}: cannot open the event spool ({e})") from None

    def add(self, make_payload: Callable[[int], str]) -> int:
        """Store a new event whose payload is made from its sequence number; return it."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._db.execute("INSERT INTO events (payload) VALUES ('')").lastrowid
            self._db.execute("UPDATE events SET payload = ? WHERE seq = ?", (make_payload(seq), seq))
            over = self._count() - self.max_events
            if over > 0:
                oldest = "SELECT seq FROM events ORDER BY seq LIMIT ?"
                self._db.execute(f"DELETE FROM events WHERE seq IN ({oldest})", (over,))
                self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (over,))
            return seq

    def pending(self, after: int = 0, limit: int = 100) -> list[tuple[int, str]]:
        """Undelivered events with sequence numbers above ``after``, oldest first."""
        with self._lock:
            query = "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
            return self._db.execute(query, (after, limit)).fetchall()

    def delete(self, seq: int) -> None:
        """The broker has the event."""
        with self._lock:
            self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    @property
    def dropped(self) -> int:
        """Events dropped by the overflow policy, ever."""
        with self._lock:
            return self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
