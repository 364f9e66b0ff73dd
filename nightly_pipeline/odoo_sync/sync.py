"""Push a tenant's scored companies to its Odoo so that re-runs never duplicate anything.

Odoo has no upsert, so every record is found before it is written, on the stable keys of
:mod:`nightly_pipeline.odoo_sync.matching`; a partner found by domain or name gets the UEN
written, so later nights find it by UEN.

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

import datetime as dt
import html
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import odoorpc
from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.db import scores as scores_db
from nightly_pipeline.db.database import Database, tenant_lock
from nightly_pipeline.domain.reason_text import effect_words, fallback_phrase
from nightly_pipeline.scoring.score import buckets_at_or_above
from nightly_pipeline.odoo_sync.matching import (
    CompanyMatch,
    changes_to_fill,
    lead_token,
    match_companies,
    match_contacts,
    match_lead,
    unique_contacts,
)
from nightly_pipeline.odoo_sync.records import (
    COMPANY_FIELDS,
    CONTACT_FIELDS,
    LEAD_FIELDS,
    MergeDecision,
    ModelCounts,
    OdooCompany,
    OdooContact,
    OdooLead,
    RecordOutcome,
    Snapshot,
    SyncContact,
    SyncRecord,
    SyncReport,
    is_empty,
)
from nightly_pipeline.vendors.odoo import OdooClient, OdooUnavailable

log = logging.getLogger(__name__)

LOCK_PURPOSE = "odoo_sync"
PARTNER = "res.partner"
LEAD = "crm.lead"
# Company fields the sync fills when Odoo has nothing there (the name only on create).
COMPANY_FILLABLE = ("company_registry", "website", "street", "zip", "country_id")
CONTACT_FILLABLE = ("function", "phone")
LEAD_CONTACT_FILLABLE = ("contact_name", "email_from", "phone", "function", "website")
LEAD_PRIORITY = {"High": "2", "Medium": "1", "Low": "0"}
MAX_ERROR_CHARS = 500


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
    if is_empty(value):
        return ""
    return " ".join((LexborHTMLParser(str(value)).text(separator=" ") or "").split())


def _like_literal(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def _or(terms: Sequence[Any]) -> list[Any]:
    """Odoo's prefix notation for ``terms[0] OR terms[1] OR …``."""
    return ["|"] * (len(terms) - 1) + list(terms)


def _without_empty(values: Mapping[str, Any]) -> dict[str, Any]:
    return {field: value for field, value in values.items() if not is_empty(value)}


