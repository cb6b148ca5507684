"""The VM's managed identity: a token for ARM from this VM's IMDS, classified for the wait policy.

On a VM a managed-identity token is one GET to IMDS's token endpoint: the request
azure-identity's ManagedIdentityCredential makes there, through MSAL. azwait makes
it itself, with the same parameters, because ``import azure.identity`` loads every
credential the package has, and MSAL, PyJWT and cryptography with them: more
start-up time and memory than the rest of the Azure SDK together (about 0.1 s and
13 MB of a 50 MB agent).
"""

from __future__ import annotations

import time
from typing import Any, Optional

import requests
from azure.core.credentials import AccessToken

from . import logs
from .deadline import call_within
from .imds import session
from .redact import SECRETS
from .transient import Kind, Transient, parse_retry_after

PATH = "/metadata/identity/oauth2/token"
API_VERSION = "2018-02-01"  # what azure-identity and MSAL ask for
CONNECT_TIMEOUT = 2.0
# A token is used again until this close to its expiry, as azure-identity and the ARM
# pipeline refresh it (IMDS tokens live for hours: one wait needs one).
REFRESH_MARGIN = 300.0


def _resource(scopes: tuple[str, ...]) -> str:
    """The v1 resource IMDS wants for the one v2 scope asked for, as azure-identity
    converts it (``https://management.azure.com/.default`` → ``https://management.azure.com``)."""
    if len(scopes) != 1:
        raise ValueError("a managed-identity token is for exactly one scope")
    scope = scopes[0]
    return scope[:-len("/.default")] if scope.endswith("/.default") else scope


class Identity:
    """A token source for ARM whose failures come out as ``Transient`` kinds.

    It asks ``imds_endpoint`` (this VM's IMDS) and nothing else: the variables that
    point azure-identity at other token sources (App Service's IDENTITY_ENDPOINT,
    MSI_ENDPOINT, workload identity, AZURE_POD_IDENTITY_AUTHORITY_HOST) mean nothing
    here, so the worker keeps them and azwait still gates on the VM's own identity.
    No retries of its own (the wait policy owns all retrying and timing), and never
    through HTTP(S)_PROXY: IMDS is link-local.
    """

    def __init__(self, selector: Optional[tuple[str, str]], imds_endpoint: str,
                 timeout: float = 5.0) -> None:
        self.kind = "system-assigned" if selector is None else f"user-assigned ({selector[0]})"
        self.longest = timeout
        self.timeout = timeout  # for the next token request: narrowed to fit an ARM read's
        self._selector = {selector[0]: selector[1]} if selector is not None else {}
        self._url = imds_endpoint.rstrip("/") + PATH
        self._http = session()
        self._tokens: dict[str, AccessToken] = {}  # resource -> its last token; never a failure
        logs.route_libraries()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A token for ``scopes`` (one); ``kwargs`` (claims, tenant_id) mean nothing to IMDS."""
        resource = _resource(scopes)
        cached = self._tokens.get(resource)
        if cached is not None and cached.expires_on - time.time() > REFRESH_MARGIN:
            return cached
        params = {"api-version": API_VERSION, "resource": resource, **self._selector}
        limit = self.timeout
        asked = time.time()
        try:
            response = call_within(
                limit,
                lambda: Transient(Kind.IMDS, "IMDS token endpoint did not answer in full "
                                          f"within {limit:.3g}s"),
                self._http.get, self._url, params=params,
                timeout=(min(CONNECT_TIMEOUT, limit), limit), allow_redirects=False)
        except requests.RequestException:
            raise Transient(Kind.IMDS, "IMDS token endpoint unreachable") from None
        status = response.status_code
        if status != 200:
            raise _refusal(status, response.headers.get("Retry-After"))
        token = _token(response, asked)
        SECRETS.add(token.token)
        self._tokens[resource] = token
        return token


def _token(response: Any, asked: float) -> AccessToken:
    try:
        body = response.json()
        token = body["access_token"]
        # Counted on this VM's clock, as azure-identity counts it: IMDS's clock and
        # the VM's may disagree at boot, and the ARM pipeline refreshes by the VM's.
        lifetime = body.get("expires_in")
        expires_on = int(asked) + int(lifetime) if lifetime else int(body["expires_on"])
    except (ValueError, TypeError, KeyError, AttributeError):  # not JSON, or not a token
        raise Transient(Kind.RETRY, "IMDS token endpoint answered 200 without a token") from None
    if not isinstance(token, str) or not token:
        raise Transient(Kind.RETRY, "IMDS token endpoint answered 200 without a token")
    return AccessToken(token, expires_on)


def _refusal(status: int, retry_after: Optional[str]) -> Transient:
    if status in (400, 403):
        return Transient(Kind.IDENTITY,
                         f"no managed identity: IMDS token endpoint answered {status}")
    return Transient(Kind.RETRY, f"IMDS token endpoint answered {status}",
                     parse_retry_after(retry_after))
