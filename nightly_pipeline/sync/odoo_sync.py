"""Push a tenant's scored companies to its Odoo so that re-runs never duplicate anything.

Odoo has no upsert, so every record is found before it is written, on stable keys:

* company (``res.partner``, ``is_company``): ``company_registry`` = UEN, then the website's domain,
  then the exact name; a partner found by domain or name gets the UEN written, so later nights find
  it by UEN; a partner with a *different* UEN is another legal entity and is never reused;
* contact: a child partner of that company with the same email, compared case-insensitively;
* lead (``crm.lead``): a per-tenant token ``[np-<tenant>-<uen>]`` in the lead's name, searched
  with archived leads included, so a lead a salesperson archived or marked lost is not re-created.

All look-ups are batched before any write (a handful of ``search_read`` calls per night, whatever
the number of records), then each record is written on its own: a record Odoo rejects is logged
with its error and retried next night, the others go on. An Odoo that cannot be reached fails the
whole sync with :class:`OdooUnavailable` before anything is logged; what was written before the
outage is found again by the next run. A new company is created with its contacts in one call
(``child_ids`` commands), which Odoo applies in one transaction, so a company never ends up without
the contacts it was created with.

Values a person may have edited in Odoo (a company's name, website, address; a contact's job title)
are only filled when empty, never overwritten; each such choice is noted in the record's merge
decisions. The lead's notes (score, bucket, reasons, rationale) belong to the pipeline and are
rewritten when the score changes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import http.client
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import odoorpc
from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db.database import Database, tenant_lock
from nightly_pipeline.domain.reason_text import effect_words, fallback_phrase
from nightly_pipeline.domain.scoring import buckets_at_or_above
from nightly_pipeline.domain.web_domains import registrable_domain

log = logging.getLogger(__name__)

# urllib's URLError and HTTPError (5xx), refused or reset connections and timeouts are all OSErrors;
# a connection dropped mid-reply surfaces as an http.client exception.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
LOCK_PURPOSE = "odoo_sync"
PARTNER = "res.partner"
LEAD = "crm.lead"
COMPANY_FIELDS = ["id", "name", "company_registry", "website", "street", "zip", "country_id"]
CONTACT_FIELDS = ["id", "parent_id", "name", "email", "function", "phone"]
LEAD_FIELDS = ["id", "name", "partner_id", "active", "description", "priority", "contact_name", "email_from",
               "phone", "function", "website"]
# Company fields the sync fills when Odoo has nothing there (the name only on create).
COMPANY_FILLABLE = ("company_registry", "website", "street", "zip", "country_id")
CONTACT_FILLABLE = ("function", "phone")
LEAD_CONTACT_FILLABLE = ("contact_name", "email_from", "phone", "function", "website")
LEAD_PRIORITY = {"High": "2", "Medium": "1", "Low": "0"}
MAX_ERROR_CHARS = 500


class OdooSyncError(RuntimeError):
    """Base of the sync's own errors."""


class OdooUnavailable(OdooSyncError):
    """Odoo could not be reached (refused, timed out, HTTP 5xx); the step should be retried."""


class OdooLoginError(OdooSyncError):
    """Odoo answered but refused the login (wrong database, user or password)."""


# -- what to sync ----------------------------------------------------------------------------------
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

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SyncRecord:
        """A record from a ``db.scores.records_to_sync`` row; the legal name is the partner's name."""
        contacts = sorted((SyncContact(email=c["email"], name=c.get("name"), title=c.get("title"),
                                       phone=c.get("phone"), is_primary=bool(c.get("is_primary")))
                           for c in row.get("contacts") or []), key=lambda c: not c.is_primary)
        name = row.get("legal_name") or row["name"]
        other = tuple(n for n in (row.get("name"),) if n and n != name)
        return cls(company_id=int(row["company_id"]), uen=str(row["uen"]).strip().upper(), name=name,
                   domain=registrable_domain(row.get("website_domain")), street=row.get("street_name"),
                   zip=row.get("postal_code"), contacts=tuple(contacts), score=float(row["score"]),
                   bucket=row["bucket"], reasons=tuple(row.get("reasons") or ()), rationale=row.get("rationale") or "",
                   other_names=other)


