"""The simulator as a client sees it: real HTTP(S) on loopback, no mocks."""

from __future__ import annotations

import http.client
import json
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from azwait_sim import Scenario, Simulator

API = "api-version=2021-02-01"
ARM_API = "api-version=2024-07-01"
PUBLIC = "https://management.azure.com/"


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """urllib with no proxies (whatever the environment says) and the sim's CA."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if sim.ca_path is not None:
            context = ssl.create_default_context(cafile=str(sim.ca_path))
            context.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13 does by default
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def get(
        self, url: str, headers: dict[str, str] | None = None, data: bytes | None = None
    ) -> Answer:
        request = urllib.request.Request(url, headers=headers or {}, data=data)
        try:
            with self._opener.open(request, timeout=10) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read())

    def imds(
        self, path: str, vm: int | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        prefix = "" if vm is None else f"/vm/{vm}"
        return self.get(
            f"{self.sim.imds_url}{prefix}{path}", {"Metadata": "true", **(headers or {})}
        )

    def token(
        self,
        resource: str = PUBLIC,
        *,
        vm: int | None = None,
        selector: dict[str, str] | None = None,
    ) -> Answer:
        query = {"api-version": "2018-02-01", "resource": resource, **(selector or {})}
        path = f"/metadata/identity/oauth2/token?{urllib.parse.urlencode(query)}"
        return self.imds(path, vm=vm)

    def access_token(self, resource: str = PUBLIC, *, vm: int | None = None) -> str:
        answer = self.token(resource, vm=vm)
        assert answer.status == 200, answer.body
        token: str = answer.json["access_token"]
        return token

    def arm(self, path: str, token: str | None = None, query: str = ARM_API) -> Answer:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return self.get(f"{self.sim.arm_url}{path}?{query}", headers)

    def vm_get(self, vm: int = 0, token: str | None = None, query: str = ARM_API) -> Answer:
        token = token or self.access_token(vm=vm)
        return self.arm(self.sim.vm_info(vm)["resource_id"], token, query)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """Start a simulator for a scenario dict; stopped after the test."""
    started: list[Simulator] = []

    def make(scenario: dict[str, Any] | None = None, **options: Any) -> Client:
        options.setdefault("cert_dir", tmp_path / "certs")
        sim = Simulator(Scenario.from_dict(scenario or {}), **options).start()
        started.append(sim)
        return Client(sim)

    yield make
    for sim in started:
        sim.stop()


# --- IMDS ----------------------------------------------------------------------------


def test_metadata_header_is_required(start: Callable[..., Client]) -> None:
    """IMDS answers 400 without `Metadata: true`, like the real one."""
    c = start()
    answer = c.get(f"{c.sim.imds_url}/metadata/instance?{API}")
    assert answer.status == 400
    assert answer.json == {"error": "Bad request. Required metadata header not specified"}


def test_forwarded_requests_are_refused_and_logged(start: Callable[..., Client]) -> None:
    """X-Forwarded-For (a proxy in the way) gets 400; proxy headers are flagged in the log."""
    c = start()
    assert (
        c.imds(f"/metadata/instance?{API}", headers={"X-Forwarded-For": "10.0.0.1"}).status == 400
    )
    assert c.imds(f"/metadata/instance?{API}", headers={"Via": "1.1 squid"}).status == 200
    assert [r["proxy_headers"] for r in c.sim.requests()] == [True, True]


@pytest.mark.parametrize("query", ["", "?api-version=2099-01-01", "?api-version=latest"])
def test_instance_needs_a_known_api_version(start: Callable[..., Client], query: str) -> None:
    """A missing or unknown api-version gets 400 listing the newest versions."""
    answer = start().imds(f"/metadata/instance{query}")
    assert answer.status == 400
    assert "api-version is invalid" in answer.json["error"]
    assert "2023-07-01" in answer.json["newest-versions"]


@pytest.mark.parametrize("version", ["2019-06-01", "2021-02-01", "2021-08-01", "2021-12-13"])
def test_instance_document_has_the_fields_agents_use(
    start: Callable[..., Client], version: str
) -> None:
    """compute carries resourceId, vmId, azEnvironment and friends for each pinned version."""
    c = start()
    compute = c.imds(f"/metadata/instance?api-version={version}").json["compute"]
    info = c.sim.vm_info()
    assert compute["resourceId"] == info["resource_id"]
    assert compute["vmId"] == info["vm_id"]
    assert compute["azEnvironment"] == "AzurePublicCloud"
    assert compute["vmScaleSetName"] == "vmss-azwait"
    assert compute["virtualMachineScaleSet"] == {"id": ""}
    assert compute["subscriptionId"] in compute["resourceId"]


def test_versions_lists_supported_api_versions(start: Callable[..., Client]) -> None:
    """/metadata/versions needs no api-version and lists the pinned ones."""
    versions = start().imds("/metadata/versions").json["apiVersions"]
    assert {"2019-06-01", "2021-02-01", "2021-08-01", "2021-12-13", "2023-07-01"} <= set(versions)


def test_leaves_need_format_text(start: Callable[..., Client]) -> None:
    """A leaf answers its bare value with format=text and 400 without it."""
    c = start()
    leaf = c.imds(f"/metadata/instance/compute/vmId?{API}&format=text")
    assert leaf.status == 200 and leaf.body.decode() == c.sim.vm_info()["vm_id"]
    assert leaf.headers["Content-Type"].startswith("text/plain")
    assert c.imds(f"/metadata/instance/compute/vmId?{API}").status == 400
    subtree = c.imds(f"/metadata/instance/compute/osProfile?{API}")
    assert subtree.json["computerName"]
    assert c.imds(f"/metadata/instance/compute/nothing?{API}&format=text").status == 404


def test_flex_instance_reports_its_scale_set(start: Callable[..., Client]) -> None:
    """A Flexible member has a …/virtualMachines/NAME id and virtualMachineScaleSet.id."""
    c = start({"kind": "flex"})
    compute = c.imds(f"/metadata/instance?{API}").json["compute"]
    assert "/providers/Microsoft.Compute/virtualMachines/vmss-azwait_" in compute["resourceId"]
    assert compute["virtualMachineScaleSet"]["id"].endswith("/virtualMachineScaleSets/vmss-azwait")
    assert compute["vmScaleSetName"] == "vmss-azwait"


def test_vm_prefix_selects_the_vm(start: Callable[..., Client]) -> None:
    """/vm/<i> serves VM i's metadata and is logged as that VM; an unknown index is 404."""
    c = start({"vms": 3})
    name = c.imds(f"/metadata/instance/compute/name?{API}&format=text", vm=2)
    assert name.body == b"vmss-azwait_2"
    assert c.imds(f"/metadata/instance?{API}", vm=7).status == 404
    assert [r["vm"] for r in c.sim.requests()] == [2, None]


