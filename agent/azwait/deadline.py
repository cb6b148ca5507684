"""A hard limit on one whole request, whatever the server does.

The read timeouts of requests and azure-core are idle timeouts between bytes: a
server (or a proxy in the way) that sends its headers promptly and then one byte
a second holds a request as long as it likes. ``call_within`` bounds the whole
call with a one-shot real-time timer (SIGALRM), whose handler raises out of the
blocked read. Calls nest, and when any limit passes, the innermost call still in
progress reports it: an ARM read stuck on its token is a token that did not come.

Only the main thread receives signals; elsewhere the call runs with the
libraries' own timeouts alone. No timer is left armed when a call returns, so
none survives the exec into the worker (interval timers do survive execve).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")
_SLACK = 0.001  # timers may fire a hair early


class _Overrun(BaseException):
    """The timer fired. A BaseException, so no library's ``except Exception`` keeps it."""


_limits: list[float] = []  # monotonic deadlines of the calls in progress, innermost last


def _fire(signum: int, frame: Any) -> None:
    # A stale signal (its call already returned) finds no expired limit and does nothing.
    if _limits and time.monotonic() >= min(_limits) - _SLACK:
        raise _Overrun()


def _arm() -> None:
    soonest = min(_limits, default=math.inf)
    if math.isfinite(soonest):
        signal.setitimer(signal.ITIMER_REAL, max(soonest - time.monotonic(), _SLACK))
    else:
        signal.setitimer(signal.ITIMER_REAL, 0)


def call_within(seconds: float, expired: Callable[[], BaseException],
                call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, or ``expired()`` raised once ``seconds`` have passed."""
    if not math.isfinite(seconds) or threading.current_thread() is not threading.main_thread():
        return call(*args, **kwargs)
    if signal.getsignal(signal.SIGALRM) is not _fire:
        signal.signal(signal.SIGALRM, _fire)
    depth = len(_limits)
    _limits.append(time.monotonic() + max(seconds, 0.0))
    try:
        try:
            _arm()
            return call(*args, **kwargs)
        finally:
            _drop(depth)  # first thing on the way out: a later signal finds nothing to do
    except _Overrun:
        # Enclosing limits that have passed too are reported here, not fired again.
        spent = time.monotonic() + _SLACK
        _limits[:depth] = [math.inf if limit <= spent else limit for limit in _limits[:depth]]
        _drop(depth)  # again: the signal may have landed before the first one ran
        raise expired() from None


def _drop(depth: int) -> None:
    del _limits[depth:]
    _arm()
