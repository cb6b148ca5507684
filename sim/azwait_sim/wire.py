"""What a handler sees of a request and what it hands back.

Handlers are plain functions from Request to Reply, so the HTTP plumbing in
server.py is the only place that touches sockets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0
    trickle: float = 0.0  # seconds between body bytes
    # Facts for the request log, filled in by whoever knows them.
    endpoint: str = "unknown"
    vm: int | None = None
    identity: str | None = None
    auth: str = "none"
    event_id: str | None = None

    def tag(self, endpoint: str, vm: int | None) -> Reply:
        self.endpoint, self.vm = endpoint, vm
        return self


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, body, JSON_TYPE, dict(headers or {}))


def text_reply(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Reply:
    return Reply(status, text.encode(), content_type)