# --- tokens --------------------------------------------------------------------------


def test_token_looks_like_imds(start: Callable[..., Client]) -> None:
    """A token answer has IMDS's fields, all strings, and a fresh token each time."""
    c = start()
    first, second = c.token().json, c.token().json
    assert first["token_type"] == "Bearer" and first["resource"] == PUBLIC
    assert all(isinstance(first[k], str) for k in ("expires_in", "expires_on", "not_before"))
    assert int(first["expires_on"]) > time.time() + 80000
    assert first["access_token"] != second["access_token"]
    assert c.sim.issued_tokens() == [first["access_token"], second["access_token"]]


def test_no_identity_is_identity_not_found(start: Callable[..., Client]) -> None:
    """Without any managed identity the token endpoint answers 400 Identity not found."""
    answer = start({"identity": "none"}).token()
    assert answer.status == 400
    assert answer.json == {"error": "invalid_request", "error_description": "Identity not found"}


def test_user_identity_by_each_selector(start: Callable[..., Client]) -> None:
    """client_id, object_id and msi_res_id each pick the user identity; others are 400."""
    user = {"client_id": "c-1", "object_id": "o-1", "resource_id": "/subscriptions/x/id-1"}
    c = start({"identity": {"system": True, "user": [user]}})
    for name, value in [
        ("client_id", "c-1"),
        ("object_id", "o-1"),
        ("msi_res_id", "/subscriptions/x/id-1"),
    ]:
        assert c.token(selector={name: value}).json["client_id"] == "c-1"
    assert c.token(selector={"client_id": "other"}).status == 400
    assert c.token().json["client_id"] != "c-1"  # no selector: the system identity
    assert [r["identity"] for r in c.sim.requests()] == ["c-1", "c-1", "c-1", "other", "system"]