class OdooSync:
    """Syncs one tenant's records into one logged-in Odoo connection (one instance per run)."""

    def __init__(self, odoo: OdooClient, tenant_id: int, *, score_min_export: float,
                 min_bucket: str = "Medium") -> None:
        if not 0.0 <= score_min_export <= 1.0:
            raise ValueError(f"score_min_export must be in [0, 1], got {score_min_export}")
        self.odoo = odoo
        self.tenant_id = tenant_id
        self.score_min_export = score_min_export
        self.buckets = buckets_at_or_above(min_bucket)
        self._country_sg: int | None = None
        # Companies created this sync with contacts inside the create call, by partner id.
        self._created_with_contacts: dict[int, RecordOutcome] = {}

    @property
    def rpc_calls(self) -> int:
        """JSON-RPC calls made on this sync's client so far."""
        return self.odoo.rpc_calls

    def lead_token(self, uen: str) -> str:
        return lead_token(self.tenant_id, uen)

    # -- entry point -------------------------------------------------------------------------
    def sync(self, records: Sequence[SyncRecord]) -> SyncReport:
        """Sync ``records``; raises :class:`OdooUnavailable` (and logs nothing) when Odoo is down."""
        calls_before = self.rpc_calls
        report = SyncReport()
        eligible = self._eligible(records, report)
        snapshot = self._read_snapshot(eligible)
        matches = match_companies(eligible, snapshot.companies)
        self._created_with_contacts = {}
        for record in eligible:
            outcome = RecordOutcome(record.company_id, record.uen)
            report.outcomes.append(outcome)
            self._sync_one(record, matches[record.uen], snapshot, outcome, report)
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

    def _sync_one(self, record: SyncRecord, match: CompanyMatch, snapshot: Snapshot, outcome: RecordOutcome,
                  report: SyncReport) -> None:
        outcome.merge_decisions.extend(match.decisions)
        step = "company"
        try:
            if match.company is None:
                outcome.partner_id = self._create_company(record, outcome, report)
            else:
                outcome.partner_id = match.company.id
                self._update_company(record, match.company, outcome, report)
                step = "contact"
                self._sync_contacts(record, outcome.partner_id, snapshot.contacts, outcome, report)
            step = "lead"
            if record.score >= self.score_min_export:
                self._sync_lead(record, outcome.partner_id, snapshot.leads, outcome, report)
        except OdooUnavailable:
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
    def _read_snapshot(self, records: Sequence[SyncRecord]) -> Snapshot:
        companies = self._companies_by_uen(records)
        found_uens = {c.uen for c in companies}
        missing = [r for r in records if r.uen not in found_uens]
        if missing:
            known = {c.id for c in companies}
            companies += [c for c in self._companies_by_domain_or_name(missing) if c.id not in known]
        contacts: list[OdooContact] = []
        if companies:
            contacts = [OdooContact.from_read(row) for row in self.odoo.search_read(
                PARTNER, [("parent_id", "in", [c.id for c in companies]), ("is_company", "=", False)],
                CONTACT_FIELDS)]
        tokens = [self.lead_token(r.uen) for r in records if r.score >= self.score_min_export]
        leads = [OdooLead.from_read(row) for row in self.odoo.search_read(
            LEAD, _or([("name", "ilike", _like_literal(t)) for t in tokens]), LEAD_FIELDS,
            context={"active_test": False})] if tokens else []
        return Snapshot(tuple(companies), tuple(contacts), tuple(leads))

    def _companies_by_uen(self, records: Sequence[SyncRecord]) -> list[OdooCompany]:
        if not records:
            return []
        return [OdooCompany.from_read(row) for row in self.odoo.search_read(
            PARTNER, [("is_company", "=", True), ("company_registry", "in", [r.uen for r in records])],
            COMPANY_FIELDS)]

    def _companies_by_domain_or_name(self, records: Sequence[SyncRecord]) -> list[OdooCompany]:
        names = sorted({name for r in records for name in r.names})
        domains = sorted({r.domain for r in records if r.domain})
        terms: list[Any] = [("name", "in", names)] + [("website", "ilike", _like_literal(d)) for d in domains]
        return [OdooCompany.from_read(row) for row in self.odoo.search_read(
            PARTNER, [("is_company", "=", True), *_or(terms)], COMPANY_FIELDS)]

    def _read_back_contacts(self, created: Mapping[int, RecordOutcome]) -> None:
        """Ids of the contacts created inside their company's create call (Odoo returns only the company's)."""
        if not created:
            return
        for row in self.odoo.search_read(PARTNER, [("parent_id", "in", sorted(created))], ["id", "parent_id"],
                                         order="id"):
            contact = OdooContact.from_read(row)
            if contact.parent_id in created:
                created[contact.parent_id].contact_partner_ids.append(contact.id)

    def _singapore_id(self) -> int | None:
        if self._country_sg is None:
            found = self.odoo.search_read("res.country", [("code", "=", "SG")], ["id"], limit=1)
            self._country_sg = found[0]["id"] if found else 0
        return self._country_sg or None

    # -- writes ------------------------------------------------------------------------------
    def _write_changes(self, model: str, record_id: int, changes: Mapping[str, Any], counts: ModelCounts,
                       outcome: RecordOutcome) -> None:
        """Write only what changed; an unchanged record costs no call."""
        if changes:
            self.odoo.write(model, [record_id], changes)
            outcome.mark("update")
            counts.updated += 1
        else:
            counts.unchanged += 1

    def _fill_empty(self, key: str, current: Any, desired: Mapping[str, Any], fields: Sequence[str],
                    outcome: RecordOutcome) -> dict[str, Any]:
        changes, decisions = changes_to_fill(key, current, desired, fields)
        outcome.merge_decisions.extend(decisions)
        return changes

    # -- company -----------------------------------------------------------------------------
    def _company_values(self, record: SyncRecord) -> dict[str, Any]:
        return _without_empty({"name": record.name, "is_company": True, "company_registry": record.uen,
                               "website": record.website, "street": record.street, "zip": record.zip,
                               "country_id": self._singapore_id()})

    def _create_company(self, record: SyncRecord, outcome: RecordOutcome, report: SyncReport) -> int:
        contacts = unique_contacts(record.contacts)
        values = {**self._company_values(record),
                  "child_ids": [[0, 0, self._contact_values(contact)] for contact in contacts]}
        partner_id = int(self.odoo.create(PARTNER, values))
        outcome.operation = "create"
        report.counts["company"].created += 1
        report.counts["contact"].created += len(contacts)
        if contacts:
            self._created_with_contacts[partner_id] = outcome
        return partner_id

    def _update_company(self, record: SyncRecord, company: OdooCompany, outcome: RecordOutcome,
                        report: SyncReport) -> None:
        if company.name not in record.names:
            outcome.merge_decisions.append(MergeDecision(decision="kept the name in Odoo", field="name",
                                                         odoo=company.name, ours=record.name))
        changes = self._fill_empty(record.uen, company, self._desired_company_fill(record, company),
                                   COMPANY_FILLABLE, outcome)
        self._write_changes(PARTNER, company.id, changes, report.counts["company"], outcome)

    def _desired_company_fill(self, record: SyncRecord, company: OdooCompany) -> dict[str, Any]:
        # The country is looked up only when Odoo lacks one, so an unchanged company costs no call.
        desired = {"company_registry": record.uen, "street": record.street, "zip": record.zip,
                   "website": record.website}
        if company.country_id is None:
            desired["country_id"] = self._singapore_id()
        return desired

    # -- contacts ----------------------------------------------------------------------------
    def _contact_values(self, contact: SyncContact) -> dict[str, Any]:
        # Odoo requires a contact's name; a role address (info@) without one is named by its address.
        return _without_empty({"name": contact.name or contact.email, "email": contact.email,
                               "function": contact.title, "phone": contact.phone, "type": "contact",
                               "is_company": False})

    def _sync_contacts(self, record: SyncRecord, partner_id: int, existing: Sequence[OdooContact],
                       outcome: RecordOutcome, report: SyncReport) -> None:
        matched = match_contacts(partner_id, record.contacts, existing)
        for contact, odoo_contact in matched.found:
            outcome.contact_partner_ids.append(odoo_contact.id)
            changes = self._fill_empty(contact.email, odoo_contact, self._contact_values(contact), CONTACT_FILLABLE,
                                       outcome)
            self._write_changes(PARTNER, odoo_contact.id, changes, report.counts["contact"], outcome)
        if matched.missing:
            ids = self.odoo.create(PARTNER, [{**self._contact_values(c), "parent_id": partner_id}
                                             for c in matched.missing])
            outcome.contact_partner_ids.extend(int(i) for i in (ids if isinstance(ids, list) else [ids]))
            outcome.mark("update")
            report.counts["contact"].created += len(matched.missing)

    # -- lead --------------------------------------------------------------------------------
    def _lead_values(self, record: SyncRecord, partner_id: int) -> dict[str, Any]:
        contacts = unique_contacts(record.contacts)
        primary = contacts[0] if contacts else None
        return _without_empty({
            "name": f"{record.name} {self.lead_token(record.uen)}", "partner_id": partner_id,
            "description": lead_description(record), "priority": LEAD_PRIORITY.get(record.bucket, "0"),
            "contact_name": primary.name if primary else None, "email_from": primary.email if primary else None,
            "phone": primary.phone if primary else None, "function": primary.title if primary else None,
            "website": record.website})

    def _sync_lead(self, record: SyncRecord, partner_id: int, leads: Sequence[OdooLead],
                   outcome: RecordOutcome, report: SyncReport) -> None:
        matched = match_lead(self.lead_token(record.uen), partner_id, leads)
        desired = self._lead_values(record, partner_id)
        if matched.lead is None:
            outcome.lead_id = int(self.odoo.create(LEAD, desired))
            outcome.mark("update")
            report.counts["lead"].created += 1
            return
        lead = matched.lead
        outcome.lead_id = lead.id
        outcome.merge_decisions.extend(matched.decisions)
        if not lead.active:
            outcome.merge_decisions.append(MergeDecision(decision="lead archived in Odoo; left as it is",
                                                         lead_id=lead.id))
            report.counts["lead"].unchanged += 1
            return
        changes = self._lead_changes(record, lead, desired, partner_id, outcome)
        self._write_changes(LEAD, lead.id, changes, report.counts["lead"], outcome)

    def _lead_changes(self, record: SyncRecord, lead: OdooLead, desired: Mapping[str, Any],
                      partner_id: int, outcome: RecordOutcome) -> dict[str, Any]:
        changes = self._fill_empty(record.uen, lead, desired, LEAD_CONTACT_FILLABLE, outcome)
        if lead.partner_id is None:
            changes["partner_id"] = partner_id
        elif lead.partner_id != partner_id:
            outcome.merge_decisions.append(MergeDecision(decision="lead linked to another partner in Odoo; kept",
                                                         lead_id=lead.id, odoo_partner_id=lead.partner_id))
        # The notes are the pipeline's; the priority follows them only when the score moved, so a
        # salesperson's own priority survives unchanged nights.
        if _html_text(lead.description) != _html_text(desired["description"]):
            changes["description"] = desired["description"]
            changes["priority"] = desired["priority"]
        return changes


