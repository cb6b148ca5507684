"""Injected failures: wrong status codes, HTML error pages, slow answers, bodies
trickled a byte at a time, dropped connections, on chosen endpoints during chosen
windows of a VM's clock."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from azwait_sim import spec
from azwait_sim.wire import Reply, json_reply, text_reply

# "events" covers reading and approving; "events-approve" the approvals alone.
ENDPOINTS = ("instance", "versions", "token", "arm", "events", "events-approve")
BODIES = ("json", "html", "text", "empty")
_KEYS = (
    "endpoint",
    "start",
    "end",
    "count",
    "status",
    "retry_after",
    "body",
    "delay",
    "trickle",
    "drop",
    "vms",
)


@dataclass(frozen=True)
class Fault:
    endpoint: str
    start: float = 0.0
    end: float | None = None
    count: int | None = None
    status: int | None = None
    retry_after: float | None = None
    body: str = "json"
    delay: float = 0.0
    # Seconds between the body's bytes, sent after prompt headers: a server that
    # never lets a client's idle (per-read) timeout fire.
    trickle: float = 0.0
    drop: bool = False
    vms: tuple[int, ...] | None = None

    def shape(self, reply: Reply) -> Reply:
        """Apply the fault's timing to ``reply`` (status faults are rendered first)."""
        reply.delay, reply.trickle = self.delay, self.trickle
        return reply

    def covers(self, endpoint: str, vm: int, t: float) -> bool:
        # Approvals are POSTs to the scheduled events URL: the same endpoint to a user.
        family = "events" if endpoint == "events-approve" else endpoint
        return (
            self.endpoint in (endpoint, family)
            and self.start <= t
            and (self.end is None or t < self.end)
            and (self.vms is None or vm in self.vms)
        )


def _fault(value: Any, where: str, vms: int) -> Fault:
    data = spec.mapping(value, where, _KEYS)
    if "endpoint" not in data:
        raise spec.fail(spec.key(where, "endpoint"), f"required, one of {', '.join(ENDPOINTS)}")
    count = data.get("count")
    status = data.get("status")
    fault = Fault(
        endpoint=spec.choice(data["endpoint"], spec.key(where, "endpoint"), ENDPOINTS),
        start=spec.number(data.get("start", 0), spec.key(where, "start")),
        end=spec.optional_number(data.get("end"), spec.key(where, "end")),
        count=None if count is None else spec.integer(count, spec.key(where, "count"), minimum=1),
        status=None
        if status is None
        else spec.integer(status, spec.key(where, "status"), minimum=100, maximum=599),
        retry_after=spec.optional_number(data.get("retry_after"), spec.key(where, "retry_after")),
        body=spec.choice(data.get("body", "json"), spec.key(where, "body"), BODIES),
        delay=spec.number(data.get("delay", 0), spec.key(where, "delay"), maximum=3600),
        trickle=spec.number(data.get("trickle", 0), spec.key(where, "trickle"), maximum=3600),
        drop=spec.boolean(data.get("drop", False), spec.key(where, "drop")),
        vms=spec.vm_list(data.get("vms"), spec.key(where, "vms"), vms),
    )
    if fault.status is None and not fault.drop and not fault.delay and not fault.trickle:
        raise spec.fail(where, "needs at least one of status, drop, delay or trickle")
    if fault.end is not None and fault.end < fault.start:
        raise spec.fail(spec.key(where, "end"), f"{fault.end:g} is before start {fault.start:g}")
    return fault


def parse_faults(value: Any, where: str, vms: int) -> tuple[Fault, ...]:
    items = spec.array([] if value is None else value, where)
    return tuple(_fault(item, f"{where}[{n}]", vms) for n, item in enumerate(items))


class FaultBook:
    """Finds the fault a request meets; ``count`` is spent per VM."""

    def __init__(self, faults: tuple[Fault, ...]) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._spent: dict[tuple[int, int], int] = {}

    def match(self, endpoint: str, vm: int, t: float) -> Fault | None:
        with self._lock:
            for n, fault in enumerate(self.faults):
                if not fault.covers(endpoint, vm, t):
                    continue
                spent = self._spent.get((n, vm), 0)
                if fault.count is not None and spent >= fault.count:
                    continue
                self._spent[(n, vm)] = spent + 1
                return fault
        return None


def render(fault: Fault, flavour: str) -> Reply:
    """The reply a status fault gives; ``flavour`` "imds" or "arm" shapes the JSON."""
    status = fault.status or 500
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    if fault.body == "html":
        # What a proxy or gateway in the way answers with.
        page = (
            f"<html><head><title>{status} {phrase}</title></head><body>"
            f"<center><h1>{status} {phrase}</h1></center><hr><center>nginx</center>"
            "</body></html>"
        )
        reply = text_reply(status, page, "text/html")
    elif fault.body == "text":
        reply = text_reply(status, f"{status} {phrase}")
    elif fault.body == "empty":
        reply = Reply(status, b"", "application/json")
    elif flavour == "arm":
        code = phrase.replace(" ", "")
        reply = json_reply(status, {"error": {"code": code, "message": f"{phrase} (injected)"}})
    else:
        reply = json_reply(status, {"error": phrase})
    if fault.retry_after is not None:
        reply.headers["Retry-After"] = str(math.ceil(fault.retry_after))
    return reply