def test_only_user_identity_is_the_default(start: Callable[..., Client]) -> None:
    """With no system identity and one user identity, IMDS hands out that one unasked."""
    assert start({"identity": [{"client_id": "c-1"}]}).token().json["client_id"] == "c-1"
    two = start({"identity": [{"client_id": "c-1"}, {"client_id": "c-2"}]}).token()
    assert two.status == 400 and "Multiple user assigned" in two.json["error_description"]


def test_identity_until_delays_the_identity(start: Callable[..., Client]) -> None:
    """identity_until: Identity not found until the VM clock passes it."""
    c = start({"identity_until": 0.4})
    assert c.token().status == 400
    time.sleep(0.45)
    assert c.token().status == 200


# --- ARM -----------------------------------------------------------------------------


def test_arm_get_follows_the_timeline(start: Callable[..., Client]) -> None:
    """ARM gives the state of the timeline now; set_state flips it by hand."""
    c = start({"states": [["Creating", 0], ["Succeeded", 3600]]})
    token = c.access_token()
    first = c.vm_get(token=token)
    assert first.status == 200
    body = first.json
    assert body["properties"]["provisioningState"] == "Creating"
    assert body["type"] == "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
    assert body["properties"]["vmId"] == c.sim.vm_info()["vm_id"]
    c.sim.set_state("Succeeded")
    assert c.vm_get(token=token).json["properties"]["provisioningState"] == "Succeeded"


def test_arm_headers_carry_the_remaining_budget(start: Callable[..., Client]) -> None:
    """Every VM GET reports remaining reads, Compute's windows and a request id."""
    c = start()
    answer = c.vm_get()
    assert answer.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert answer.headers["x-ms-ratelimit-remaining-resource"].startswith(
        "Microsoft.Compute/GetVMScaleSetVM3Min;5999,Microsoft.Compute/GetVMScaleSetVM30Min;"
    )
    assert answer.headers["x-ms-request-id"]


@pytest.mark.parametrize(
    ("token", "auth"), [(None, "none"), ("forged", "invalid"), ("vault", "wrong-audience")]
)
def test_arm_401_without_a_valid_token(
    start: Callable[..., Client], token: str | None, auth: str
) -> None:
    """No token, a token the sim never issued, or one for another audience: 401."""
    c = start()
    if token == "vault":
        token = c.access_token("https://vault.azure.net")
    answer = c.arm(c.sim.vm_info()["resource_id"], token)
    assert answer.status == 401
    assert answer.json["error"]["code"] == "InvalidAuthenticationToken"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    assert c.sim.requests()[-1]["auth"] == auth


def test_sovereign_cloud_audience(start: Callable[..., Client]) -> None:
    """In AzureUSGovernmentCloud only a usgovcloudapi token is accepted."""
    c = start({"cloud": "AzureUSGovernmentCloud"})
    assert c.imds(f"/metadata/instance?{API}").json["compute"]["azEnvironment"] == (
        "AzureUSGovernmentCloud"
    )
    assert c.vm_get(token=c.access_token(PUBLIC)).status == 401
    gov = c.access_token("https://management.usgovcloudapi.net")  # trailing slash optional
    assert c.vm_get(token=gov).status == 200


def test_arm_403_until_the_role_propagates(start: Callable[..., Client]) -> None:
    """rbac.forbidden_until: 403 AuthorizationFailed naming the principal and scope, then 200."""
    c = start({"rbac": {"forbidden_until": 0.4}})
    token = c.access_token()
    denied = c.vm_get(token=token)
    assert denied.status == 403
    error = denied.json["error"]
    assert error["code"] == "AuthorizationFailed"
    assert c.sim.vm_info()["resource_id"] in error["message"]
    time.sleep(0.45)
    assert c.vm_get(token=token).status == 200


