"""The managed-identity token: one GET to this VM's IMDS, never through a proxy, its
failures classified for the wait policy (a stub IMDS on loopback)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from azwait.identity import REFRESH_MARGIN, Identity
from azwait.redact import SECRETS
from azwait.transient import Kind, Transient

ARM_SCOPE = "https://management.azure.com/.default"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload.signature"


class StubImds:
    """Answers token requests from ``replies`` (status, headers, body), the last one
    repeated, and keeps what each request asked."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, str], Any]] = []
        self.seen: list[tuple[str, dict[str, str], dict[str, str]]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                stub.seen.append((url.path, dict(urllib.parse.parse_qsl(url.query)),
                                  dict(self.headers)))
                status, headers, body = (stub.replies or [(500, {}, "")])[
                    min(len(stub.seen), len(stub.replies)) - 1]
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def token(self, expires_in: Optional[int] = 3600, **extra: Any) -> None:
        body: dict[str, Any] = {"access_token": TOKEN, "token_type": "Bearer",
                                "resource": "https://management.azure.com", **extra}
        if expires_in is not None:
            body["expires_in"] = str(expires_in)
        self.replies.append((200, {"Content-Type": "application/json"}, body))


@pytest.fixture
def imds() -> Iterator[StubImds]:
    stub = StubImds()
    thread = threading.Thread(target=stub.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def closed_port_url() -> str:
    with socket.socket() as closed:  # a port that refuses connections
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}"


def test_a_token_from_this_vms_imds(imds: StubImds) -> None:
    imds.token(expires_in=3600)
    asked = time.time()
    token = Identity(None, imds.url).get_token(ARM_SCOPE)
    assert token.token == TOKEN
    assert asked + 3600 - 2 <= token.expires_on <= time.time() + 3600
    [(path, query, headers)] = imds.seen
    assert path == "/metadata/identity/oauth2/token"
    # The v1 resource for the v2 scope, as azure-identity asks for it; no identity named.
    assert query == {"api-version": "2018-02-01", "resource": "https://management.azure.com"}
    assert headers.get("Metadata") == "true"
    assert SECRETS.scrub(f"token {TOKEN}") == "token [REDACTED]"


@pytest.mark.parametrize("param,value", [
    ("client_id", "11111111-2222-3333-4444-555555555555"),
    ("object_id", "66666666-7777-8888-9999-000000000000"),
    ("msi_res_id", "/subscriptions/s/resourceGroups/g/providers/"
                   "Microsoft.ManagedIdentity/userAssignedIdentities/id"),
])
def test_a_user_assigned_identity_is_named(imds: StubImds, param: str, value: str) -> None:
    imds.token()
    identity = Identity((param, value), imds.url)
    identity.get_token(ARM_SCOPE)
    assert identity.kind == f"user-assigned ({param})"
    assert imds.seen[0][1][param] == value


def test_expires_on_when_no_lifetime_is_given(imds: StubImds) -> None:
    imds.token(expires_in=None, expires_on="1900000000")
    assert Identity(None, imds.url).get_token(ARM_SCOPE).expires_on == 1900000000


def test_a_token_is_used_again_until_near_its_expiry(imds: StubImds) -> None:
    """As azure-identity caches per credential: one IMDS request for a wait's token;
    a failure is never kept, and a token within REFRESH_MARGIN of expiry is renewed."""
    imds.replies.append((500, {}, ""))
    imds.token(expires_in=3600)
    identity = Identity(None, imds.url)
    with pytest.raises(Transient):
        identity.get_token(ARM_SCOPE)
    first = identity.get_token(ARM_SCOPE)
    assert identity.get_token(ARM_SCOPE) is first
    assert len(imds.seen) == 2

    imds.replies.clear()
    imds.seen.clear()
    imds.token(expires_in=int(REFRESH_MARGIN) - 1)  # every answer now: nearly expired
    soon = Identity(None, imds.url)
    soon.get_token(ARM_SCOPE)
    soon.get_token(ARM_SCOPE)
    assert len(imds.seen) == 2


@pytest.mark.parametrize("status,headers,body,kind,retry_after,says", [
    (400, {}, {"error": "invalid_request", "error_description": "Identity not found"},
     Kind.IDENTITY, None, "no managed identity: IMDS token endpoint answered 400"),
    (403, {}, "", Kind.IDENTITY, None, "answered 403"),
    (429, {"Retry-After": "7"}, "", Kind.RETRY, 7.0, "IMDS token endpoint answered 429"),
    (500, {}, "", Kind.RETRY, None, "answered 500"),
    (503, {"Retry-After": "2"}, "<html>busy</html>", Kind.RETRY, 2.0, "answered 503"),
    (404, {}, "", Kind.RETRY, None, "answered 404"),
    (410, {}, "", Kind.RETRY, None, "answered 410"),
    (200, {}, "not json", Kind.RETRY, None, "answered 200 without a token"),
    (200, {}, {"error": "what"}, Kind.RETRY, None, "answered 200 without a token"),
    (200, {}, ["a list"], Kind.RETRY, None, "answered 200 without a token"),
    (200, {}, {"access_token": "", "expires_in": "5"}, Kind.RETRY, None, "without a token"),
    (200, {}, {"access_token": "x" * 20, "expires_in": "soon"}, Kind.RETRY, None,
     "without a token"),
])
def test_failures_are_classified(imds: StubImds, status: int, headers: dict[str, str],
                                 body: Any, kind: Kind, retry_after: Optional[float],
                                 says: str) -> None:
    imds.replies.append((status, headers, body))
    with pytest.raises(Transient) as failure:
        Identity(None, imds.url).get_token(ARM_SCOPE)
    assert failure.value.kind is kind and failure.value.retry_after == retry_after
    assert says in failure.value.reason


def test_unreachable_is_imds_weather() -> None:
    with pytest.raises(Transient) as failure:
        Identity(None, closed_port_url()).get_token(ARM_SCOPE)
    assert failure.value.kind is Kind.IMDS and "unreachable" in failure.value.reason


def test_never_through_a_proxy(imds: StubImds, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = closed_port_url()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    imds.token()
    assert Identity(None, imds.url).get_token(ARM_SCOPE).token == TOKEN


def test_other_token_sources_in_the_environment_are_not_asked(
        imds: StubImds, monkeypatch: pytest.MonkeyPatch) -> None:
    """App Service's, Arc's and pod identity's variables point azure-identity elsewhere;
    azwait gates on this VM's identity and asks the IMDS it was given."""
    elsewhere = closed_port_url()
    for name in ("IDENTITY_ENDPOINT", "MSI_ENDPOINT", "IMDS_ENDPOINT",
                 "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        monkeypatch.setenv(name, elsewhere)
    monkeypatch.setenv("IDENTITY_HEADER", "secret")
    imds.token()
    assert Identity(None, imds.url + "/").get_token(ARM_SCOPE).token == TOKEN
    assert len(imds.seen) == 1 and imds.seen[0][0] == "/metadata/identity/oauth2/token"
