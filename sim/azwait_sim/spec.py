"""Checked reads of scenario JSON.

Every error is a ValueError whose message starts with the dotted key it is about
(``faults[2].status: ...``), so a user can find the line to fix at once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Sequence
from typing import Any

GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def fail(where: str, problem: str) -> ValueError:
    return ValueError(f"{where or 'scenario'}: {problem}")


def show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def mapping(value: Any, where: str, allowed: Collection[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, f"expected an object, got {show(value)}")
    for name in value:
        if not isinstance(name, str) or name not in allowed:
            known = ", ".join(sorted(allowed))
            raise fail(key(where, str(name)), f"unknown key (known keys: {known})")
    return value


def array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise fail(where, f"expected a list, got {show(value)}")
    return list(value)


def number(value: Any, where: str, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    # bool is an int subclass: "true" as a number is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise fail(where, f"expected a number, got {show(value)}")
    if not minimum <= value <= maximum:
        bounds = f">= {minimum:g}" if maximum == math.inf else f"in {minimum:g}..{maximum:g}"
        raise fail(where, f"expected a number {bounds}, got {show(value)}")
    return float(value)


def optional_number(value: Any, where: str, *, minimum: float = 0.0) -> float | None:
    return None if value is None else number(value, where, minimum=minimum)


def integer(value: Any, where: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(where, f"expected a whole number, got {show(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise fail(where, f"expected a whole number {bounds}, got {show(value)}")
    return int(value)


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise fail(where, f"expected true or false, got {show(value)}")
    return value


def text(value: Any, where: str, *, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise fail(where, f"expected a non-empty string, got {show(value)}")
    if pattern is not None and not pattern.match(value):
        raise fail(where, f"malformed value {show(value)}")
    return value


def choice(value: Any, where: str, options: Sequence[str]) -> str:
    """Match case-insensitively and return the canonical spelling."""
    if isinstance(value, str):
        for option in options:
            if option.lower() == value.lower():
                return option
    raise fail(where, f"expected one of {', '.join(options)}, got {show(value)}")


def vm_index(value: Any, where: str, vms: int) -> int:
    """A VM index given as a JSON object key ("3") or a number (3)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vms:
        raise fail(where, f"no VM {show(value)}: VM indices run 0..{vms - 1}")
    return int(value)


def vm_list(value: Any, where: str, vms: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    return tuple(vm_index(v, f"{where}[{i}]", vms) for i, v in enumerate(array(value, where)))
