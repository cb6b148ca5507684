"""The simulated IMDS: instance metadata, managed-identity tokens, scheduled events.

A path prefix ``/vm/<index>`` picks the VM, so one server plays a whole fleet.
"""

from __future__ import annotations

import json
import re
from typing import Any

from azwait_sim.documents import instance_document
from azwait_sim.faults import render
from azwait_sim.fleet import VM
from azwait_sim.identity import Grant, IdentityError, choose
from azwait_sim.wire import Reply, Request, json_reply, text_reply
from azwait_sim.world import World

VERSIONS = (
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2022-02-01",
    "2022-03-01",
    "2022-05-01",
    "2022-07-01",
    "2022-08-01",
    "2022-09-01",
    "2022-11-01",
    "2023-07-01",
    "2023-11-15",
)
TOKEN_VERSIONS = ("2018-02-01", "2019-08-01")
EVENT_VERSIONS = ("2017-11-01", "2019-01-01", "2019-08-01", "2020-07-01")
TOKEN_LIFETIME = 86399

_PREFIX = re.compile(r"^/vm/(\d+)(/.*)$")
_BAD_VERSION = (
    "Bad request. api-version is invalid or was not specified in the request. "
    "For more information refer to aka.ms/azureimds"
)


def _error(status: int, message: str, **extra: Any) -> Reply:
    return json_reply(status, {"error": message, **extra})


def _oauth_error(description: str) -> Reply:
    return json_reply(400, {"error": "invalid_request", "error_description": description})


def endpoint_of(path: str, method: str) -> str:
    path = path.rstrip("/")
    if path == "/metadata/versions":
        return "versions"
    if path == "/metadata/instance" or path.startswith("/metadata/instance/"):
        return "instance"
    if path == "/metadata/identity/oauth2/token":
        return "token"
    if path == "/metadata/scheduledevents":
        return "events-approve" if method == "POST" else "events"
    return "unknown"


def handle(world: World, request: Request) -> Reply:
    match = _PREFIX.match(request.path)
    index, path = (int(match[1]), match[2]) if match else (0, request.path)
    endpoint = endpoint_of(path, request.method)
    vm = world.fleet.get(index)
    if vm is None:
        return _error(404, "Not found").tag(endpoint, None)
    world.fleet.touch(vm)
    return _serve(world, vm, endpoint, path, request).tag(endpoint, vm.index)


def _serve(world: World, vm: VM, endpoint: str, path: str, request: Request) -> Reply:
    if (request.header("Metadata") or "").lower() != "true":
        if endpoint == "token":
            return _oauth_error("Required metadata header not specified")
        return _error(400, "Bad request. Required metadata header not specified")
    if request.header("X-Forwarded-For") is not None:
        return _error(400, "Bad request. Request contains X-Forwarded-For header")
    if endpoint == "unknown":
        return _error(404, "Not found")
    allowed = ("GET", "POST") if endpoint.startswith("events") else ("GET",)
    if request.method not in allowed:
        return _error(405, "Method not allowed")
    fault = world.faults.match(endpoint, vm.index, world.fleet.now(vm))
    if fault is not None and (fault.drop or fault.status):
        reply = Reply(0, drop=True) if fault.drop else render(fault, "imds")
    elif endpoint == "versions":
        reply = json_reply(200, {"apiVersions": list(VERSIONS)})
    elif endpoint == "instance":
        reply = _instance(world, vm, path, request)
    elif endpoint == "token":
        reply = _token(world, vm, request)
    else:
        reply = _events(world, vm, request)
    return reply if fault is None else fault.shape(reply)


def _instance(world: World, vm: VM, path: str, request: Request) -> Reply:
    if request.query.get("api-version") not in VERSIONS:
        return _error(400, _BAD_VERSION, **{"newest-versions": list(reversed(VERSIONS[-3:]))})
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "text"):
        return _error(400, "Bad request. Invalid format specified: must be json or text")
    node: Any = instance_document(world.scenario, vm, vm.scale_set_id)
    for part in [p for p in path[len("/metadata/instance") :].split("/") if p]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _error(404, "Not found")
    if isinstance(node, (dict, list)):
        if fmt == "json":
            return json_reply(200, node)
        names = list(node) if isinstance(node, dict) else [str(n) for n in range(len(node))]
        return text_reply(200, "\n".join(names))
    if fmt != "text":
        return _error(400, "Bad request. Leaf nodes need format=text")
    return text_reply(200, str(node))


def _token(world: World, vm: VM, request: Request) -> Reply:
    query = request.query
    if query.get("api-version") not in TOKEN_VERSIONS:
        return _oauth_error("Required query variable 'api-version' is missing or invalid")
    resource = query.get("resource")
    if not resource:
        return _oauth_error("Required audience parameter not specified")
    asked = query.get("client_id") or query.get("object_id") or query.get("msi_res_id")
    identities = world.scenario.identity
    try:
        if world.fleet.now(vm) < world.scenario.identity_until:
            # A fresh assignment has not reached the VM's host yet.
            raise IdentityError("Identity not found")
        principal = choose(identities, vm.system, query)
    except IdentityError as refusal:
        reply = _oauth_error(str(refusal.args[0]))
        reply.identity = asked
        return reply
    issued = int(world.wall())
    token = world.tokens.issue(Grant(vm.index, principal, resource))
    reply = json_reply(
        200,
        {
            "access_token": token,
            "client_id": principal.client_id,
            "expires_in": str(TOKEN_LIFETIME),
            "expires_on": str(issued + TOKEN_LIFETIME),
            "ext_expires_in": str(TOKEN_LIFETIME),
            "not_before": str(issued),
            "resource": resource,
            "token_type": "Bearer",
        },
    )
    reply.identity = principal.label
    return reply


def _events(world: World, vm: VM, request: Request) -> Reply:
    if request.query.get("api-version") not in EVENT_VERSIONS:
        return _error(400, _BAD_VERSION, **{"newest-versions": list(reversed(EVENT_VERSIONS))})
    t = world.fleet.now(vm)
    if request.method == "GET":
        return json_reply(200, world.events.document(vm.index, t, world.wall()))
    try:
        starts = json.loads(request.body or b"null")["StartRequests"]
        ids = [str(item["EventId"]) for item in starts]
    except (ValueError, KeyError, TypeError):
        return _error(400, 'Bad request. Expected {"StartRequests": [{"EventId": "..."}]}')
    unknown = world.events.approve(vm.index, t, ids)
    reply = (
        _error(400, f"Bad request. Unknown EventId: {', '.join(unknown)}")
        if unknown
        else (Reply(200, b""))
    )
    reply.event_id = ",".join(ids) or None
    return reply
