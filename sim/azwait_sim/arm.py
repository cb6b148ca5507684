"""The simulated Azure Resource Manager: ``GET <resourceId>`` for the fleet's VMs
and the Microsoft.Compute provider document.

A VM GET meets, in order: authentication (401), api-version (400), RBAC (403),
throttling (429), deletion (404), injected faults; then 200 with the state the
VM's timeline gives now.
"""

from __future__ import annotations

import math
import re
import uuid

from azwait_sim.documents import COMPUTE_VERSIONS, provider_document, vm_resource
from azwait_sim.faults import render
from azwait_sim.fleet import VM
from azwait_sim.identity import Grant
from azwait_sim.scenario import LEGACY_AUDIENCES
from azwait_sim.throttle import Verdict
from azwait_sim.wire import Reply, Request, json_reply
from azwait_sim.world import World

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_PROVIDER = re.compile(r"^/subscriptions/([^/]+)/providers/microsoft\.compute$", re.IGNORECASE)
_VM_PATH = re.compile(r"/providers/microsoft\.compute/virtualmachine", re.IGNORECASE)
_LOGIN = {
    "AzurePublicCloud": "https://login.microsoftonline.com",
    "AzureUSGovernmentCloud": "https://login.microsoftonline.us",
    "AzureChinaCloud": "https://login.chinacloudapi.cn",
}


def _error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message}})


def endpoint_of(path: str) -> str:
    if _PROVIDER.match(path):
        return "provider"
    return "arm" if _VM_PATH.search(path) else "unknown"


def handle(world: World, request: Request) -> Reply:
    path = request.path.rstrip("/") or "/"
    vm = world.fleet.find(path)
    grant, auth = _authenticate(world, request)
    if grant is not None and vm is None:
        vm = world.fleet.get(grant.vm)
    reply = _serve(world, request, path, grant, auth)
    reply.tag(endpoint_of(path), None if vm is None else vm.index)
    reply.auth = auth
    reply.identity = None if grant is None else grant.principal.label
    request_id = str(uuid.uuid4())
    reply.headers.setdefault("x-ms-request-id", request_id)
    reply.headers.setdefault("x-ms-correlation-request-id", request_id)
    return reply


def _audiences(world: World) -> set[str]:
    cloud = world.scenario.cloud
    return {world.scenario.audience.rstrip("/"), LEGACY_AUDIENCES[cloud].rstrip("/")}


def _authenticate(world: World, request: Request) -> tuple[Grant | None, str]:
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    if not token:
        return None, "none"
    grant = world.tokens.lookup(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        return None, "invalid"
    if grant.audience.rstrip("/").lower() not in {a.lower() for a in _audiences(world)}:
        return grant, "wrong-audience"
    return grant, "valid"


def _unauthorized(world: World, grant: Grant | None, auth: str) -> Reply:
    if auth == "wrong-audience" and grant is not None:
        allowed = ",".join(f"'{a}/','{a}'" for a in sorted(_audiences(world)))
        message = (
            f"The access token has been obtained for wrong audience or resource "
            f"'{grant.audience}'. It should exactly match with one of the allowed audiences "
            f"{allowed}."
        )
    elif auth == "none":
        message = "Authentication failed. The 'Authorization' header is missing."
    else:
        message = "The access token is invalid."
    reply = _error(401, "InvalidAuthenticationToken", message)
    login = _LOGIN[world.scenario.cloud]
    reply.headers["WWW-Authenticate"] = (
        f'Bearer authorization_uri="{login}/{world.scenario.tenant}", error="invalid_token", '
        f'error_description="{message}"'
    )
    return reply


def _serve(world: World, request: Request, path: str, grant: Grant | None, auth: str) -> Reply:
    if auth != "valid" or grant is None:
        return _unauthorized(world, grant, auth)
    if request.method != "GET":
        return _error(
            405, "MethodNotAllowed", f"The simulator only answers GET, not {request.method}."
        )
    version = request.query.get("api-version")
    if not version:
        return _error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _VERSION.match(version):
        return _error(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{', '.join(reversed(COMPUTE_VERSIONS))}'.",
        )
    provider = _PROVIDER.match(path)
    if provider and provider[1].lower() == world.scenario.subscription.lower():
        return json_reply(200, provider_document(world.scenario))
    vm = world.fleet.find(path)
    if vm is None:
        return _not_found(path)
    if version not in COMPUTE_VERSIONS:
        return _error(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location "
            f"'{world.scenario.location}' and API version '{version}' for type "
            f"'{_type(world)}'. The supported api-versions are "
            f"'{', '.join(reversed(COMPUTE_VERSIONS))}'.",
        )
    return _vm_get(world, vm, grant)


def _type(world: World) -> str:
    return (
        "virtualMachineScaleSets/virtualMachines"
        if world.scenario.kind == "uniform"
        else ("virtualMachines")
    )


def _not_found(path: str) -> Reply:
    parts = path.split("/")
    group = parts[4] if len(parts) > 4 else ""
    tail = "/".join(parts[6:]) if len(parts) > 6 else path
    return _error(
        404,
        "ResourceNotFound",
        f"The Resource '{tail}' under resource group '{group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def _vm_get(world: World, vm: VM, grant: Grant) -> Reply:
    sc = world.scenario
    t = world.fleet.now(vm)
    if t < sc.forbidden_until:
        oid = grant.principal.object_id
        return _error(
            403,
            "AuthorizationFailed",
            f"The client '{oid}' with object id '{oid}' does not have authorization "
            f"to perform action 'Microsoft.Compute/{_type(world)}/read' over scope "
            f"'{vm.resource_id}' or the scope is invalid. If access was recently "
            "granted, please refresh your credentials.",
        )
    verdict = world.throttle.request(grant.principal.object_id, vm.index)
    headers = verdict.headers(sc.throttle)
    if not verdict.allowed:
        reply = _throttled(world, verdict, grant)
    elif vm.deleted(t):
        reply = _not_found(vm.resource_id)
    else:
        fault = world.faults.match("arm", vm.index, t)
        if fault is not None and (fault.drop or fault.status):
            return fault.shape(Reply(0, drop=True) if fault.drop else render(fault, "arm"))
        state = world.fleet.state(vm)
        reply = json_reply(200, vm_resource(sc, vm, state, vm.scale_set_id))
        if fault is not None:
            fault.shape(reply)
    reply.headers.update(headers)
    return reply


def _throttled(world: World, verdict: Verdict, grant: Grant) -> Reply:
    seconds = verdict.retry_after or 1
    if verdict.limiter in ("arm_reads", "arm_subscription_reads"):
        reply = _error(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of 'read' requests for subscription '{world.scenario.subscription}' "
            f"actor '{grant.principal.object_id}' exceeded. Please try again after "
            f"'{seconds}' seconds after additional tokens are available. "
            "Refer to https://aka.ms/arm-throttling",
        )
    else:
        short, long = world.scenario.throttle.policies
        policy = long if verdict.limiter == "compute_subscription_30min" else short
        if verdict.limiter == "compute_vm":
            policy += "PerVM"
        reply = json_reply(
            429,
            {
                "error": {
                    "code": "OperationNotAllowed",
                    "message": "The server rejected the request because too many requests "
                    "have been received for this subscription.",
                    "details": [
                        {
                            "code": "TooManyRequests",
                            "target": policy.split("/")[-1],
                            "message": f"Retry after {math.ceil(seconds)} seconds.",
                        }
                    ],
                }
            },
        )
    reply.headers["Retry-After"] = str(seconds)
    return reply
