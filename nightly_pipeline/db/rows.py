"""Typed rows that also read as mappings of their fields.

The pure helpers that read a company (``domain.contacts``, the deterministic profile, the prompts)
take any mapping of registry fields, so tests and the sandbox world can hand them plain dicts; a
typed row passes there unchanged while the code that owns it reads attributes.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any


class MappingRow(Mapping[str, Any]):
    """Base of frozen dataclass rows: ``row.name`` and ``row["name"]`` are the same field."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._field_names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._field_names())

    def __len__(self) -> int:
        return len(self._field_names())

    def _field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(self))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Verdict(MappingRow):
    """An address's verification verdict as stored, the fleet's shared one or a tenant's own."""

    email: str
    status: str
    sub_status: str | None
    policy: str
    verified_at: dt.datetime
    expires_at: dt.datetime
