"""systemd's notify protocol (READY=1, WATCHDOG=1, STATUS=..., STOPPING=1).

systemd-python when it is installed; otherwise the datagram to $NOTIFY_SOCKET is sent
directly (the protocol is one line of text). Without NOTIFY_SOCKET (not under systemd)
every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET", "")
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and (not pid or pid == str(os.getpid())) else 0.0
        """The watchdog interval systemd expects pings within; 0 when there is none."""
        try:
            from systemd import daemon

            self._send = lambda text: daemon.notify(text)
        except ImportError:
            self._send = self._datagram

    def _datagram(self, text: str) -> None:
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(text.encode())

    def notify(self, text: str) -> None:
        if self.address:
            with contextlib.suppress(OSError):  # systemd gone (shutdown): nothing to tell
                self._send(text)

    def ready(self, status: str) -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1\nSTATUS=stopping")
