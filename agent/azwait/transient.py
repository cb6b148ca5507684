"""Failures worth another try, as data the wait policy can reason about."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Optional


class Transient(Exception):
    """A failure that may clear by itself.

    ``kind`` groups failures that share one grace window: ``imds`` (IMDS
    unreachable), ``identity`` (no such identity yet), ``rbac`` (ARM 401/403),
    ``not_found`` (ARM 404 before the VM was ever seen) and ``retry`` (everything
    bounded only by the overall timeout: throttling, 5xx, garbled bodies).
    ``headers`` are the answer's read-budget counters, which a 429 carries too.
    """

    def __init__(self, kind: str, reason: str, retry_after: Optional[float] = None,
                 headers: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after = retry_after
        self.headers: Mapping[str, str] = headers or {}


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
