"""The records of the Odoo sync: what the pipeline sends, what Odoo holds, and what happened.

Odoo answers ``search_read`` with dicts in which an empty field is ``False`` and a many2one is
``[id, display name]``; they are read once, here, into typed records so that matching and
writing never handle Odoo's raw shapes.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from nightly_pipeline.domain.web import registrable_domain

COMPANY_FIELDS = ["id", "name", "company_registry", "website", "street", "zip", "country_id"]
CONTACT_FIELDS = ["id", "parent_id", "name", "email", "function", "phone"]
LEAD_FIELDS = ["id", "name", "partner_id", "active", "description", "priority", "contact_name", "email_from",
               "phone", "function", "website"]


def is_empty(value: Any) -> bool:
    """Odoo's empty field (``False``), or nothing at all."""
    return value is None or value is False or value == ""


def normalized_uen(value: Any) -> str:
    return "" if is_empty(value) else str(value).strip().upper()


class Many2one(NamedTuple):
    """A link to another Odoo record: its id and the name Odoo shows for it."""

    id: int
    name: str = ""


def many2one(value: Any) -> Many2one | None:
    """Odoo reads a many2one as ``[id, name]`` (or a bare id with ``load=None``), empty as False."""
    if isinstance(value, (list, tuple)) and value:
        return Many2one(int(value[0]), str(value[1]) if len(value) > 1 else "")
    if isinstance(value, int) and not isinstance(value, bool):
        return Many2one(value)
    return None


def _text(value: Any) -> str | None:
    return None if is_empty(value) else str(value)


# -- what the pipeline sends -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyncContact:
    email: str
    name: str | None = None
    title: str | None = None
    phone: str | None = None
    is_primary: bool = False


