"""Structured logs: one line per event, key=value fields, secrets never shown.

Formats: under journald (``JOURNAL_STREAM``) each line starts with its syslog
priority (``<3>`` for errors) and carries no timestamp of its own (the journal
stamps it); on a terminal a human console; otherwise logfmt with a timestamp;
``json`` for log shippers.

The machine formats (journal, logfmt, json) are rendered here, line for line as
structlog's renderers write them (tests/unit/test_logs.py holds the two side by
side): a boot that finds its marker writes four lines, and loading a logging
framework for them (structlog brings asyncio) would double its start-up. The
console, for a person at a terminal, keeps structlog's renderer, imported only
when chosen. Stdlib ``logging``, which only the SDKs log through, is loaded and
routed here once a client for them is made (``route_libraries``).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Callable, Optional, TextIO

from .notify import is_journal
from .redact import SECRETS

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}

Event = MutableMapping[str, Any]


def _redact(event: Event) -> Event:
    for name, value in event.items():
        if not isinstance(value, (int, float, bool)) and value is not None:
            event[name] = SECRETS.scrub(str(value))
    return event


def _readable(event: Event) -> Event:
    """Unset fields left out, lists as ``a,b``, one line per event (the SDKs' debug
    records span several)."""
    for name in [name for name, value in event.items() if value is None]:
        del event[name]
    for name, value in event.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value)
        if isinstance(value, str) and "\n" in value:
            value = " | ".join(line.strip() for line in value.splitlines() if line.strip())
        event[name] = value
    return event


class _Sink:
    """The log stream, which a closed pipe (``azwait 2>&1 | head``) must not turn into
    a failed wait: once the reader is gone, lines go nowhere."""

    def __init__(self, stream: TextIO) -> None:
        self._stream: Optional[TextIO] = stream

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._stream = None
        return len(text)

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._stream = None


def silence(stream: TextIO) -> None:
    """The reader of ``stream`` is gone (``azwait status | head``): point it at /dev/null,
    so that what was asked still counts and the flush at exit is quiet."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _utc_iso(event: Event) -> Event:
    # structlog's TimeStamper(fmt="iso", utc=True), to the character.
    event["timestamp"] = datetime.datetime.now(tz=datetime.timezone.utc).isoformat().replace(
        "+00:00", "Z")
    return event


def _logfmt(items: Iterable[tuple[str, Any]]) -> str:
    """``key=value`` pairs as structlog's LogfmtRenderer(bool_as_flag=False) writes them."""
    elements: list[str] = []
    for key, value in items:
        if any(c <= " " for c in key):
            raise ValueError(f'Invalid key: "{key}"')
        if value is None:
            elements.append(f"{key}=")
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        quoted = " " in value or "=" in value or '"' in value
        if quoted and "\\" in value:
            value = value.replace("\\", "\\\\")
        value = value.replace('"', '\\"').replace("\n", "\\n")
        elements.append(f'{key}="{value}"' if quoted else f"{key}={value}")
    return " ".join(elements)


def _journal(event: Event) -> str:
    """``<priority>event key=value`` — journald parses the prefix into PRIORITY."""
    level = str(event.pop("level", "info"))
    message = str(event.pop("event", ""))
    fields = _logfmt(event.items())
    return f"<{_PRIORITY.get(level, 6)}>{message}" + (f" {fields}" if fields else "")


def _logfmt_line(event: Event) -> str:
    _utc_iso(event)
    head = [(key, event.pop(key, None)) for key in ("timestamp", "level", "event")]
    return _logfmt([*head, *event.items()])


def _json_line(event: Event) -> str:
    _utc_iso(event)
    return json.dumps(event, default=repr)


def _console(colors: bool) -> Callable[[Event], str]:
    import structlog  # for a person at a terminal: the import is not worth avoiding

    stamp = structlog.processors.TimeStamper(fmt="%H:%M:%S")
    render = structlog.dev.ConsoleRenderer(colors=colors)

    def line(event: Event) -> str:
        name = str(event.get("level", "info"))
        return str(render(None, name, stamp(None, name, event)))

    return line


class _Setup:
    def __init__(self, render: Callable[[Event], str], level: str, stream: TextIO) -> None:
        self.render = render
        self.level = level
        self.threshold = _LEVELS[level]
        self.sink = _Sink(stream)


_setup: Optional[_Setup] = None
_routed: Optional[str] = None  # the level stdlib logging was routed for


def choose_format(requested: str, environ: Mapping[str, str], stream: TextIO) -> str:
    if requested != "auto":
        return requested
    if is_journal(stream, environ):
        return "journal"
    return "console" if stream.isatty() else "logfmt"


def configure(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Choose the format and level for every logger, once."""
    _configure(fmt, level, stream)


def _configure(fmt: str, level: str, stream: TextIO | None) -> _Setup:
    global _setup
    stream = stream or sys.stderr
    fmt = choose_format(fmt, os.environ, stream)
    render: Callable[[Event], str]
    if fmt == "journal":
        render = _journal
    elif fmt == "json":
        render = _json_line
    elif fmt == "console":
        render = _console(stream.isatty())
    else:
        render = _logfmt_line
    _setup = setup = _Setup(render, level, stream)
    if "logging" in sys.modules:  # already loaded: a library may log at any moment
        route_libraries()
    return setup


def configured() -> bool:
    return _setup is not None


def _current() -> _Setup:
    return _setup if _setup is not None else _configure("auto", "info", None)


class Logger:
    """``log.info("event", key=value)``; the setup is looked up at each call, so a
    logger made before ``configure`` follows it."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self._context = dict(context)

    def bind(self, **fields: Any) -> Logger:
        return Logger({**self._context, **fields})

    def _emit(self, level: str, event: str, args: tuple[Any, ...], fields: Any) -> None:
        setup = _current()
        if _LEVELS[level] < setup.threshold:
            return
        if args:  # logging's and structlog's printf-style arguments
            event = event % args
        record: Event = {**self._context, **fields}
        record["event"] = event
        record["level"] = level
        line = setup.render(_redact(_readable(record)))
        setup.sink.write(line + "\n")
        setup.sink.flush()

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        self._emit("debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        self._emit("info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        self._emit("warning", event, args, fields)

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        self._emit("error", event, args, fields)

    def critical(self, event: str, *args: Any, **fields: Any) -> None:
        self._emit("critical", event, args, fields)


def get(**bound: Any) -> Logger:
    return Logger(bound)


def route_libraries() -> None:
    """Route the SDKs' stdlib ``logging`` into this log; for a client that loads one,
    before its first request (a no-op until ``configure``, and when already done)."""
    global _routed
    if _setup is None or _routed == _setup.level:
        return
    import logging

    class ToLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            get().debug(record.getMessage(), logger=record.name)

    # The Azure SDKs log warnings of their own for failures azwait already
    # classifies and reports; show them only when debugging. Any handler on the
    # root also keeps logging's last-resort handler from printing raw records.
    debug = _setup.level == "debug"
    root = logging.getLogger()
    root.handlers[:] = [ToLog() if debug else logging.NullHandler()]
    root.setLevel(logging.DEBUG if debug else logging.CRITICAL)
    _routed = _setup.level
