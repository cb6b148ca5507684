"""Where azwait's clients for IMDS and ARM are made, once for every verb.

The Azure SDK loads here, on first use: the marker fast path never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Config

if TYPE_CHECKING:
    from .arm import ArmClient
    from .imds import ImdsClient, Instance

TOKEN_TIMEOUT = 5.0  # one whole token request


def imds(config: Config) -> ImdsClient:
    from .imds import ImdsClient  # requests loads only when a wait is needed

    return ImdsClient(config.imds_endpoint)


def arm(config: Config, instance: Instance) -> ArmClient:
    """An ARM client for the VM's cloud, with a token from this VM's managed identity only."""
    from .arm import ArmClient
    from .clouds import endpoint_for
    from .identity import Identity

    endpoint = endpoint_for(instance.cloud, config.arm_endpoint)
    return ArmClient(endpoint, instance.subscription_id,
                     Identity(config.identity, config.imds_endpoint, timeout=TOKEN_TIMEOUT))
