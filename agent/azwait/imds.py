"""Instance metadata: who this VM is, from IMDS — never through a proxy."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import requests

from . import logs
from .deadline import call_within
from .transient import Kind, Transient, parse_retry_after

# cloud-init pins 2021-08-01; newer versions add nothing azwait reads. The
# fallbacks cover hosts whose IMDS answers 400 to a version it does not know.
API_VERSIONS = ("2021-12-13", "2021-02-01", "2019-06-01")
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
_RETRYABLE = {404, 410, 429}


@dataclasses.dataclass(frozen=True)
class Instance:
    """The compute fields azwait needs from the instance document."""

    resource_id: str
    vm_id: str
    name: str
    subscription_id: str
    resource_group: str
    scale_set: str
    cloud: str

    @classmethod
    def from_document(cls, document: Any) -> Instance:
        compute = document.get("compute") if isinstance(document, dict) else None
        if not isinstance(compute, dict) or not compute.get("resourceId"):
            raise Transient(Kind.IMDS, "IMDS instance document has no compute.resourceId")
        return cls(
            resource_id=str(compute["resourceId"]),
            vm_id=str(compute.get("vmId", "")),
            name=str(compute.get("name", "")),
            subscription_id=str(compute.get("subscriptionId", "")),
            resource_group=str(compute.get("resourceGroupName", "")),
            scale_set=str(compute.get("vmScaleSetName", "")),
            cloud=str(compute.get("azEnvironment") or "AzurePublicCloud"),
        )


def session() -> requests.Session:
    """A session that ignores HTTP(S)_PROXY, netrc and friends from the environment.

    IMDS is link-local: a proxy cannot reach it and must never see the request.
    """
    s = requests.Session()
    s.trust_env = False
    s.proxies = {}
    s.headers.update({"Metadata": "true"})
    return s


class ImdsClient:
    def __init__(self, endpoint: str, http: requests.Session | None = None) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._http = http or session()
        self._versions = list(API_VERSIONS)
        logs.route_libraries()  # urllib3 logs through stdlib logging

    def get(self, path: str, params: dict[str, str], timeout: float) -> requests.Response:
        """One GET; connection trouble and retryable statuses become ``Transient``."""
        return self.request("GET", path, params, timeout)

    def request(self, method: str, path: str, params: dict[str, str], timeout: float,
                body: Any = None) -> requests.Response:
        """One call (``body`` sent as JSON); trouble and retryable statuses: ``Transient``."""
        url = self._endpoint + path
        try:
            response = call_within(
                timeout, lambda: self._too_slow(path, timeout),
                self._http.request, method, url, params=params, json=body,
                timeout=(min(CONNECT_TIMEOUT, timeout), timeout), allow_redirects=False,
            )
        except requests.RequestException as err:
            raise Transient(
                Kind.IMDS, f"IMDS unreachable at {self._endpoint}: {type(err).__name__}") from None
        status = response.status_code
        if status in _RETRYABLE or status >= 500:
            raise Transient(
                Kind.IMDS, f"IMDS answered {status} for {path}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    def _too_slow(self, path: str, timeout: float) -> Transient:
        return Transient(Kind.IMDS, f"IMDS at {self._endpoint} did not answer {path} "
                                    f"in full within {timeout:.3g}s")

    def instance(self, timeout: float = READ_TIMEOUT) -> Instance:
        """The instance document, trying older api-versions if this IMDS rejects ours;
        all of it within ``timeout``."""
        ends = time.monotonic() + timeout
        while True:
            version = self._versions[0]
            left = ends - time.monotonic()
            if left <= 0:
                raise self._too_slow("/metadata/instance", timeout)
            response = self.get("/metadata/instance", {"api-version": version}, left)
            if response.status_code == 400 and len(self._versions) > 1:
                self._versions.pop(0)  # remembered: the next call starts with what works
                continue
            if response.status_code != 200:
                raise Transient(Kind.IMDS, f"IMDS answered {response.status_code} "
                                        f"to api-version {version}")
            try:
                document = response.json()
            except ValueError:
                raise Transient(Kind.IMDS, "IMDS instance document is not JSON") from None
            return Instance.from_document(document)
