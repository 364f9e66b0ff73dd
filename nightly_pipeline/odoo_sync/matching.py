"""Which Odoo record each of the night's records is, and what may be written to it: pure functions.

* company: ``company_registry`` = UEN first for every record (so a UEN match is never taken by
  another record's domain or name), then the website's registrable domain, then the exact name;
  a partner with a *different* UEN is another legal entity and is never reused;
* contact: a child of that company with the same email, compared case-insensitively;
* lead: the per-tenant token ``[np-<tenant>-<uen>]`` in the lead's name, the lead on the
  company's partner first, active before archived, then the oldest.

Values a person may have edited in Odoo are only filled where Odoo has none; a differing value is
kept and the choice noted (:func:`changes_to_fill`).
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.odoo_sync.records import (
    Many2one,
    MergeDecision,
    OdooCompany,
    OdooContact,
    OdooLead,
    SyncContact,
    SyncRecord,
    is_empty,
    normalized_uen,
)


@dataclasses.dataclass(frozen=True)
class CompanyMatch:
    company: OdooCompany | None
    decisions: tuple[MergeDecision, ...] = ()


@dataclasses.dataclass(frozen=True)
class ContactMatch:
    """The record's contacts already under the company (with their Odoo partner) and those missing."""

    found: tuple[tuple[SyncContact, OdooContact], ...]
    missing: tuple[SyncContact, ...]


@dataclasses.dataclass(frozen=True)
class LeadMatch:
    lead: OdooLead | None
    decisions: tuple[MergeDecision, ...] = ()


# -- companies -------------------------------------------------------------------------------------
def match_companies(records: Sequence[SyncRecord], companies: Sequence[OdooCompany]) -> dict[str, CompanyMatch]:
    """Each record's existing company partner, by UEN, then website domain, then exact name.

    Keyed by the record's UEN. A partner is given to one record at most; where several share a
    UEN the oldest is used and the others are named in a decision.
    """
    by_uen: dict[str, list[OdooCompany]] = defaultdict(list)
    for company in sorted(companies, key=lambda c: c.id):
        if company.uen:
            by_uen[company.uen].append(company)
    claimed: set[int] = set()
    matches: dict[str, CompanyMatch] = {}
    for record in records:
        found = by_uen.get(record.uen)
        if found:
            decisions = [MergeDecision(matched_by="uen", partner_id=found[0].id)]
            if len(found) > 1:
                decisions.append(MergeDecision(decision="several Odoo companies share this UEN; used the oldest",
                                               partner_ids=tuple(c.id for c in found)))
            claimed.add(found[0].id)
            matches[record.uen] = CompanyMatch(found[0], tuple(decisions))
    for record in records:
        if record.uen not in matches:
            matches[record.uen] = _match_by_domain_or_name(record, companies, claimed)
    return matches


def _match_by_domain_or_name(record: SyncRecord, companies: Sequence[OdooCompany], claimed: set[int]) -> CompanyMatch:
    criteria = (
        ("domain", lambda c: record.domain is not None and registrable_domain(c.website) == record.domain),
        ("name", lambda c: c.name in record.names),
    )
    decisions: list[MergeDecision] = []
    for matched_by, matches in criteria:
        for company in sorted(companies, key=lambda c: c.id):
            if company.id in claimed or not matches(company):
                continue
            if company.uen and company.uen != record.uen:
                decisions.append(MergeDecision(decision=f"not reused: same {matched_by} but another UEN",
                                               partner_id=company.id, odoo_uen=company.uen))
                continue
            claimed.add(company.id)
            return CompanyMatch(company, (MergeDecision(matched_by=matched_by, partner_id=company.id), *decisions))
    return CompanyMatch(None, tuple(decisions))


# -- contacts --------------------------------------------------------------------------------------
def unique_contacts(contacts: Sequence[SyncContact]) -> list[SyncContact]:
    """The record's contacts once per address (lower-cased), in order; empty addresses dropped."""
    unique: dict[str, SyncContact] = {}
    for contact in contacts:
        email = contact.email.strip().lower()
        if email and email not in unique:
            unique[email] = dataclasses.replace(contact, email=email)
    return list(unique.values())


def match_contacts(parent_id: int, contacts: Sequence[SyncContact], existing: Sequence[OdooContact]) -> ContactMatch:
    """The record's contacts matched by (parent, email) against Odoo's; the oldest wins a tie."""
    by_email: dict[str, OdooContact] = {}
    for contact in sorted(existing, key=lambda c: c.id):
        if contact.parent_id == parent_id and contact.normalized_email:
            by_email.setdefault(contact.normalized_email, contact)
    found: list[tuple[SyncContact, OdooContact]] = []
    missing: list[SyncContact] = []
    for contact in unique_contacts(contacts):
        odoo_contact = by_email.get(contact.email)
        if odoo_contact is None:
            missing.append(contact)
        else:
            found.append((contact, odoo_contact))
    return ContactMatch(tuple(found), tuple(missing))


# -- leads -----------------------------------------------------------------------------------------
def lead_token(tenant_id: int, uen: str) -> str:
    """The stable reference a tenant's lead for a company carries in its name."""
    return f"[np-{tenant_id}-{normalized_uen(uen)}]"


def match_lead(token: str, partner_id: int, leads: Sequence[OdooLead]) -> LeadMatch:
    """The lead carrying ``token``: on ``partner_id`` first, then active before archived, then the oldest."""
    wanted = token.casefold()
    mine = sorted((lead for lead in leads if wanted in (lead.name or "").casefold()),
                  key=lambda lead: (lead.partner_id != partner_id, not lead.active, lead.id))
    if not mine:
        return LeadMatch(None)
    decisions = ()
    if len(mine) > 1:
        decisions = (MergeDecision(decision="several leads carry this record's token; used one",
                                   lead_ids=tuple(sorted(lead.id for lead in mine)), lead_id=mine[0].id),)
    return LeadMatch(mine[0], decisions)


# -- field values ----------------------------------------------------------------------------------
def same_value(field: str, theirs: Any, ours: Any) -> bool:
    """Odoo's value and ours mean the same: websites by registrable domain, links by id, UENs and
    text without regard to case or spacing."""
    if field == "website":
        return registrable_domain(str(theirs)) == registrable_domain(str(ours))
    if isinstance(theirs, Many2one):
        return theirs.id == ours
    if field == "company_registry":
        return normalized_uen(theirs) == normalized_uen(ours)
    return " ".join(str(theirs).split()).casefold() == " ".join(str(ours).split()).casefold()


def shown(value: Any) -> Any:
    """A value as a decision shows it: a link by its name."""
    return (value.name or value.id) if isinstance(value, Many2one) else value


def changes_to_fill(key: str, current: Any, desired: Mapping[str, Any],
                    fields: Sequence[str]) -> tuple[dict[str, Any], list[MergeDecision]]:
    """The desired values of ``fields`` that Odoo's ``current`` record has no value for, and a decision
    for each field where Odoo holds a different value (which is kept). ``key`` names the record."""
    changes: dict[str, Any] = {}
    decisions: list[MergeDecision] = []
    for field in fields:
        ours = desired.get(field)
        if is_empty(ours):
            continue
        theirs = getattr(current, field)
        if is_empty(theirs):
            changes[field] = ours
        elif not same_value(field, theirs, ours):
            decisions.append(MergeDecision(decision="kept the value in Odoo", record=key, field=field,
                                           odoo=shown(theirs), ours=shown(ours)))
    return changes, decisions
