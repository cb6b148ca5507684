"""--detach's calls to systemd: one that hangs or cannot run is exit 7, one line."""

from __future__ import annotations

import pytest

from azwait import detach
from azwait.errors import NotDetachable


def test_a_systemd_tool_that_does_not_answer_is_exit_7(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detach, "_SYSTEMCTL_TIMEOUT", 0.2)
    with pytest.raises(NotDetachable) as caught:
        detach._run(["/bin/sleep", "30"])  # a real process, as a stuck systemctl would be
    assert caught.value.exit_code == 7
    assert caught.value.message == "sleep did not answer within 0.2s: systemd is busy or stuck"


def test_a_systemd_tool_that_cannot_run_is_exit_7() -> None:
    with pytest.raises(NotDetachable) as caught:
        detach._run(["/nonexistent/systemd-run", "--version"])
    assert caught.value.exit_code == 7
    assert caught.value.message == "cannot run /nonexistent/systemd-run: No such file or directory"


def test_an_answer_is_returned_whatever_its_status() -> None:
    """A refusal is systemd's to explain: hand_off reads its status and stderr."""
    done = detach._run(["/bin/sh", "-c", "echo refused >&2; exit 1"])
    assert done.returncode == 1 and done.stderr == "refused\n"
