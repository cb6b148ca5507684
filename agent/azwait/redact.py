"""Secrets are registered when obtained and scrubbed from every line azwait writes."""

from __future__ import annotations

import re

# Bearer tokens and JWTs that reach a message through a library's error text.
_TOKEN_SHAPES = re.compile(r"(eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*){0,2})|(?i:bearer\s+\S+)")
_REDACTED = "[REDACTED]"


class Secrets:
    """Values registered as they are obtained and scrubbed from every log line."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: str) -> None:
        if len(value) >= 8:
            self._values.add(value)

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, _REDACTED)
        return _TOKEN_SHAPES.sub(_REDACTED, text)


SECRETS = Secrets()
