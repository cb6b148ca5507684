"""The VM's managed identity, through azure-identity, classified for the wait policy."""

from __future__ import annotations

import os
from typing import Any, Optional

from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError
from azure.identity import ManagedIdentityCredential

from .deadline import call_within
from .redact import SECRETS
from .transient import Kind, Transient, parse_retry_after

# Variables that make azure-identity/MSAL fetch tokens somewhere other than the
# VM's IMDS (App Service, Arc, Service Fabric, workload identity). azwait gates
# on *this VM's* identity, so they are hidden from the SDK (the worker gets them back).
_OTHER_SOURCES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
)
# azure-identity's and MSAL's documented hook for where IMDS lives.
_IMDS_HOST_VAR = "AZURE_POD_IDENTITY_AUTHORITY_HOST"


def isolate_environment(imds_endpoint: str) -> None:
    """Point the SDK at this VM's IMDS only (the worker is given the original environment)."""
    for name in _OTHER_SOURCES:
        os.environ.pop(name, None)
    os.environ[_IMDS_HOST_VAR] = imds_endpoint


class Identity:
    """A token source for ARM whose failures come out as ``Transient`` kinds."""

    def __init__(self, selector: Optional[tuple[str, str]], timeout: float = 5.0) -> None:
        self.kind = "system-assigned" if selector is None else f"user-assigned ({selector[0]})"
        self.longest = timeout
        self.timeout = timeout  # for the next token request: narrowed to fit an ARM read's
        self._status: Optional[int] = None
        self._retry_after: Optional[float] = None
        # MSAL replays a 429/5xx answer from its own cache (for Retry-After, or 5 s)
        # without asking IMDS; such a replay is the same failure, not an outage.
        self._replayable: Optional[Transient] = None
        kwargs: dict[str, Any] = {}
        if selector is not None:
            param, value = selector
            if param == "client_id":
                kwargs["client_id"] = value
            else:
                kwargs["identity_config"] = {
                    "object_id" if param == "object_id" else "resource_id": value}
        self._credential = ManagedIdentityCredential(
            # The wait policy owns all retrying and timing; the SDK's own would stack on it.
            retry_total=0,
            # IMDS must never be reached through HTTP(S)_PROXY.
            use_env_settings=False,
            connection_timeout=min(2.0, timeout),
            read_timeout=timeout,
            raw_response_hook=self._record,
            **kwargs,
        )

    def _record(self, response: Any) -> None:
        http = response.http_response
        self._status = http.status_code
        self._retry_after = parse_retry_after(http.headers.get("Retry-After"))

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self._status = None
        try:
            limit = self.timeout
            token: AccessToken = call_within(
                limit,
                lambda: Transient(Kind.IMDS, "IMDS token endpoint did not answer in full "
                                          f"within {limit:g}s"),
                self._credential.get_token, *scopes, **kwargs)
        except AzureError:
            raise self._classify() from None
        self._replayable = None
        SECRETS.add(token.token)
        return token

    def _classify(self) -> Transient:
        status = self._status
        if status is None:
            return self._replayable or Transient(Kind.IMDS, "IMDS token endpoint unreachable")
        if status in (400, 403):
            return Transient(Kind.IDENTITY,
                             f"no managed identity: IMDS token endpoint answered {status}")
        failure = Transient(Kind.RETRY, f"IMDS token endpoint answered {status}", self._retry_after)
        self._replayable = failure if status == 429 or status >= 500 else None
        return failure
