"""Fixtures shared by the real-boot tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

SUITES = os.environ.get("AZWAIT_E2E_SUITES", "bookworm trixie").split()
_COUNT = itertools.count()


@pytest.fixture(params=SUITES)
def suite(request: pytest.FixtureRequest) -> str:
    """Each test boots Debian 12 (bookworm) and Debian 13 (trixie)."""
    return str(request.param)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace name of its own for each boot test."""
    yield f"azwait-e2e-{os.getpid()}-{next(_COUNT)}"
