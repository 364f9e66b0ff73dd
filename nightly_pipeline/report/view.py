"""The shortlist page's content, from the rows ``db.shortlist_page`` reads: plain values only, every
one of them text or a number, so the template does nothing but lay them out.

Everything that came from the web, a vendor or a model stays a string here and is escaped by the
template; the only links built are to the tenant's own Odoo, from its configured URL.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from nightly_pipeline.clock import TIMEZONE

from nightly_pipeline.domain import headcount as headcount_domain
from nightly_pipeline.domain.reason_text import CRAWL_OUTCOME_WORDS, effect_words, fallback_phrase

STATUS_WORDS: Mapping[str | None, str] = {
    "succeeded": "Finished", "partial": "Finished with failures (partial)", "failed": "Failed",
    "running": "Still running", "selected": "Targets chosen, not enriched yet", None: "No run for this date",
}
BADGES: Mapping[str | None, tuple[str, str, str]] = {
    # policy -> (css class, symbol, words)
    "deliverable": ("deliverable", "\u2713", "Verified deliverable"),
    "risky": ("risky", "!", "Risky: catch-all or unknown"),
    None: ("unverified", "?", "Unverified"),
    "suppressed": ("suppressed", "\u2715", "Suppressed: do not email"),
}
RATIONALE_SOURCE_WORDS = {"llm": "written by the model from the reasons", "cache": "written by the model (cached)",
                          "template": "written from the reasons by template"}
EXTRACTION_SOURCE_WORDS = {"llm": "read by the model", "cache": "read by the model (cached)",
                           "deterministic": "read without a model"}
DOMAIN_SOURCE_WORDS = {"acra": "from the registry", "tavily_search": "found by web search, confirmed on the site",
                       "name_guess": "guessed from the name, confirmed on the site"}
NAME_SOURCE_WORDS = {"site_page": "named with this title on the company's own site",
                     "lusha": "name and title from Lusha",
                     "email_local_part": "name read from the address, not confirmed"}
CONTACT_SOURCE_WORDS = {"site": "Address published on the company's site", "lusha": "Address from Lusha",
                        "site+lusha": "Address on the company's site and in Lusha"}
# The chart's bars share one scale across the page, so leads compare at a glance.
MIN_CHART_SCALE = 0.05
# Odoo 17.2 and later address a record by path; /web#id=… only survives as a redirect.
ODOO_PARTNER_PATH = "/odoo/contacts/{id}"
ODOO_LEAD_PATH = "/odoo/crm.lead/{id}"


@dataclasses.dataclass(frozen=True)
class Bar:
    text: str
    contribution: float
    effect: str
    points: str            # "+0.150" / "−0.050"
    raises: bool
    width_pct: float       # of the half-axis the bar grows along


@dataclasses.dataclass(frozen=True)
class Contact:
    name: str | None
    title: str | None
    email: str | None
    phone: str | None
    badge_class: str
    badge_symbol: str
    badge_text: str
    source: str
    name_source: str | None

    @property
    def provenance(self) -> str:
        """One sentence on where the address, name and title came from."""
        if self.name_source and not (self.source.endswith("Lusha") and self.name_source.endswith("Lusha")):
            return f"{self.source}; {self.name_source}."
        return f"{self.source}."


@dataclasses.dataclass(frozen=True)
class Crawl:
    domain: str | None
    domain_source: str | None
    outcome: str
    pages: tuple[str, ...]
    notes: tuple[str, ...]
    extraction: str | None


@dataclasses.dataclass(frozen=True)
class Lead:
    rank: int
    anchor: str
    company: str
    uen: str
    industry: str | None
    score: float
    score_text: str
    bucket: str
    rationale: str
    rationale_source: str
    bars: tuple[Bar, ...]
    raised: tuple[Bar, ...]
    lowered: tuple[Bar, ...]
    contact: Contact | None
    addresses: int
    phone: str | None      # the company's or a contact's number, for leads without an address
    employees: str
    employees_source: str
    odoo_partner_id: int | None
    odoo_partner_url: str | None
    odoo_lead_id: int | None
    odoo_lead_url: str | None
    crawl: Crawl
    actionable: bool
    not_actionable_because: str | None


@dataclasses.dataclass(frozen=True)
class VendorLine:
    vendor: str
    calls: int
    units: int
    unit_price: str | None
    cost: str | None


@dataclasses.dataclass(frozen=True)
class Page:
    tenant_id: int
    tenant_name: str
    run_date: str
    generated_at: str
    status: str | None
    status_words: str
    started_at: str | None
    finished_at: str | None
    error_summary: str | None
    targets: int
    scored: int
    shortlisted: int
    degradations: tuple[str, ...]
    vendors: tuple[VendorLine, ...]
    total_cost: str | None
    cost_per_lead: str | None
    cost_note: str | None
    odoo_base: str | None
    actionable: tuple[Lead, ...]
    not_actionable: tuple[Lead, ...]

    @property
    def leads(self) -> tuple[Lead, ...]:
        return self.actionable + self.not_actionable


def odoo_base_url(url: str | None) -> str | None:
    """The tenant's Odoo address as a link base, only for an http(s) URL with a host."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if any(ch in url for ch in "\"'<>`\\ \t\r\n"):
        return None
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"


def _record_url(base: str | None, template: str, record_id: Any) -> str | None:
    if base is None or isinstance(record_id, bool) or not isinstance(record_id, int) or record_id <= 0:
        return None
    return base + template.format(id=record_id)


def _time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(ZoneInfo(TIMEZONE)).strftime("%Y-%m-%d %H:%M SGT")


MINUS = "\u2212"


def _points(contribution: float) -> str:
    return f"{'+' if contribution >= 0 else MINUS}{abs(contribution):.3f}"


def _bars(row: Mapping[str, Any]) -> list[tuple[str, float]]:
    stored = row.get("contributions") or []
    if stored:
        return [(str(c.get("text") or fallback_phrase(str(c.get("feature")), 1.0 if float(c["contribution"]) > 0
                                                      else 0.0)), float(c["contribution"])) for c in stored]
    # Scores from before the full breakdown was kept: their top reasons.
    return [(str(r.get("text") or fallback_phrase(str(r.get("feature")), 1.0 if float(r["contribution"]) > 0
                                                  else 0.0)), float(r["contribution"]))
            for r in row.get("reasons") or []]


def _contact(row: Mapping[str, Any]) -> Contact | None:
    if not row.get("contact_email"):
        return None
    css, symbol, words = BADGES.get(row.get("contact_policy"), BADGES[None])
    return Contact(name=row.get("contact_name"), title=row.get("contact_title"), email=row["contact_email"],
                   phone=row.get("contact_phone"), badge_class=css, badge_symbol=symbol, badge_text=words,
                   source=CONTACT_SOURCE_WORDS.get(row.get("contact_source") or "", row.get("contact_source") or ""),
                   name_source=NAME_SOURCE_WORDS.get(row.get("contact_name_source") or ""))


# What the crawl stage records when a step falls back, in a salesperson's words.
CRAWL_NOTE_WORDS = {"no corpus": "no site text to read", "crawl thin": "the site's pages say little",
                    "no website found": "no website found for the company", "no OPENAI_API_KEY": "no model available"}


def _note(reason: str) -> str:
    if reason in CRAWL_NOTE_WORDS:
        return CRAWL_NOTE_WORDS[reason]
    if reason.startswith("no fallback: "):
        return f"no search-engine copy either ({reason.removeprefix('no fallback: ')})"
    if reason.startswith("crawl ") and ": " in reason:
        outcome, detail = reason.removeprefix("crawl ").split(": ", 1)
        return f"site {CRAWL_OUTCOME_WORDS.get(outcome, 'could not be crawled')} ({detail})"
    return reason


def _crawl(row: Mapping[str, Any]) -> Crawl:
    domain_info = row.get("crawl_domain") or {}
    domain = domain_info.get("value") or row.get("website_domain")
    outcome = str(row.get("crawl_outcome") or "")
    if not outcome:
        words = "not crawled tonight"
    elif outcome.startswith("crawl_"):
        words = f"site {CRAWL_OUTCOME_WORDS.get(outcome.removeprefix('crawl_'), 'could not be crawled')}"
    else:
        words = CRAWL_OUTCOME_WORDS.get(outcome, outcome.replace("_", " "))
    pages: list[str] = []
    for page in row.get("crawl_pages") or []:
        url = str(page.get("url") or "")
        path = urlsplit(url).path or "/"
        pages.append(f"{page.get('kind') or 'page'} ({path})")
    pages = list(dict.fromkeys(pages))  # the crawl and a search engine's copy can hold the same page
    notes = tuple(dict.fromkeys(_note(str(reason)) for reason in row.get("crawl_reasons") or []))
    extraction = EXTRACTION_SOURCE_WORDS.get(row.get("extraction_source") or "")
    if outcome == "no_website" and extraction is not None:
        extraction = "registry facts only"
    return Crawl(domain=domain, domain_source=DOMAIN_SOURCE_WORDS.get(str(domain_info.get("source") or ""),
                                                                      domain_info.get("source")),
                 outcome=words, pages=tuple(pages), notes=notes, extraction=extraction)


def _reachability(row: Mapping[str, Any], has_website: bool) -> str | None:
    """Why nobody can be reached today, or None when someone can."""
    phones = int(row.get("contact_phones") or 0) + len(row.get("site_phones") or [])
    if int(row.get("reachable_addresses") or 0) or phones:
        return None
    if int(row.get("addresses") or 0):
        return "every address found is undeliverable, and no phone number"
    return "a website, but no address or phone number on it" if has_website else "no website and no contact"


def lead_view(row: Mapping[str, Any], odoo_base: str | None, chart_scale: float) -> Lead:
    bars = []
    for text, contribution in _bars(row):
        bars.append(Bar(text=text, contribution=contribution, effect=effect_words(contribution),
                        points=_points(contribution), raises=contribution > 0,
                        width_pct=round(min(1.0, abs(contribution) / chart_scale) * 100, 1)))
    headcount = headcount_domain.from_company(row)
    crawl = _crawl(row)
    blocked = _reachability(row, has_website=bool(crawl.domain))
    score = float(row["score"])
    return Lead(
        rank=int(row["rank"]), anchor=f"lead-{int(row['rank'])}", company=str(row["company"]), uen=str(row["uen"]),
        industry=row.get("industry"), score=score, score_text=f"{score:.2f}", bucket=str(row["bucket"]),
        rationale=str(row.get("rationale") or ""),
        rationale_source=RATIONALE_SOURCE_WORDS.get(row.get("rationale_source") or "", ""),
        bars=tuple(bars), raised=tuple(b for b in bars if b.contribution > 0),
        lowered=tuple(b for b in bars if b.contribution < 0), contact=_contact(row),
        addresses=int(row.get("addresses") or 0),
        phone=row.get("contact_phone") or next(iter(row.get("site_phones") or []), None),
        employees=headcount.label if headcount.known else "not stated",
        employees_source=headcount.source_words if headcount.known else "no statement found, no estimate kept",
        odoo_partner_id=row.get("odoo_partner_id"),
        odoo_partner_url=_record_url(odoo_base, ODOO_PARTNER_PATH, row.get("odoo_partner_id")),
        odoo_lead_id=row.get("odoo_lead_id"),
        odoo_lead_url=_record_url(odoo_base, ODOO_LEAD_PATH, row.get("odoo_lead_id")),
        crawl=crawl, actionable=blocked is None, not_actionable_because=blocked)


def _unit_price(price: float) -> str:
    text = f"{Decimal(str(price)):f}"
    return f"US${text.rstrip('0').rstrip('.') if '.' in text else text}"


def _money(amount: Decimal) -> str:
    if amount and amount < Decimal("0.01"):
        return f"US${amount:.4f}"
    return f"US${amount:,.2f}"


def _costs(spend: Sequence[Mapping[str, Any]], prices: Mapping[str, float],
           shortlisted: int) -> tuple[tuple[VendorLine, ...], str | None, str | None, str | None]:
    lines: list[VendorLine] = []
    total = Decimal(0)
    unpriced: list[str] = []
    for row in spend:
        vendor, units = str(row["vendor"]), int(row["units_charged"] or 0)
        price = prices.get(vendor)
        if price is None and units > 0:
            unpriced.append(vendor)
        cost = Decimal(str(price)) * units if price is not None else None
        if cost is not None:
            total += cost
        lines.append(VendorLine(vendor=vendor, calls=int(row["calls"]), units=units,
                                unit_price=_unit_price(price) if price is not None else None,
                                cost=_money(cost) if cost is not None else None))
    if unpriced:
        note = (f"unknown: no unit price for {', '.join(unpriced)} (set VENDOR_UNIT_COSTS)" if prices
                else "unknown: no vendor unit prices are configured (set VENDOR_UNIT_COSTS)")
        return tuple(lines), None, None, note
    if not shortlisted:
        return tuple(lines), _money(total), None, "no lead was shortlisted"
    return tuple(lines), _money(total), _money(total / shortlisted), None


def page_view(night: Mapping[str, Any], spend: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
              prices: Mapping[str, float], run_date: dt.date, now: dt.datetime) -> Page:
    odoo_base = odoo_base_url(night.get("odoo_url"))
    scale = max([MIN_CHART_SCALE] + [abs(c) for row in rows for _, c in _bars(row)])
    leads = [lead_view(row, odoo_base, scale) for row in rows]
    vendors, total, per_lead, note = _costs(spend, prices, int(night.get("shortlisted") or 0))
    degradations = tuple(f"{d.get('step', 'run').replace('_', ' ')}: {d.get('cause')}"
                         for d in night.get("degradations") or [] if isinstance(d, Mapping))
    return Page(
        tenant_id=int(night["tenant_id"]), tenant_name=str(night["tenant_name"]), run_date=run_date.isoformat(),
        generated_at=_time(now) or "", status=night.get("status"), status_words=STATUS_WORDS.get(
            night.get("status"), str(night.get("status"))),
        started_at=_time(night.get("started_at")), finished_at=_time(night.get("finished_at")),
        error_summary=night.get("error_summary"), targets=int(night.get("targets") or 0),
        scored=int(night.get("scored") or 0), shortlisted=int(night.get("shortlisted") or 0),
        degradations=degradations, vendors=vendors, total_cost=total, cost_per_lead=per_lead, cost_note=note,
        odoo_base=odoo_base, actionable=tuple(lead for lead in leads if lead.actionable),
        not_actionable=tuple(lead for lead in leads if not lead.actionable))