def test_arm_429_with_retry_after(start: Callable[..., Client]) -> None:
    """An empty per-VM bucket gives 429 with Retry-After and the budget headers."""
    c = start({"throttle": {"compute_vm": {"burst": 2, "per_min": 6}}})
    token = c.access_token()
    statuses = [c.vm_get(token=token).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = c.vm_get(token=token)
    assert refused.headers["Retry-After"] == "10"
    assert "x-ms-ratelimit-remaining-resource" in refused.headers
    assert c.sim.requests()[-1]["retry_after"] == 10


def test_deleted_vm_is_404(start: Callable[..., Client]) -> None:
    """After deleted_after ARM answers 404 ResourceNotFound for the VM."""
    c = start({"deleted_after": 0})
    answer = c.vm_get()
    assert answer.status == 404 and answer.json["error"]["code"] == "ResourceNotFound"


def test_unknown_resource_is_404(start: Callable[..., Client]) -> None:
    """A VM the scenario does not have is 404."""
    c = start()
    other = c.sim.vm_info()["resource_id"][:-1] + "9"
    assert c.arm(other, c.access_token()).status == 404


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "MissingApiVersionParameter"),
        ("api-version=latest", "InvalidApiVersionParameter"),
        ("api-version=2022-09-01", "NoRegisteredProviderFound"),  # a Resources version
    ],
)
def test_arm_api_version_rules(start: Callable[..., Client], query: str, code: str) -> None:
    """The api-version must be present, well-formed and one Microsoft.Compute has."""
    answer = start().vm_get(query=query)
    assert answer.status == 400 and answer.json["error"]["code"] == code


def test_provider_document(start: Callable[..., Client]) -> None:
    """GET …/providers/Microsoft.Compute lists resource types and their api-versions."""
    c = start()
    sub = c.sim.scenario.subscription
    body = c.arm(
        f"/subscriptions/{sub}/providers/Microsoft.Compute",
        c.access_token(),
        "api-version=2021-04-01",
    ).json
    assert body["namespace"] == "Microsoft.Compute"
    types = {t["resourceType"]: t["apiVersions"] for t in body["resourceTypes"]}
    assert "2024-07-01" in types["virtualMachines"]
    assert c.sim.requests()[-1]["endpoint"] == "provider"


def test_arm_keeps_connections_alive(start: Callable[..., Client]) -> None:
    """Two GETs go over one TLS connection (HTTP/1.1 with Content-Length)."""
    c = start()
    token = c.access_token()
    context = ssl.create_default_context(cafile=str(c.sim.ca_path))
    port = urllib.parse.urlsplit(c.sim.arm_url).port
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    path = f"{c.sim.vm_info()['resource_id']}?{ARM_API}"
    for _ in range(2):
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())
    assert conn.sock is not None  # still the same, open socket
    conn.close()


# --- faults --------------------------------------------------------------------------


def test_fault_count_then_normal(start: Callable[..., Client]) -> None:
    """count: only the first n matching requests are faulted."""
    c = start({"faults": [{"endpoint": "token", "status": 500, "count": 2}]})
    assert [c.token().status for _ in range(3)] == [500, 500, 200]


def test_html_fault_with_retry_after(start: Callable[..., Client]) -> None:
    """An HTML error page (a gateway's) with a Retry-After header."""
    c = start({"faults": [{"endpoint": "arm", "status": 503, "body": "html", "retry_after": 7}]})
    answer = c.vm_get()
    assert answer.status == 503 and answer.body.startswith(b"<html>")
    assert answer.headers["Content-Type"] == "text/html"
    assert answer.headers["Retry-After"] == "7"


def test_fault_window_on_the_vm_clock(start: Callable[..., Client]) -> None:
    """A fault with start/end applies only inside that window of the VM's clock."""
    c = start({"faults": [{"endpoint": "instance", "status": 410, "start": 0.3, "end": 0.6}]})
    path = f"/metadata/instance?{API}"
    assert c.imds(path).status == 200
    time.sleep(0.35)
    assert c.imds(path).status == 410
    time.sleep(0.3)
    assert c.imds(path).status == 200


