"""The reliability issue's rows about nodes and odd files, each named after the behaviour
it fixes, through the real daemon (``python -m ser_edge run``) or ``ser-edge classify``,
a real Mosquitto, real files, and a node on a real pseudo-terminal: the emulator, or
``PtyNode``, which writes whatever frames a test wants with the protocol's own encoder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_edge.audio.audio_io import read_audio
from ser_edge.tools.localbroker import LocalBroker
from tests.conftest import peak_rss_mb
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


# -- row 12 -----------------------------------------------------------------------------


def test_many_channels_at_a_high_rate_are_read_in_bounded_memory(tmp_path: Path) -> None:
    """12 s of 32 channels at 192 kHz peaked at 658 MB: blocks were 10 s of frames, 490 MB
    as float64. Now a block is at most BLOCK_BYTES (8 MB): classify peaks at about 92 MB
    for the mono clip alone here (two models loaded), and a block with its temporaries
    adds about 20, so 150 MB holds with room for another allocator, and is far below what
    frame-sized blocks need. The result is the same recording's at 16 kHz mono."""
    mono = tmp_path / "mono.wav"
    wide = tmp_path / "wide.wav"
    high = soxr.resample(read_audio(event_samples()[0]) / 32768.0, 16000, 192000, "VHQ")
    high = np.pad(high, (0, 12 * 192000 - high.size))
    sf.write(mono, soxr.resample(high, 192000, 16000, "VHQ"), 16000, subtype="PCM_16")
    with sf.SoundFile(wide, "w", 192000, 32, "PCM_16") as f:
        for i in range(0, high.size, 192000):  # a second at a time: the test's own memory stays small
            f.write(np.repeat(high[i : i + 192000, None], 32, axis=1))
    code, out, peak = peak_rss_mb([sys.executable, "-m", "ser_edge", "classify", "--json", str(wide), str(mono)])
    assert code == 0, out
    print(f"classify, 12 s of 32 channels at 192 kHz: peak RSS {peak:.0f} MB")
    assert peak < 150, f"peak RSS {peak:.0f} MB"
    results = json.loads(out)["results"]
    [a] = [r for r in results if r["file"] == str(wide)]
    [b] = [r for r in results if r["file"] == str(mono)]
    assert a["emotion"] == b["emotion"] and abs(a["confidence"] - b["confidence"]) < 0.05, (a, b)
    assert abs(a["start_s"] - b["start_s"]) < 0.05 and abs(a["end_s"] - b["end_s"]) < 0.05, (a, b)
