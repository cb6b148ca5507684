"""Azure Resource Manager: the VM's provisioningState, read with azure-mgmt-resource."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from azure.core.exceptions import (
    DecodeError,
    DeserializationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.resource.resources import ResourceManagementClient

from . import logs
from .clouds import Endpoint
from .deadline import call_within
from .errors import ArmRejected
from .identity import Identity
from .network import diagnose
from .transient import Kind, Transient, parse_retry_after

# get_by_id needs the api-version of the resource's own provider (Microsoft.Compute).
COMPUTE_API_VERSION = "2024-07-01"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0

BUDGET_HEADERS = (
    "x-ms-ratelimit-remaining-subscription-reads",
    "x-ms-ratelimit-remaining-subscription-global-reads",
    "x-ms-ratelimit-remaining-resource",
)


@dataclasses.dataclass(frozen=True)
class Reading:
    state: str
    headers: Mapping[str, str]


class ArmClient:
    def __init__(self, endpoint: Endpoint, subscription_id: str, identity: Identity) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self._client = ResourceManagementClient(
            identity,
            subscription_id,
            base_url=endpoint.url,
            credential_scopes=[endpoint.audience + ".default"],
            # The wait policy owns retrying: no SDK retries stacked under it.
            retry_total=0,
        )
        logs.route_libraries()  # azure-core logs through stdlib logging

    def token(self, timeout: float) -> None:
        """Have the token for this ARM within ``timeout``: the first read then uses it. An
        IMDS request, not an ARM read, so it comes before a fleet's start offset."""
        self.identity.timeout = min(self.identity.longest, timeout)
        self.identity.get_token(self.endpoint.audience + ".default")

    def read(self, resource_id: str, timeout: float = READ_TIMEOUT) -> Reading:
        """One GET of the resource, its token included, within ``timeout``; throttling,
        5xx and garbled bodies are ``Transient``."""
        # A token request stuck past the read's own limit reports as itself (IMDS).
        self.identity.timeout = min(self.identity.longest, timeout)
        try:
            resource, response = call_within(
                timeout,
                lambda: Transient(Kind.RETRY, f"ARM at {self.endpoint.url} did not answer in full "
                                           f"within {timeout:.3g}s"),
                cast(Any, self._client.resources.get_by_id),
                resource_id,
                api_version=COMPUTE_API_VERSION,
                cls=lambda pipeline_response, deserialized, _: (
                    deserialized, pipeline_response.http_response),
                connection_timeout=min(CONNECT_TIMEOUT, timeout),
                read_timeout=timeout,
            )
        except (DecodeError, DeserializationError, ValueError):  # ValueError: JSONDecodeError
            raise Transient(Kind.RETRY, "ARM answered with a body that is not JSON") from None
        except HttpResponseError as err:
            raise _classify(err, resource_id) from None
        except (ServiceRequestError, ServiceResponseError) as err:
            unreachable = f"ARM unreachable at {self.endpoint.url}: {type(err).__name__}"
            raise diagnose(err, self.endpoint.url) or Transient(Kind.RETRY, unreachable) from None
        properties: Any = getattr(resource, "properties", None)
        state = properties.get("provisioningState") if isinstance(properties, dict) else None
        if not isinstance(state, str) or not state:
            raise Transient(Kind.RETRY, "ARM answered without properties.provisioningState")
        return Reading(state=state, headers=_budget_headers(response.headers))


def _budget_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in BUDGET_HEADERS if headers.get(name)}


def _classify(err: HttpResponseError, resource_id: str) -> Exception:
    status = err.status_code or 0
    headers: Mapping[str, str] = getattr(err.response, "headers", None) or {}
    if status in (401, 403):
        return Transient(
            Kind.RBAC,
            f"ARM answered {status}: the VM's identity needs the Reader role "
            f"(Microsoft.Compute/.../read) on {resource_id} or its scale set or resource group",
        )
    if status == 404:  # replication lag before the VM was seen; deleted after
        return Transient(Kind.NOT_FOUND, f"ARM has no resource {resource_id}")
    # A 3xx the pipeline did not follow, or no status at all, is no verdict either.
    if status in (408, 429) or status >= 500 or status < 400:
        return Transient(Kind.RETRY, f"ARM answered {status}",
                         parse_retry_after(headers.get("Retry-After")), _budget_headers(headers))
    code = getattr(err.error, "code", None) if err.error is not None else None
    return ArmRejected(f"ARM rejected the read of {resource_id}: {status} {code or ''}".rstrip())