def test_dropped_connection(start: Callable[..., Client]) -> None:
    """drop: the connection closes with no response; the log says status 0."""
    c = start({"faults": [{"endpoint": "instance", "drop": True, "count": 1}]})
    port = urllib.parse.urlsplit(c.sim.imds_url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", f"/metadata/instance?{API}", headers={"Metadata": "true"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        conn.getresponse()
    conn.close()
    assert c.imds(f"/metadata/instance?{API}").status == 200
    assert [r["status"] for r in c.sim.requests()] == [0, 200]


def test_delay_then_normal_answer(start: Callable[..., Client]) -> None:
    """delay alone slows the real answer down."""
    c = start({"faults": [{"endpoint": "versions", "delay": 0.3}]})
    began = time.monotonic()
    answer = c.imds("/metadata/versions")
    assert answer.status == 200 and time.monotonic() - began >= 0.3


# --- scheduled events ----------------------------------------------------------------


def test_scheduled_events_approve(start: Callable[..., Client]) -> None:
    """An event for this VM is listed, approved by EventId, then gone with a new incarnation."""
    c = start({"events": [{"at": 0, "type": "Preempt"}]})
    url = "/metadata/scheduledevents?api-version=2020-07-01"
    doc = c.imds(url).json
    (event,) = doc["Events"]
    assert event["EventType"] == "Preempt" and event["Resources"] == [c.sim.vm_info()["name"]]
    assert event["EventStatus"] == "Scheduled" and event["NotBefore"].endswith(" GMT")
    body = json.dumps({"StartRequests": [{"EventId": event["EventId"]}]}).encode()
    assert c.get(c.sim.imds_url + url, {"Metadata": "true"}, body).status == 200
    after = c.imds(url).json
    assert after["Events"] == [] and after["DocumentIncarnation"] > doc["DocumentIncarnation"]
    approval = c.sim.requests()[1]
    assert (approval["endpoint"], approval["event_id"]) == ("events-approve", event["EventId"])
    unknown = json.dumps({"StartRequests": [{"EventId": "nope"}]}).encode()
    assert c.get(c.sim.imds_url + url, {"Metadata": "true"}, unknown).status == 400


# --- request log, clocks, TLS --------------------------------------------------------


def test_log_never_holds_a_token(start: Callable[..., Client], tmp_path: Path) -> None:
    """Neither the in-memory log nor the JSON-lines file ever contains an access token."""
    log = tmp_path / "requests.jsonl"
    c = start(log_path=log)
    token = c.access_token()
    c.vm_get(token=token)
    c.arm(c.sim.vm_info()["resource_id"], token, f"{ARM_API}&access_token={token}")
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["auth"] == "valid"
    assert token not in log.read_text()
    assert token not in json.dumps(c.sim.requests())


def test_first_request_clock(start: Callable[..., Client]) -> None:
    """clock=first-request: a VM's clock stands at 0 until its first IMDS request."""
    c = start({"clock": "first-request", "vms": 2})
    time.sleep(0.2)
    assert c.sim.now(0) == 0.0
    c.imds("/metadata/versions")
    time.sleep(0.1)
    assert 0.1 <= c.sim.now(0) < 0.2 and c.sim.now(1) == 0.0


def test_certificates_are_strict_and_reused(tmp_path: Path) -> None:
    """The CA in cert_dir is reused by the next start; keys are 0600; 127.0.0.1 verifies."""
    certs = tmp_path / "certs"
    with Simulator(Scenario.from_dict({}), cert_dir=certs) as sim:
        first_ca = certs.joinpath("ca.pem").read_bytes()
        context = ssl.create_default_context(cafile=str(sim.ca_path))
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        port = urllib.parse.urlsplit(sim.arm_url).port
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 401
        conn.close()
    with Simulator(Scenario.from_dict({}), cert_dir=certs):
        assert certs.joinpath("ca.pem").read_bytes() == first_ca
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE(certs.joinpath(key).stat().st_mode) == 0o600


def test_plain_http_arm(start: Callable[..., Client]) -> None:
    """tls=False serves ARM over http on the given host, with no CA."""
    c = start(tls=False)
    assert c.sim.ca_path is None and c.sim.arm_url.startswith("http://127.0.0.1:")
    assert c.vm_get().status == 200


def test_stop_closes_kept_alive_connections(start: Callable[..., Client]) -> None:
    """After stop() a kept-alive connection gets no more answers."""
    c = start(tls=False)
    port = urllib.parse.urlsplit(c.sim.imds_url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metadata/versions", headers={"Metadata": "true"})
    assert conn.getresponse().read()
    c.sim.stop()
    with pytest.raises((OSError, http.client.HTTPException)):
        conn.request("GET", "/metadata/versions", headers={"Metadata": "true"})
        conn.getresponse()
    conn.close()
