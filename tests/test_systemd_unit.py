"""The service unit passes systemd's own checks (systemd is not PID 1 here, but
systemd-analyze reads unit files offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

UNIT = REPO / "systemd" / "ser-edge.service"


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    # verify insists that ExecStart exists; point it at this checkout's ser-edge.
    ser_edge = Path(sys.executable).with_name("ser-edge")
    text = UNIT.read_text()
    assert "ExecStart=/opt/ser-edge/current/bin/ser-edge run --config /etc/ser-edge/config.yaml" in text
    unit = tmp_path / "ser-edge.service"
    unit.write_text(text.replace("/opt/ser-edge/current/bin/ser-edge", str(ser_edge)))
    r = subprocess.run([shutil.which("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # unknown keys are only warnings: none allowed


def test_unit_is_hardened_and_notify() -> None:
    text = UNIT.read_text()
    required = ["Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=78",
                "ProtectSystem=strict", "StateDirectory=ser-edge", "ConfigurationDirectory=ser-edge",
                "NoNewPrivileges=yes", "RestrictAddressFamilies=", "DevicePolicy=closed", "DeviceAllow=char-alsa rw",
                "DeviceAllow=char-ttyACM rw", "SupplementaryGroups=audio dialout"]  # fmt: skip
    for line in required:
        assert line in text, line
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for ser-edge.service: ([0-9.]+)", r.stdout).group(1))
    assert score <= 2.0, r.stdout[-2000:]
