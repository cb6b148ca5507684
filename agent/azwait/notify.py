"""systemd's protocols without libsystemd: sd_notify(3) and ``$JOURNAL_STREAM``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO


def is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether ``stream`` is the journal stream systemd set up (systemd.exec(5)).

    ``JOURNAL_STREAM`` is inherited by children whose output went elsewhere, so
    it only counts when its device:inode is this stream's.
    """
    value = environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        status = os.fstat(stream.fileno())
    except (ValueError, OSError):
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


READY_WAIT = 5.0  # READY=1 is what units are waiting for: worth waiting for room


class Notifier:
    """Sends ``STATUS=``/``READY=1``; silent when not started by systemd."""

    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._last = ""

    def send(self, *lines: str, wait: float = 0.0) -> None:
        """Send one datagram; when systemd's queue is full, wait up to ``wait`` seconds
        for room (0: drop it: a STATUS= line is a courtesy a later one replaces)."""
        if not self._address:
            return
        payload = "\n".join(lines)
        if payload == self._last:
            return
        self._last = payload
        import socket  # only under systemd (NOTIFY_SOCKET): elsewhere a start does without it

        # A leading "@" names a socket in the abstract namespace.
        address = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(wait)
                sock.connect(address)
                sock.sendall(payload.encode())
        except OSError:
            pass  # the wait itself must not fail on its notifications

    def status(self, text: str) -> None:
        self.send("STATUS=" + text)

    def ready(self, text: str) -> None:
        self.send("READY=1", "STATUS=" + text, wait=READY_WAIT)
