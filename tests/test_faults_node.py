"""The reliability issue's rows about nodes and odd files, each named after the behaviour
it fixes, through the real daemon (``python -m ser_edge run``) or ``ser-edge classify``,
a real Mosquitto, real files, and a node on a real pseudo-terminal: the emulator, or
``PtyNode``, which writes whatever frames a test wants with the protocol's own encoder."""

from __future__ import annotations

from pathlib import Path

from ser_edge.tools.localbroker import LocalBroker
from tests.daemon_harness import Daemon, Subscriber, event_samples, write_config

# -- row 10 -----------------------------------------------------------------------------


def test_a_replay_loop_goes_on_past_an_unreadable_file_and_names_it_once(tmp_path: Path) -> None:
    """A loop of one clip and one text file used to end after as many passes as files
    (skips counted per pass), exit 0, and systemd did not restart it."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    files = [event_samples()[0], notes]
    source = f"{{kind: replay, files: [{', '.join(map(str, files))}], realtime: false, loop: true}}"
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port)
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, source=source))
        try:
            passes = 2 * len(files)  # one event per pass
            sub.wait(lambda s: len(s.events()) >= passes or daemon.process.poll() is not None, 40)
            assert daemon.process.poll() is None, daemon.log
            assert len(sub.events()) >= passes, daemon.log
        finally:
            daemon.stop()
        sub.close()
    assert [str(notes) in line for line in daemon.log.splitlines()].count(True) == 1, daemon.log
    assert "notes.txt: not a readable audio file" in daemon.log
