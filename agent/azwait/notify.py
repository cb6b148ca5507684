"""sd_notify(3) without libsystemd: datagrams to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends ``STATUS=``/``READY=1``; silent when not started by systemd."""

    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._last = ""

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *lines: str) -> None:
        if not self._address:
            return
        payload = "\n".join(lines)
        if payload == self._last:
            return
        self._last = payload
        # A leading "@" names a socket in the abstract namespace.
        address = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall(payload.encode())
        except OSError:
            pass  # status is a courtesy; the wait itself must not fail on it

    def status(self, text: str) -> None:
        self.send("STATUS=" + text)

    def ready(self, text: str) -> None:
        self.send("READY=1", "STATUS=" + text)