# -- what happened ---------------------------------------------------------------------------------
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
    merge_decisions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str | None = None

    def log_entry(self) -> scores_db.SyncLogEntry:
        return scores_db.SyncLogEntry(
            company_id=self.company_id, partner_id=self.partner_id, contact_partner_ids=list(self.contact_partner_ids),
            lead_id=self.lead_id, operation=self.operation, merge_decisions=list(self.merge_decisions),
            error=self.error)

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


# -- matching (pure) -------------------------------------------------------------------------------
@dataclasses.dataclass
class _Snapshot:
    """What Odoo held for the night's records before any write."""

    companies: list[dict[str, Any]]
    contacts_by_parent: dict[int, list[dict[str, Any]]]
    leads: list[dict[str, Any]]


@dataclasses.dataclass
class _CompanyMatch:
    partner: dict[str, Any] | None
    decisions: list[dict[str, Any]]


def _registry(partner: Mapping[str, Any]) -> str:
    return str(partner.get("company_registry") or "").strip().upper()


def _many2one_id(value: Any) -> int | None:
    """Odoo reads a many2one as ``[id, name]`` (or a bare id with ``load=None``), empty as False."""
    if isinstance(value, (list, tuple)) and value:
        return int(value[0])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _empty(value: Any) -> bool:
    return value is None or value is False or value == ""


def match_companies(records: Sequence[SyncRecord], partners: Sequence[Mapping[str, Any]]) -> dict[str, _CompanyMatch]:
    """Each record's existing company partner, if any: by UEN first for every record (so a UEN match
    is never taken by another record's domain or name), then by website domain, then by exact name."""
    by_registry: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for partner in partners:
        if _registry(partner):
            by_registry[_registry(partner)].append(partner)
    claimed: set[int] = set()
    matches: dict[str, _CompanyMatch] = {}
    for record in records:
        found = sorted(by_registry.get(record.uen, ()), key=lambda p: p["id"])
        if found:
            decisions = [{"matched_by": "uen", "partner_id": found[0]["id"]}]
            if len(found) > 1:
                decisions.append({"decision": "several Odoo companies share this UEN; used the oldest",
                                  "partner_ids": [p["id"] for p in found]})
            claimed.add(found[0]["id"])
            matches[record.uen] = _CompanyMatch(dict(found[0]), decisions)
    for record in records:
        if record.uen not in matches:
            matches[record.uen] = _match_by_domain_or_name(record, partners, claimed)
    return matches


def _match_by_domain_or_name(record: SyncRecord, partners: Sequence[Mapping[str, Any]],
                             claimed: set[int]) -> _CompanyMatch:
    names = {record.name, *record.other_names}
    decisions: list[dict[str, Any]] = []
    criteria = (("domain", lambda p: record.domain is not None and registrable_domain(p.get("website") or None)
                 == record.domain),
                ("name", lambda p: p.get("name") in names))
    for matched_by, matches in criteria:
        for partner in sorted(partners, key=lambda p: p["id"]):
            if partner["id"] in claimed or not matches(partner):
                continue
            if _registry(partner) and _registry(partner) != record.uen:
                decisions.append({"decision": f"not reused: same {matched_by} but another UEN",
                                  "partner_id": partner["id"], "odoo_uen": _registry(partner)})
                continue
            claimed.add(partner["id"])
            return _CompanyMatch(dict(partner), [{"matched_by": matched_by, "partner_id": partner["id"]}, *decisions])
    return _CompanyMatch(None, decisions)


def lead_description(record: SyncRecord) -> str:
    """The lead's notes (HTML): score, bucket, rationale and the reasons behind the score."""
    items = "".join(f"<li>{html.escape(_reason_text(reason))}</li>" for reason in record.reasons)
    return (f"<p><strong>Lead score:</strong> {record.score:.2f} ({html.escape(record.bucket)})</p>"
            f"<p>{html.escape(record.rationale)}</p>"
            + (f"<p>Reasons:</p><ul>{items}</ul>" if items else ""))


def _reason_text(reason: Mapping[str, Any]) -> str:
    """The reason's phrase and its effect, in words (reasons stored before phrases get a safe phrase)."""
    contribution = float(reason.get("contribution") or 0)
    text = str(reason.get("text") or "").strip() or fallback_phrase(str(reason.get("feature")),
                                                                  1.0 if contribution > 0 else 0.0)
    return f"{text} ({effect_words(contribution)})"