@dataclasses.dataclass(frozen=True)
class SyncRecord:
    """One scored company as Odoo should see it; ``contacts`` lists the primary contact first."""

    company_id: int
    uen: str
    name: str
    domain: str | None
    street: str | None
    zip: str | None
    contacts: tuple[SyncContact, ...]
    score: float
    bucket: str
    reasons: tuple[Mapping[str, Any], ...]
    rationale: str
    other_names: tuple[str, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        """Every name the company goes by: the legal name and any other."""
        return frozenset({self.name, *self.other_names})

    @property
    def website(self) -> str | None:
        return f"https://{self.domain}" if self.domain else None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SyncRecord:
        """A record from a ``db.scores.records_to_sync`` row; the legal name is the partner's name."""
        contacts = sorted((SyncContact(email=c["email"], name=c.get("name"), title=c.get("title"),
                                       phone=c.get("phone"), is_primary=bool(c.get("is_primary")))
                           for c in row.get("contacts") or []), key=lambda c: not c.is_primary)
        name = row.get("legal_name") or row["name"]
        other = tuple(n for n in (row.get("name"),) if n and n != name)
        return cls(company_id=int(row["company_id"]), uen=normalized_uen(row["uen"]), name=name,
                   domain=registrable_domain(row.get("website_domain")), street=row.get("street_name"),
                   zip=row.get("postal_code"), contacts=tuple(contacts), score=float(row["score"]),
                   bucket=row["bucket"], reasons=tuple(row.get("reasons") or ()), rationale=row.get("rationale") or "",
                   other_names=other)


# -- what Odoo holds -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OdooCompany:
    """A company ``res.partner``; field names are Odoo's, so values compare field by field."""

    id: int
    name: str | None
    company_registry: str | None
    website: str | None
    street: str | None
    zip: str | None
    country_id: Many2one | None

    @property
    def uen(self) -> str:
        return normalized_uen(self.company_registry)

    @classmethod
    def from_read(cls, row: Mapping[str, Any]) -> OdooCompany:
        return cls(id=int(row["id"]), name=_text(row.get("name")), company_registry=_text(row.get("company_registry")),
                   website=_text(row.get("website")), street=_text(row.get("street")), zip=_text(row.get("zip")),
                   country_id=many2one(row.get("country_id")))


@dataclasses.dataclass(frozen=True)
class OdooContact:
    """A person (or a shared mailbox) filed under a company ``res.partner``."""

    id: int
    parent_id: int | None
    name: str | None
    email: str | None
    function: str | None
    phone: str | None

    @property
    def normalized_email(self) -> str:
        return (self.email or "").strip().lower()

    @classmethod
    def from_read(cls, row: Mapping[str, Any]) -> OdooContact:
        parent = many2one(row.get("parent_id"))
        return cls(id=int(row["id"]), parent_id=parent.id if parent else None, name=_text(row.get("name")),
                   email=_text(row.get("email")), function=_text(row.get("function")), phone=_text(row.get("phone")))


@dataclasses.dataclass(frozen=True)
class OdooLead:
    """A ``crm.lead``, archived ones included (``active`` False)."""

    id: int
    name: str | None
    partner_id: int | None
    active: bool
    description: str | None
    priority: str | None
    contact_name: str | None
    email_from: str | None
    phone: str | None
    function: str | None
    website: str | None

    @classmethod
    def from_read(cls, row: Mapping[str, Any]) -> OdooLead:
        partner = many2one(row.get("partner_id"))
        return cls(id=int(row["id"]), name=_text(row.get("name")), partner_id=partner.id if partner else None,
                   active=bool(row.get("active")), description=_text(row.get("description")),
                   priority=_text(row.get("priority")), contact_name=_text(row.get("contact_name")),
                   email_from=_text(row.get("email_from")), phone=_text(row.get("phone")),
                   function=_text(row.get("function")), website=_text(row.get("website")))


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What Odoo held for the night's records before any write."""

    companies: tuple[OdooCompany, ...] = ()
    contacts: tuple[OdooContact, ...] = ()
    leads: tuple[OdooLead, ...] = ()


# -- what happened ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MergeDecision:
    """One choice the sync made where Odoo and the pipeline disagreed or a match needed a rule.

    Only the fields a decision needs are set; :meth:`to_dict` is what ``odoo_sync_log`` stores.
    """

    decision: str | None = None
    matched_by: str | None = None
    record: str | None = None
    field: str | None = None
    odoo: Any = None
    ours: Any = None
    partner_id: int | None = None
    partner_ids: tuple[int, ...] | None = None
    lead_id: int | None = None
    lead_ids: tuple[int, ...] | None = None
    odoo_partner_id: int | None = None
    odoo_uen: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
                if value is not None}


@dataclasses.dataclass
class ModelCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0


@dataclasses.dataclass
class RecordOutcome:
    """One record's result, as it goes into ``odoo_sync_log``."""

    company_id: int
    uen: str
    partner_id: int | None = None
    contact_partner_ids: list[int] = dataclasses.field(default_factory=list)
    lead_id: int | None = None
    operation: str = "unchanged"  # create | update | unchanged | error
    merge_decisions: list[MergeDecision] = dataclasses.field(default_factory=list)
    error: str | None = None

    def mark(self, operation: str) -> None:
        """Record that something was written; "create" (the company was new) outranks "update"."""
        if self.operation != "create":
            self.operation = operation


@dataclasses.dataclass
class SyncReport:
    counts: dict[str, ModelCounts] = dataclasses.field(
        default_factory=lambda: {"company": ModelCounts(), "contact": ModelCounts(), "lead": ModelCounts()})
    outcomes: list[RecordOutcome] = dataclasses.field(default_factory=list)
    skipped: int = 0  # below the sync's minimum bucket
    rpc_calls: int = 0

    @property
    def failed(self) -> list[RecordOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    def summary(self) -> dict[str, Any]:
        """Counters only (no names, emails or credentials), for logs and asset metadata."""
        return {"records": len(self.outcomes), "failed": len(self.failed), "skipped": self.skipped,
                "rpc_calls": self.rpc_calls,
                **{model: dataclasses.asdict(counts) for model, counts in self.counts.items()}}
