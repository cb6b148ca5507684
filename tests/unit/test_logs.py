"""The log's own renderers write what structlog's did, line for line; levels, the
journal's priorities, redaction and the SDKs' records behave as documented."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from azwait import logs
from azwait.redact import SECRETS

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")
SECRET = "s3cr3t-value-registered-as-obtained"
SECRETS.add(SECRET)

# Values that exercise logfmt's quoting, the folding of lists and lines, and redaction.
FIELDS: list[dict[str, Any]] = [
    {},
    {"plain": "word", "number": 3, "ratio": 1.25, "zero": 0},
    {"spaced": "two words", "equals": "a=b", "quote": 'say "hi"', "empty": ""},
    {"backslash": "C:\\dir", "backslash_spaced": "C:\\a dir", "backslash_quote": '\\"'},
    {"flag": True, "off": False, "unset": None},
    {"argv": ["a", "b c"], "pair": ("x", 1), "many": "line one\n  line two\n\n"},
    {"token": f"got {SECRET} back", "header": "Authorization: Bearer abc.def",
     "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"},
    {"path": Path("/var/lib/azwait"), "nested": {"k": "v"}},
]


class _Journal:
    """The journal renderer as logs.py had it, on structlog's LogfmtRenderer."""

    def __init__(self) -> None:
        self._fields = structlog.processors.LogfmtRenderer(bool_as_flag=False)

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        level = str(event.pop("level", name))
        message = str(event.pop("event", ""))
        fields = self._fields(logger, name, event) if event else ""
        return f"<{logs._PRIORITY.get(level, 6)}>{message}" + (f" {fields}" if fields else "")


def _structlog_line(fmt: str, level: str, event: str, fields: dict[str, Any]) -> str:
    """What structlog, set up as logs.configure set it up, rendered for this event."""
    processors: list[Any] = [
        structlog.processors.add_log_level,
        lambda _, __, ev: logs._readable(ev),
        lambda _, __, ev: logs._redact(ev),
    ]
    if fmt == "journal":
        processors.append(_Journal())
    elif fmt == "json":
        processors += [structlog.processors.TimeStamper(fmt="iso", utc=True),
                       structlog.processors.JSONRenderer(sort_keys=False)]
    else:
        processors += [structlog.processors.TimeStamper(fmt="iso", utc=True),
                       structlog.processors.LogfmtRenderer(
                           key_order=["timestamp", "level", "event"], bool_as_flag=False)]
    logger = structlog.wrap_logger(structlog.ReturnLogger(), processors=processors)
    return str(getattr(logger, level)(event, **dict(fields)))


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """A fresh, unconfigured log module writing to a buffer; the stdlib root restored."""
    monkeypatch.setattr(logs, "_setup", None)
    monkeypatch.setattr(logs, "_routed", None)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


@pytest.mark.parametrize("fmt", ["json", "logfmt", "journal"])
@pytest.mark.parametrize("level", ["info", "warning", "error"])
@pytest.mark.parametrize("fields", FIELDS)
def test_same_line_as_structlog(stream: io.StringIO, fmt: str, level: str,
                                fields: dict[str, Any]) -> None:
    logs.configure("auto" if fmt == "logfmt" else fmt, "debug", stream)
    getattr(logs.get(), level)("something happened", **dict(fields))
    expected = _structlog_line(fmt, level, "something happened", fields)
    [ours] = lines(stream)
    if fmt == "journal":
        assert ours == expected
    else:  # the same clock read microseconds apart
        assert STAMP.search(ours) and STAMP.sub("T", ours) == STAMP.sub("T", expected)
    assert SECRET not in ours and "abc.def" not in ours and "eyJhbGci" not in ours


def test_json_keys(stream: io.StringIO) -> None:
    """What tests and shippers read: the fields, then event, level and a UTC timestamp."""
    logs.configure("json", "info", stream)
    logs.get().info("VM found", resource_id="/subscriptions/s", attempt=2)
    [line] = lines(stream)
    record = json.loads(line)
    assert list(record) == ["resource_id", "attempt", "event", "level", "timestamp"]
    assert record["event"] == "VM found" and record["level"] == "info"
    assert record["attempt"] == 2 and STAMP.fullmatch(record["timestamp"])


