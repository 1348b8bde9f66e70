"""The notify protocol from both implementations, to a real datagram socket."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from ser_edge.notify import Notifier


@pytest.mark.parametrize("systemd_python", [True, False])
def test_messages_reach_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, systemd_python: bool) -> None:
    if not systemd_python:
        monkeypatch.setitem(sys.modules, "systemd", None)  # as on a Pi without systemd-python
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        monkeypatch.setenv("WATCHDOG_USEC", "4000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        n = Notifier()
        assert n.watchdog_s == 4.0
        assert (n._send == n._datagram) is not systemd_python
        n.ready("listening")
        n.watchdog()
        n.status("3 events")
        n.stopping()
        got = [sock.recv(1024).decode() for _ in range(4)]
    assert got == ["READY=1\nSTATUS=listening", "WATCHDOG=1", "STATUS=3 events", "STOPPING=1\nSTATUS=stopping"]


def test_abstract_socket_and_other_pids_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "systemd", None)
    name = f"ser-edge-test-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        monkeypatch.setenv("WATCHDOG_USEC", "4000000")
        monkeypatch.setenv("WATCHDOG_PID", "1")  # the watchdog is meant for another process
        n = Notifier()
        assert n.watchdog_s == 0.0
        n.status("x")
        assert sock.recv(1024) == b"STATUS=x"


def test_without_systemd_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    n.ready("x")  # no socket, no error
    assert n.address == ""
