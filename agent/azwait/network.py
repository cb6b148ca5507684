"""Failures of the network path to ARM that are configuration, not weather.

A certificate no trusted CA signed (a TLS-inspecting proxy, a missing corporate
CA) or a proxy that refuses does not heal by retrying for an hour. Each gets a
one-line diagnosis naming the host, what failed, what azwait used, and the
remedy; the wait policy ends it after AZWAIT_NETWORK_GRACE (exit 8).
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Optional

from .transient import Kind, Transient


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and every exception it wraps (causes, contexts, arguments, urllib3's reason)."""
    seen: set[int] = set()
    stack = [err]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None),
                   getattr(current, "inner_exception", None), *current.args]
        stack += [item for item in wrapped if isinstance(item, BaseException)]


def ca_bundle(environ: Mapping[str, str]) -> str:
    """The CA bundle requests verifies with, as it chooses it."""
    chosen = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
    if chosen:
        return chosen
    from requests.utils import DEFAULT_CA_BUNDLE_PATH  # certs.where(), as requests calls it

    return str(DEFAULT_CA_BUNDLE_PATH)


def _proxy_for(url: str) -> str:
    """The proxy requests uses for ``url`` (from HTTPS_PROXY and NO_PROXY), credentials hidden."""
    import requests.utils

    proxies = requests.utils.get_environ_proxies(url)
    proxy = proxies.get("https") or proxies.get("all") or "the proxy"
    parts = urllib.parse.urlsplit(proxy)
    if parts.password or parts.username:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        proxy = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return proxy


def diagnose(err: BaseException, url: str,
             environ: Optional[Mapping[str, str]] = None) -> Optional[Transient]:
    """A ``network`` failure for a TLS or proxy problem behind ``err``; None for others."""
    environ = os.environ if environ is None else environ
    host = urllib.parse.urlsplit(url).hostname or url
    chain = list(_chain(err))
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            why = item.verify_message or str(item)
            return Transient(
                Kind.NETWORK,
                f"TLS verification of {host} failed: {why} (CA bundle {ca_bundle(environ)}); "
                "if a TLS-inspecting proxy is in the way, add its CA with "
                "update-ca-certificates or name a bundle that has it in REQUESTS_CA_BUNDLE, "
                f"or let {host} bypass the proxy with NO_PROXY")
    names = {type(item).__name__ for item in chain}
    if "ProxyError" not in names:
        return None
    proxy = _proxy_for(url)
    text = " ".join(str(item) for item in chain)
    if " 407" in text:
        return Transient(
            Kind.NETWORK,
            f"proxy {proxy} refused to carry the request to {host}: 407 Proxy Authentication "
            "Required; give credentials in HTTPS_PROXY (http://user:password@host:port) "
            f"or let {host} bypass the proxy with NO_PROXY")
    what = "refused the connection" if "refused" in text.lower() else "failed"
    return Transient(
        Kind.NETWORK,
        f"proxy {proxy} (from HTTPS_PROXY) {what} on the way to {host}; "
        f"fix HTTPS_PROXY or let {host} bypass the proxy with NO_PROXY")