def _html_text(value: Any) -> str:
    """Visible text of stored HTML: Odoo sanitizes what it stores, so markup may differ, text does not."""
    if _empty(value):
        return ""
    return " ".join((LexborHTMLParser(str(value)).text(separator=" ") or "").split())


def _like_literal(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def _or(terms: Sequence[Any]) -> list[Any]:
    """Odoo's prefix notation for ``terms[0] OR terms[1] OR …``."""
    return ["|"] * (len(terms) - 1) + list(terms)


# -- the sync --------------------------------------------------------------------------------------
class OdooSync:
    """Syncs one tenant's records into one logged-in Odoo connection (one instance per run)."""

    def __init__(self, odoo: odoorpc.ODOO, tenant_id: int, *, score_min_export: float,
                 min_bucket: str = "Medium") -> None:
        if not 0.0 <= score_min_export <= 1.0:
            raise ValueError(f"score_min_export must be in [0, 1], got {score_min_export}")
        self.odoo = odoo
        self.tenant_id = tenant_id
        self.score_min_export = score_min_export
        self.buckets = buckets_at_or_above(min_bucket)
        self.rpc_calls = 0
        self._country_sg: int | None = None
        # Companies created this sync with contacts inside the create call, by partner id.
        self._created_with_contacts: dict[int, RecordOutcome] = {}

    def lead_token(self, uen: str) -> str:
        return f"[np-{self.tenant_id}-{uen.strip().upper()}]"

    # -- RPC ---------------------------------------------------------------------------------
    def _call(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One JSON-RPC ``execute_kw``; every call the sync makes goes through here and is counted."""
        self.rpc_calls += 1
        context = {**self.odoo.env.context, **kwargs.pop("context", {})}
        return self.odoo.execute_kw(model, method, list(args), {**kwargs, "context": context})

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except TRANSPORT_ERRORS as exc:
            raise OdooUnavailable(f"Odoo unreachable during the sync of tenant {self.tenant_id}: "
                                  f"{type(exc).__name__}: {exc}") from exc

    # -- entry point -------------------------------------------------------------------------
    def sync(self, records: Sequence[SyncRecord]) -> SyncReport:
        """Sync ``records``; raises :class:`OdooUnavailable` (and logs nothing) when Odoo is down."""
        calls_before = self.rpc_calls
        report = SyncReport()
        eligible = self._eligible(records, report)
        with self._reachable():
            snapshot = self._read_snapshot(eligible)
        matches = match_companies(eligible, snapshot.companies)
        self._created_with_contacts = {}
        for record in eligible:
            outcome = RecordOutcome(record.company_id, record.uen)
            report.outcomes.append(outcome)
            with self._reachable():
                self._sync_one(record, matches[record.uen], snapshot, outcome, report)
        with self._reachable():
            self._read_back_contacts(self._created_with_contacts)
        report.rpc_calls = self.rpc_calls - calls_before
        log.info("odoo sync of tenant %s: %s", self.tenant_id, report.summary())
        return report

    def _eligible(self, records: Sequence[SyncRecord], report: SyncReport) -> list[SyncRecord]:
        """Records at or above the minimum bucket, the first of each UEN (records come best first)."""
        seen: set[str] = set()
        eligible = []
        for record in records:
            if record.bucket not in self.buckets:
                report.skipped += 1
            elif record.uen not in seen:
                seen.add(record.uen)
                eligible.append(record)
        return eligible

    def _sync_one(self, record: SyncRecord, match: _CompanyMatch, snapshot: _Snapshot, outcome: RecordOutcome,
                  report: SyncReport) -> None:
        outcome.merge_decisions.extend(match.decisions)
        step = "company"
        try:
            if match.partner is None:
                outcome.partner_id = self._create_company(record, outcome, report)
            else:
                outcome.partner_id = match.partner["id"]
                self._update_company(record, match.partner, outcome, report)
                step = "contact"
                self._sync_contacts(record, outcome.partner_id,
                                    snapshot.contacts_by_parent.get(outcome.partner_id, []), outcome, report)
            step = "lead"
            if record.score >= self.score_min_export:
                self._sync_lead(record, outcome.partner_id, snapshot.leads, outcome, report)
        except TRANSPORT_ERRORS:
            raise
        # One record's failure (Odoo's RPCError, or data this code did not foresee) must not stop
        # the others; it is logged and the record is retried on the next run.
        except Exception as exc:  # noqa: BLE001
            report.counts[step].failed += 1
            outcome.operation = "error"
            message = str(exc) if isinstance(exc, odoorpc.error.RPCError) else f"{type(exc).__name__}: {exc}"
            outcome.error = f"{step}: {message}"[:MAX_ERROR_CHARS]
            log.warning("odoo sync of company %s for tenant %s failed at %s: %s", record.company_id,
                        self.tenant_id, step, outcome.error)

    # -- reads -------------------------------------------------------------------------------
    def _read_snapshot(self, records: Sequence[SyncRecord]) -> _Snapshot:
        companies = self._companies_by_uen(records)
        found_uens = {_registry(p) for p in companies}
        missing = [r for r in records if r.uen not in found_uens]
        if missing:
            known = {p["id"] for p in companies}
            companies += [p for p in self._companies_by_domain_or_name(missing) if p["id"] not in known]
        contacts_by_parent: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if companies:
            for contact in self._call(PARTNER, "search_read",
                                      [("parent_id", "in", [p["id"] for p in companies]), ("is_company", "=", False)],
                                      fields=CONTACT_FIELDS):
                contacts_by_parent[_many2one_id(contact["parent_id"]) or 0].append(contact)
        tokens = [self.lead_token(r.uen) for r in records if r.score >= self.score_min_export]
        leads = self._call(LEAD, "search_read", _or([("name", "ilike", _like_literal(t)) for t in tokens]),
                           fields=LEAD_FIELDS, context={"active_test": False}) if tokens else []
        return _Snapshot(companies, dict(contacts_by_parent), leads)

    def _companies_by_uen(self, records: Sequence[SyncRecord]) -> list[dict[str, Any]]:
        if not records:
            return []
        return self._call(PARTNER, "search_read",
                          [("is_company", "=", True), ("company_registry", "in", [r.uen for r in records])],
                          fields=COMPANY_FIELDS)

    def _companies_by_domain_or_name(self, records: Sequence[SyncRecord]) -> list[dict[str, Any]]:
        names = sorted({name for r in records for name in (r.name, *r.other_names)})
        domains = sorted({r.domain for r in records if r.domain})
        terms: list[Any] = [("name", "in", names)] + [("website", "ilike", _like_literal(d)) for d in domains]
        return self._call(PARTNER, "search_read", [("is_company", "=", True), *_or(terms)], fields=COMPANY_FIELDS)

    def _read_back_contacts(self, created: Mapping[int, RecordOutcome]) -> None:
        """Ids of the contacts created inside their company's create call (Odoo returns only the company's)."""
        if not created:
            return
        for contact in self._call(PARTNER, "search_read", [("parent_id", "in", sorted(created))],
                                  fields=["id", "parent_id"], order="id"):
            created[_many2one_id(contact["parent_id"]) or 0].contact_partner_ids.append(contact["id"])

    def _singapore_id(self) -> int | None:
        if self._country_sg is None:
            found = self._call("res.country", "search_read", [("code", "=", "SG")], fields=["id"], limit=1)
            self._country_sg = found[0]["id"] if found else 0
        return self._country_sg or None

    # -- company -----------------------------------------------------------------------------
    def _company_values(self, record: SyncRecord) -> dict[str, Any]:
        values = {"name": record.name, "is_company": True, "company_registry": record.uen,
                  "website": f"https://{record.domain}" if record.domain else None,
                  "street": record.street, "zip": record.zip, "country_id": self._singapore_id()}
        return {field: value for field, value in values.items() if not _empty(value)}

    def _create_company(self, record: SyncRecord, outcome: RecordOutcome, report: SyncReport) -> int:
        contacts = _unique_contacts(record.contacts)
        values = {**self._company_values(record),
                  "child_ids": [[0, 0, self._contact_values(contact)] for contact in contacts]}
        partner_id = int(self._call(PARTNER, "create", values))
        outcome.operation = "create"
        report.counts["company"].created += 1
        report.counts["contact"].created += len(contacts)
        if contacts:
            self._created_with_contacts[partner_id] = outcome
        return partner_id

    def _update_company(self, record: SyncRecord, partner: Mapping[str, Any], outcome: RecordOutcome,
                        report: SyncReport) -> None:
        if partner.get("name") not in {record.name, *record.other_names}:
            outcome.merge_decisions.append({"decision": "kept the name in Odoo", "field": "name",
                                            "odoo": partner.get("name"), "ours": record.name})
        changes = self._fill_empty(record.uen, partner, self._desired_company_fill(record, partner),
                                   COMPANY_FILLABLE, outcome)
        self._write_changes(PARTNER, partner["id"], changes, report.counts["company"], outcome)

    def _desired_company_fill(self, record: SyncRecord, partner: Mapping[str, Any]) -> dict[str, Any]:
        # The country is looked up only when Odoo lacks one, so an unchanged company costs no call.
        desired = {"company_registry": record.uen, "street": record.street, "zip": record.zip,
                   "website": f"https://{record.domain}" if record.domain else None}
        if _empty(partner.get("country_id")):
            desired["country_id"] = self._singapore_id()
        return desired

    def _write_changes(self, model: str, record_id: int, changes: Mapping[str, Any], counts: ModelCounts,
                       outcome: RecordOutcome) -> None:
        """Write only what changed; an unchanged record costs no call."""
        if changes:
            self._call(model, "write", [record_id], dict(changes))
            outcome.mark("update")
            counts.updated += 1
        else:
            counts.unchanged += 1

    def _fill_empty(self, key: str, current: Mapping[str, Any], desired: Mapping[str, Any], fields: Sequence[str],
                    outcome: RecordOutcome) -> dict[str, Any]:
        """The desired values of ``fields`` Odoo has no value for; differing values are kept and noted."""
        changes: dict[str, Any] = {}
        for field in fields:
            ours = desired.get(field)
            if _empty(ours):
                continue
            theirs = current.get(field)
            if _empty(theirs):
                changes[field] = ours
            elif not _same_value(field, theirs, ours):
                outcome.merge_decisions.append({"decision": "kept the value in Odoo", "record": key, "field": field,
                                                "odoo": _shown(theirs), "ours": _shown(ours)})
        return changes

    # -- contacts ----------------------------------------------------------------------------
    def _contact_values(self, contact: SyncContact) -> dict[str, Any]:
        # Odoo requires a contact's name; a role address (info@) without one is named by its address.
        values = {"name": contact.name or contact.email, "email": contact.email, "function": contact.title,
                  "phone": contact.phone, "type": "contact", "is_company": False}
        return {field: value for field, value in values.items() if not _empty(value)}

    def _sync_contacts(self, record: SyncRecord, partner_id: int, existing: Sequence[Mapping[str, Any]],
                       outcome: RecordOutcome, report: SyncReport) -> None:
        by_email = {str(c.get("email") or "").strip().lower(): c for c in sorted(existing, key=lambda c: c["id"])
                    if not _empty(c.get("email"))}
        to_create: list[SyncContact] = []
        for contact in _unique_contacts(record.contacts):
            found = by_email.get(contact.email)
            if found is None:
                to_create.append(contact)
                continue
            outcome.contact_partner_ids.append(found["id"])
            changes = self._fill_empty(contact.email, found, self._contact_values(contact), CONTACT_FILLABLE,
                                       outcome)
            self._write_changes(PARTNER, found["id"], changes, report.counts["contact"], outcome)
        if to_create:
            ids = self._call(PARTNER, "create",
                             [{**self._contact_values(c), "parent_id": partner_id} for c in to_create])
            outcome.contact_partner_ids.extend(int(i) for i in (ids if isinstance(ids, list) else [ids]))
            outcome.mark("update")
            report.counts["contact"].created += len(to_create)

    # -- lead --------------------------------------------------------------------------------
    def _lead_values(self, record: SyncRecord, partner_id: int) -> dict[str, Any]:
        contacts = _unique_contacts(record.contacts)
        primary = contacts[0] if contacts else None
        values = {"name": f"{record.name} {self.lead_token(record.uen)}", "partner_id": partner_id,
                  "description": lead_description(record), "priority": LEAD_PRIORITY.get(record.bucket, "0"),
                  "contact_name": primary.name if primary else None, "email_from": primary.email if primary else None,
                  "phone": primary.phone if primary else None, "function": primary.title if primary else None,
                  "website": f"https://{record.domain}" if record.domain else None}
        return {field: value for field, value in values.items() if not _empty(value)}

    def _sync_lead(self, record: SyncRecord, partner_id: int, leads: Sequence[Mapping[str, Any]],
                   outcome: RecordOutcome, report: SyncReport) -> None:
        token = self.lead_token(record.uen).casefold()
        mine = [lead for lead in leads if token in str(lead.get("name") or "").casefold()]
        # The lead on this partner first, then active before archived, then the oldest.
        mine.sort(key=lambda lead: (_many2one_id(lead.get("partner_id")) != partner_id, not lead.get("active"),
                                    lead["id"]))
        desired = self._lead_values(record, partner_id)
        if not mine:
            outcome.lead_id = int(self._call(LEAD, "create", desired))
            outcome.mark("update")
            report.counts["lead"].created += 1
            return
        lead = mine[0]
        outcome.lead_id = lead["id"]
        if len(mine) > 1:
            outcome.merge_decisions.append({"decision": "several leads carry this record's token; used one",
                                            "lead_ids": sorted(other["id"] for other in mine), "lead_id": lead["id"]})
        if not lead.get("active"):
            outcome.merge_decisions.append({"decision": "lead archived in Odoo; left as it is", "lead_id": lead["id"]})
            report.counts["lead"].unchanged += 1
            return
        changes = self._lead_changes(record, lead, desired, partner_id, outcome)
        self._write_changes(LEAD, lead["id"], changes, report.counts["lead"], outcome)

    def _lead_changes(self, record: SyncRecord, lead: Mapping[str, Any], desired: Mapping[str, Any],
                      partner_id: int, outcome: RecordOutcome) -> dict[str, Any]:
        changes = self._fill_empty(record.uen, lead, desired, LEAD_CONTACT_FILLABLE, outcome)
        linked = _many2one_id(lead.get("partner_id"))
        if linked is None:
            changes["partner_id"] = partner_id
        elif linked != partner_id:
            outcome.merge_decisions.append({"decision": "lead linked to another partner in Odoo; kept",
                                            "lead_id": lead["id"], "odoo_partner_id": linked})
        # The notes are the pipeline's; the priority follows them only when the score moved, so a
        # salesperson's own priority survives unchanged nights.
        if _html_text(lead.get("description")) != _html_text(desired["description"]):
            changes["description"] = desired["description"]
            changes["priority"] = desired["priority"]
        return changes


def _unique_contacts(contacts: Sequence[SyncContact]) -> list[SyncContact]:
    unique: dict[str, SyncContact] = {}
    for contact in contacts:
        email = contact.email.strip().lower()
        if email and email not in unique:
            unique[email] = dataclasses.replace(contact, email=email)
    return list(unique.values())


def _same_value(field: str, theirs: Any, ours: Any) -> bool:
    if field == "website":
        return registrable_domain(str(theirs)) == registrable_domain(str(ours))
    if field in ("country_id", "partner_id"):
        return _many2one_id(theirs) == ours
    if field == "company_registry":
        return str(theirs).strip().upper() == str(ours).strip().upper()
    return " ".join(str(theirs).split()).casefold() == " ".join(str(ours).split()).casefold()


def _shown(value: Any) -> Any:
    return value[1] if isinstance(value, (list, tuple)) and len(value) == 2 else value


# -- one tenant's step -----------------------------------------------------------------------------
def sync_and_record(db: Database, sync: OdooSync, records: Sequence[SyncRecord], *, run_id: uuid.UUID | None,
                    score_date: dt.date) -> SyncReport:
    """Run ``sync`` under the tenant's advisory lock, then log every record's outcome and put the
    Odoo ids on the scores, in one transaction. Two runs of one tenant take turns here, so the
    second finds what the first created. If Odoo is down, :class:`OdooUnavailable` propagates and
    nothing is written."""
    with tenant_lock(db, sync.tenant_id, LOCK_PURPOSE):
        report = sync.sync(records)
        entries = [outcome.log_entry() for outcome in report.outcomes]
        with db.tenant(sync.tenant_id) as conn:
            scores_db.insert_sync_log(conn, sync.tenant_id, run_id, entries)
            scores_db.record_odoo_ids(conn, sync.tenant_id, score_date, entries)
    return report
