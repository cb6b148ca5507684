"""Hermetic tests: no host configuration, proxy or systemd variable leaks in."""

from __future__ import annotations

import os

import pytest

_LEAKY = ("JOURNAL_STREAM", "NOTIFY_SOCKET", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
          "https_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "IDENTITY_ENDPOINT",
          "MSI_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AZWAIT_") or name in _LEAKY:
            monkeypatch.delenv(name, raising=False)
