"""Managed identities: which ones a VM has, which one a token request names, and
the tokens handed out (so ARM can tell its own tokens from forged ones)."""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azwait_sim import spec

# IMDS accepts either spelling for a resource id; azure-identity sends msi_res_id.
_SELECTORS = ("client_id", "object_id", "msi_res_id", "mi_res_id")


@dataclass(frozen=True)
class Principal:
    kind: str  # "system" or "user"
    client_id: str
    object_id: str
    resource_id: str = ""

    @property
    def label(self) -> str:
        """How the request log names it: never a secret, stable across VMs."""
        return "system" if self.kind == "system" else self.client_id


@dataclass(frozen=True)
class IdentitySpec:
    system: bool = True
    user: tuple[Principal, ...] = ()


def seeded(seed: int | None, stream: str) -> random.Random:
    """Reproducible names and ids for a seeded scenario; secrets never come from here."""
    return random.Random(None if seed is None else f"{stream}-{seed}")


def new_guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_principal(kind: str, rng: random.Random, resource_id: str = "") -> Principal:
    return Principal(kind, new_guid(rng), new_guid(rng), resource_id)


def _user(value: Any, where: str, rng: random.Random, prefix: str, n: int) -> Principal:
    data = spec.mapping(value, where, ("client_id", "object_id", "resource_id"))
    return Principal(
        "user",
        spec.text(data.get("client_id", new_guid(rng)), spec.key(where, "client_id")),
        spec.text(data.get("object_id", new_guid(rng)), spec.key(where, "object_id")),
        spec.text(
            data.get("resource_id", f"{prefix}/id-azwait-{n}"), spec.key(where, "resource_id")
        ),
    )


def parse_identity(value: Any, where: str, rng: random.Random, prefix: str) -> IdentitySpec:
    """``"system"`` | ``"none"`` | [user, ...] | {"system": bool, "user": [user, ...]}.

    ``prefix`` is the resource id of the resource group's userAssignedIdentities,
    for ids the scenario leaves out.
    """
    if value == "system":
        return IdentitySpec(system=True)
    if value == "none":
        return IdentitySpec(system=False)
    system = False
    users: Any = value
    if isinstance(value, dict):
        data = spec.mapping(value, where, ("system", "user"))
        system = spec.boolean(data.get("system", False), spec.key(where, "system"))
        users = data.get("user", [])
        where = spec.key(where, "user")
    elif not isinstance(value, list):
        raise spec.fail(
            where, f'expected "system", "none", a list or an object, got {spec.show(value)}'
        )
    principals = tuple(
        _user(item, f"{where}[{n}]", rng, prefix, n)
        for n, item in enumerate(spec.array(users, where))
    )
    return IdentitySpec(system=system, user=principals)


class IdentityError(Exception):
    """IMDS refuses the token request; args[0] is its error_description."""


def choose(
    identities: IdentitySpec, system: Principal | None, query: Mapping[str, str]
) -> Principal:
    """The identity a token request gets, as IMDS picks it."""
    named = [(name, query[name]) for name in _SELECTORS if query.get(name)]
    if len(named) > 1:
        raise IdentityError("Only one of client_id, object_id or msi_res_id may be specified")
    if not named:
        if system is not None:
            return system
        # IMDS falls back to the only user-assigned identity when there is one.
        if len(identities.user) == 1:
            return identities.user[0]
        if identities.user:
            raise IdentityError(
                "Multiple user assigned identities exist, please specify the clientId / "
                "resourceId of the identity in the token request"
            )
        raise IdentityError("Identity not found")
    name, wanted = named[0]
    for user in identities.user:
        have = {
            "client_id": user.client_id,
            "object_id": user.object_id,
            "msi_res_id": user.resource_id,
            "mi_res_id": user.resource_id,
        }[name]
        if have.lower() == wanted.lower():
            return user
    raise IdentityError("Identity not found")


@dataclass(frozen=True)
class Grant:
    vm: int
    principal: Principal
    audience: str


class TokenStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}

    def issue(self, grant: Grant) -> str:
        # Looks like a JWT at a glance; opaque on purpose, so nothing decodes it.
        token = "eyJ0eXAi" + secrets.token_urlsafe(90)
        with self._lock:
            self._grants[token] = grant
        return token

    def lookup(self, token: str) -> Grant | None:
        with self._lock:
            return self._grants.get(token)

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._grants)
