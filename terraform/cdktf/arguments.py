"""Checking a construct's arguments against the provider's schema (no cdktf
here, so the check runs without node)."""
from __future__ import annotations

from terraform.provider import provider as interlock_provider
from terraform.provider.schema import Field

RESOURCES = {kind.name: kind.fields for kind in interlock_provider.RESOURCES}
DATA_SOURCES = {kind.name: kind.fields for kind in interlock_provider.DATA_SOURCES}


def check_arguments(fields: tuple[Field, ...], values: dict, where: str):
    """Refuse what the provider would: unknown and read-only names, missing required ones."""
    known = {f.name: f for f in fields if not f.read_only}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TypeError(f"{where}: no argument {', '.join(unknown)}; it takes {', '.join(sorted(known))}.")
    missing = sorted(name for name, f in known.items() if f.required and values.get(name) is None)
    if missing:
        raise TypeError(f"{where}: {', '.join(missing)} required.")
    for name, value in values.items():
        nested = known[name].nested
        if nested and isinstance(value, dict):
            check_arguments(nested, value, f"{where}.{name}")
        elif nested and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    check_arguments(nested, item, f"{where}.{name}[{index}]")
