"""A hard limit on a whole call: nesting, reporting, and no timer left behind."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from azwait.deadline import call_within


class Expired(Exception):
    pass


def blocked_read(sock: socket.socket) -> bytes:
    """A read no idle timeout ends: the peer holds the connection open and silent."""
    return sock.recv(1)


@pytest.fixture
def silent_peer() -> Iterator[socket.socket]:
    left, right = socket.socketpair()
    yield left
    left.close()
    right.close()


def test_a_blocked_read_is_cut_at_the_limit(silent_peer: socket.socket) -> None:
    with pytest.raises(Expired, match="read"):  # else the read would block for ever
        call_within(0.2, lambda: Expired("read"), blocked_read, silent_peer)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize("outer,inner", [(0.2, 5.0), (5.0, 0.2), (0.2, 0.2)])
def test_the_innermost_call_in_progress_reports(silent_peer: socket.socket, outer: float,
                                                inner: float) -> None:
    """An ARM read stuck on its token is reported as the token, whichever limit passed."""
    with pytest.raises(Expired, match="inner"):
        call_within(outer, lambda: Expired("outer"), call_within, inner,
                    lambda: Expired("inner"), blocked_read, silent_peer)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_outer_limit_still_holds_after_an_inner_call_returns(
        silent_peer: socket.socket) -> None:
    def inner_then_block() -> bytes:
        call_within(5.0, lambda: Expired("inner"), time.sleep, 0.01)
        return blocked_read(silent_peer)

    with pytest.raises(Expired, match="outer"):
        call_within(0.3, lambda: Expired("outer"), inner_then_block)


def test_a_call_that_returns_leaves_no_timer() -> None:
    """A timer armed at exec would survive into the worker and kill it with SIGALRM."""
    assert call_within(5.0, lambda: Expired("x"), lambda: 42) == 42
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_other_threads_run_with_the_libraries_timeouts_alone() -> None:
    """Signals reach the main thread only: elsewhere the call runs unbounded."""
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(
        call_within(0.01, lambda: Expired("x"), time.sleep, 0.1)))
    thread.start()
    thread.join()
    assert results == [None]
