"""Structured logs: one line per event, key=value fields, secrets never shown.

Formats: under journald (``JOURNAL_STREAM``) each line starts with its syslog
priority (``<3>`` for errors) and carries no timestamp of its own (the journal
stamps it); on a terminal a human console; otherwise logfmt with a timestamp;
``json`` for log shippers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Optional, TextIO, cast

import structlog

from .notify import is_journal
from .redact import SECRETS

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name, value in event.items():
        if not isinstance(value, (int, float, bool)) and value is not None:
            event[name] = SECRETS.scrub(str(value))
    return event


def _readable(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
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


class _JournalRenderer:
    """``<priority>event key=value`` — journald parses the prefix into PRIORITY."""

    def __init__(self) -> None:
        self._fields = structlog.processors.LogfmtRenderer(bool_as_flag=False)

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        level = str(event.pop("level", name))
        message = str(event.pop("event", ""))
        fields = self._fields(logger, name, event) if event else ""
        return f"<{_PRIORITY.get(level, 6)}>{message}" + (f" {fields}" if fields else "")


def choose_format(requested: str, environ: Mapping[str, str], stream: TextIO) -> str:
    if requested != "auto":
        return requested
    if is_journal(stream, environ):
        return "journal"
    return "console" if stream.isatty() else "logfmt"


def configure(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog (and route the SDKs' stdlib logging through it) once."""
    stream = stream or sys.stderr
    fmt = choose_format(fmt, os.environ, stream)
    processors: list[Any] = [structlog.processors.add_log_level, _readable, _redact]
    if fmt == "journal":
        processors.append(_JournalRenderer())
    elif fmt == "json":
        processors += [structlog.processors.TimeStamper(fmt="iso", utc=True),
                       structlog.processors.JSONRenderer(sort_keys=False)]
    elif fmt == "console":
        processors += [structlog.processors.TimeStamper(fmt="%H:%M:%S"),
                       structlog.dev.ConsoleRenderer(colors=stream.isatty())]
    else:
        processors += [structlog.processors.TimeStamper(fmt="iso", utc=True),
                       structlog.processors.LogfmtRenderer(
                           key_order=["timestamp", "level", "event"], bool_as_flag=False)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Sink(stream))),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(level)


class _ToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        structlog.get_logger().debug(record.getMessage(), logger=record.name)


def _route_stdlib(level: str) -> None:
    # The Azure SDKs log warnings of their own for failures azwait already
    # classifies and reports; show them only when debugging. Any handler on the
    # root also keeps logging's last-resort handler from printing raw records.
    root = logging.getLogger()
    root.handlers[:] = [_ToStructlog() if level == "debug" else logging.NullHandler()]
    root.setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)


def get(**bound: Any) -> Any:
    return structlog.get_logger(**bound)