def test_logfmt_starts_with_time_level_event(stream: io.StringIO) -> None:
    logs.configure("auto", "info", stream)  # not a terminal, not the journal: logfmt
    logs.get().warning("retrying", problem="ARM answered 503")
    [line] = lines(stream)
    stamp, rest = line.split(" ", 1)
    assert STAMP.fullmatch(stamp.removeprefix("timestamp="))
    assert rest == 'level=warning event=retrying problem="ARM answered 503"'


def test_journal_priorities_and_no_timestamp(stream: io.StringIO) -> None:
    logs.configure("journal", "debug", stream)
    log = logs.get()
    log.debug("d")
    log.info("i", n=1)
    log.warning("w")
    log.error("e")
    log.critical("c")
    assert lines(stream) == ["<7>d", "<6>i n=1", "<4>w", "<3>e", "<2>c"]


@pytest.mark.parametrize("level,shown", [
    ("debug", ["debug", "info", "warning", "error"]),
    ("info", ["info", "warning", "error"]),
    ("warning", ["warning", "error"]),
    ("error", ["error"]),
])
def test_level_filters(stream: io.StringIO, level: str, shown: list[str]) -> None:
    logs.configure("json", level, stream)
    log = logs.get()
    for name in ("debug", "info", "warning", "error"):
        getattr(log, name)(name)
    assert [json.loads(line)["level"] for line in lines(stream)] == shown


def test_bound_fields_and_interpolation(stream: io.StringIO) -> None:
    logs.configure("json", "info", stream)
    logs.get(vm=3).bind(verb="events").info("drained %s of %d", "one", 2, took="1s")
    record = json.loads(lines(stream)[0])
    assert record["event"] == "drained one of 2"
    assert [record[k] for k in ("vm", "verb", "took")] == [3, "events", "1s"]


def test_a_logger_made_before_configure_follows_it(stream: io.StringIO) -> None:
    log = logs.get()
    assert not logs.configured()
    logs.configure("journal", "info", stream)
    log.info("later")
    assert lines(stream) == ["<6>later"]


def test_console_for_a_person(stream: io.StringIO) -> None:
    logs.configure("console", "info", stream)
    logs.get().info("VM is Succeeded", reads=1)
    [line] = lines(stream)
    assert re.match(r"\d\d:\d\d:\d\d \[info\s*\] VM is Succeeded\s+reads=1$", line), line


def test_a_closed_pipe_is_not_an_error(stream: io.StringIO) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    logs.configure("json", "info", Closed())
    logs.get().info("nobody reads this")
    logs.get().error("nor this")


def test_sdk_records_at_debug(stream: io.StringIO) -> None:
    """At debug the SDKs' stdlib records are lines of this log, folded and redacted."""
    logs.configure("json", "debug", stream)
    logs.route_libraries()
    logging.getLogger("azure.core.pipeline").debug("Request headers:\n 'Authorization': "
                                                   "'Bearer eyJ0eXAiOiJKV1Qi'")
    [line] = lines(stream)
    record = json.loads(line)
    assert record["logger"] == "azure.core.pipeline" and record["level"] == "debug"
    assert "\n" not in record["event"] and "eyJ0eXAi" not in record["event"]


def test_sdk_warnings_are_silent_below_debug(stream: io.StringIO,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The SDKs' own warnings (failures azwait classifies itself) are not shown, and
    logging's last-resort handler does not print them either."""
    logs.configure("json", "info", stream)
    logs.route_libraries()
    logging.getLogger("azure.identity").warning("ManagedIdentityCredential failed")
    assert lines(stream) == [] and capsys.readouterr().err == ""


def test_routing_waits_for_configure(stream: io.StringIO) -> None:
    """A client made without a configured log (a library use, a test) leaves logging alone."""
    root = logging.getLogger()
    before = root.handlers[:]
    logs.route_libraries()
    assert root.handlers == before
