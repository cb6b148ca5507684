"""Which ARM endpoint (and token audience) serves which Azure cloud.

Kept apart from arm.py, which loads the Azure SDK: the marker check on the fast
path needs these names and nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from .errors import ConfigError

# azEnvironment (compared case-insensitively) -> ARM endpoint, which is also the token audience.
CLOUDS = {
    "azurepubliccloud": "https://management.azure.com",
    "azureusgovernmentcloud": "https://management.usgovcloudapi.net",
    "azurechinacloud": "https://management.chinacloudapi.cn",
}


@dataclasses.dataclass(frozen=True)
class Endpoint:
    url: str
    audience: str  # the token resource, with its trailing slash


def endpoint_for(cloud: str, override: Optional[str]) -> Endpoint:
    """ARM URL and token audience for ``azEnvironment``; an override keeps the cloud's audience."""
    known = CLOUDS.get(cloud.lower())
    url = override or known
    if url is None:
        raise ConfigError(
            f"unknown azEnvironment {cloud!r} reported by IMDS: set AZWAIT_ARM_ENDPOINT")
    return Endpoint(url=url, audience=(known or url) + "/")