# -- one tenant's step -----------------------------------------------------------------------------
def log_entry(outcome: RecordOutcome) -> scores_db.SyncLogEntry:
    """A record's outcome as a row of ``odoo_sync_log``."""
    return scores_db.SyncLogEntry(
        company_id=outcome.company_id, partner_id=outcome.partner_id,
        contact_partner_ids=list(outcome.contact_partner_ids), lead_id=outcome.lead_id, operation=outcome.operation,
        merge_decisions=[decision.to_dict() for decision in outcome.merge_decisions], error=outcome.error)


def sync_and_record(db: Database, sync: OdooSync, records: Sequence[SyncRecord], *, run_id: uuid.UUID | None,
                    score_date: dt.date) -> SyncReport:
    """Run ``sync`` under the tenant's advisory lock, then log every record's outcome and put the
    Odoo ids on the scores, in one transaction. Two runs of one tenant take turns here, so the
    second finds what the first created. If Odoo is down, :class:`OdooUnavailable` propagates and
    nothing is written."""
    with tenant_lock(db, sync.tenant_id, LOCK_PURPOSE):
        report = sync.sync(records)
        entries = [log_entry(outcome) for outcome in report.outcomes]
        with db.tenant(sync.tenant_id) as conn:
            scores_db.insert_sync_log(conn, run_id, entries)
            scores_db.record_odoo_ids(conn, score_date, entries)
    return report
