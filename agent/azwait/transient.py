"""Failures worth another try, as data the wait policy can reason about."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from typing import Optional


class Kind(enum.Enum):
    """Failures that share one grace window (and, spent, one exit code)."""

    IMDS = "imds"  # IMDS or its token endpoint unreachable: AZWAIT_IMDS_GRACE, exit 5
    IDENTITY = "identity"  # no such managed identity (yet): AZWAIT_IDENTITY_GRACE, exit 6
    RBAC = "rbac"  # ARM 401/403: AZWAIT_RBAC_GRACE, exit 6
    NOT_FOUND = "not_found"  # ARM 404 for a VM never seen: replication lag, exit 4
    NETWORK = "network"  # TLS trust or proxy on the way to ARM: AZWAIT_NETWORK_GRACE, exit 8
    RETRY = "retry"  # throttling, 5xx, garbled bodies: bounded by AZWAIT_TIMEOUT alone


class Transient(Exception):
    """A failure that may clear by itself, of a ``Kind``.

    ``headers`` are the answer's read-budget counters, which a 429 carries too.
    """

    def __init__(self, kind: Kind, reason: str, retry_after: Optional[float] = None,
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
    # Loaded for the rare HTTP-date form only: it brings socket, a marker start needs neither.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
