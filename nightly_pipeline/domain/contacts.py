"""Contacts of a company: who the crawl and Lusha found, how senior they are, which one to approach,
and what a ZeroBounce verdict means for an address.

Pure functions over plain data. Site contacts come from the published addresses (and the
company's phone line); the people the site names on its team, leadership and about pages, kept in
the crawl's signals, give an address its owner's name and title (see ``domain.site_people``), and
failing that a name is proposed from a ``first.last@`` local part.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from nightly_pipeline.domain.web import (
    ROLE_LOCAL_PARTS,
    EmailKind,
    classify_email,
    email_kind,
    is_free_mail,
    normalize_phone,
    registrable_domain,
)

from nightly_pipeline.domain.site_people import match_people_to_emails

NameSource = Literal["lusha", "email_local_part", "site_page"]

SITE = "site"
LUSHA = "lusha"
# The order sources are named in ``contacts.source`` ("site+lusha").
SOURCE_ORDER = (SITE, LUSHA)
# Whose person data (name, title, phone) wins when the same address comes from several sources.
# The company's own page naming a person and their title outranks a vendor's record of them.
_NAME_SOURCE_RANK: dict[str | None, int] = {None: 0, "email_local_part": 1, "lusha": 2, "site_page": 3}

UNKNOWN_SENIORITY = 0
# Lusha's seniority labels on the 1 (entry) … 6 (C-suite, founder, owner) scale used here.
LUSHA_SENIORITY = {"entry": 1, "senior": 2, "manager": 3, "director": 4, "vp": 5, "c-suite": 6,
                   "founder": 6, "owner": 6, "partner": 6}

# First match wins, so the exceptions come before the rules they would otherwise fall under
# ("Vice President" before "President", "Managing Director" before "Director").
_SENIORITY_RULES: tuple[tuple[int, re.Pattern[str]], ...] = tuple(
    (rank, re.compile(pattern)) for rank, pattern in (
        (1, r"\b(?:assistant|intern|trainee|apprentice)\b"),
        (5, r"\b(?:vice[\s-]+president|s?vp|evp|avp)\b"),
        (6, (r"\b(?:chief|ceo|cfo|coo|cto|cio|cmo|cro|cpo|founder|co-?founder|owner|proprietor|president"
             r"|chair(?:man|woman|person)?|managing\s+(?:director|partner)|md)\b")),
        (5, r"\b(?:head|general\s+manager|gm)\b"),
        (4, r"\b(?:director|partner)\b"),
        (3, r"\b(?:manager|lead|supervisor|principal)\b"),
        (2, r"\b(?:senior|sr\.?|specialist|consultant)\b"),
    ))
_LOCAL_PART_NAME = re.compile(r"([a-z]{2,})[._-]([a-z]{2,})")


def classify_title(title: str | None) -> int:
    """Seniority of a job title: 6 C-suite/founder/owner, 5 VP/head, 4 director, 3 manager,
    2 senior, 1 any other title, 0 no title."""
    text = " ".join((title or "").lower().split())
    if not text:
        return UNKNOWN_SENIORITY
    return next((rank for rank, pattern in _SENIORITY_RULES if pattern.search(text)), 1)


class Deliverability(enum.StrEnum):
    DELIVERABLE = "deliverable"
    RISKY = "risky"
    SUPPRESSED = "suppressed"


# ZeroBounce statuses: catch-all and unknown are kept but never count as valid.
STATUS_DELIVERABILITY: Mapping[str, Deliverability] = {
    "valid": Deliverability.DELIVERABLE,
    "catch-all": Deliverability.RISKY,
    "unknown": Deliverability.RISKY,
    "invalid": Deliverability.SUPPRESSED,
    "spamtrap": Deliverability.SUPPRESSED,
    "abuse": Deliverability.SUPPRESSED,
    "do_not_mail": Deliverability.SUPPRESSED,
}


def _status_key(status: str) -> str:
    key = status.strip().lower()
    return {"catch_all": "catch-all", "catchall": "catch-all", "do-not-mail": "do_not_mail"}.get(key, key)


@dataclasses.dataclass(frozen=True)
class VerificationPolicy:
    """What a ZeroBounce status means for an address and how long the verdict is trusted.

    ``unknown`` is a temporary state (greylisting, a slow server), so it is cached briefly and the
    address is verified again on a later night; the other verdicts last ``default_ttl``.
    """

    default_ttl: dt.timedelta = dt.timedelta(days=90)
    ttl_by_status: Mapping[str, dt.timedelta] = dataclasses.field(
        default_factory=lambda: {"unknown": dt.timedelta(days=1)})

    def deliverability(self, status: str) -> Deliverability:
        # A status this code does not know yet is kept out of exports as unproven, not suppressed.
        return STATUS_DELIVERABILITY.get(_status_key(status), Deliverability.RISKY)

    def ttl(self, status: str) -> dt.timedelta:
        return self.ttl_by_status.get(_status_key(status), self.default_ttl)


@dataclasses.dataclass(frozen=True)
class Contact:
    """One address of a company, as stored in ``contacts`` (one row per tenant, company, email)."""

    company_id: int
    email: str
    email_kind: EmailKind
    on_company_domain: bool
    full_name: str | None = None
    title: str | None = None
    seniority: int = UNKNOWN_SENIORITY
    phone: str | None = None
    linkedin: str | None = None
    sources: frozenset[str] = frozenset({SITE})
    name_source: NameSource | None = None
    vendor_ref: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def source(self) -> str:
        known = [s for s in SOURCE_ORDER if s in self.sources]
        return "+".join(known + sorted(self.sources - set(SOURCE_ORDER)))

    @property
    def is_personal(self) -> bool:
        return self.email_kind == "personal"

    @property
    def is_company_person(self) -> bool:
        """A person's address at the company's domain or on free mail (an owner's Gmail); a
        personal address on another company's domain (a web agency's credit) speaks for nobody here."""
        return self.is_personal and (self.on_company_domain or is_free_mail(self.email))


def sources_from_label(label: str) -> frozenset[str]:
    """``"site+lusha"`` → ``{"site", "lusha"}``."""
    return frozenset(part for part in label.split("+") if part)


def company_domain(company: Mapping[str, Any], signals: Mapping[str, Any]) -> str | None:
    """The company's registrable web domain: the one the crawl used, else the registry's."""
    crawled = signals.get("domain")
    value = crawled.get("value") if isinstance(crawled, Mapping) else None
    return registrable_domain(value or company.get("website_domain"))


def name_from_local_part(email: str) -> str | None:
    """``wei.ming@…`` → ``"Wei Ming"``: a proposal only, since a mailbox may read last.first."""
    local_part = email.partition("@")[0].lower()
    match = _LOCAL_PART_NAME.fullmatch(local_part)
    if match is None or email_kind(email) == "role" or ROLE_LOCAL_PARTS & set(match.groups()):
        return None
    return " ".join(token.title() for token in match.groups())


def _site_contact(company_id: int, hit: Mapping[str, Any], domain: str | None,
                  phone_line: str | None) -> Contact | None:
    email = str(hit.get("email") or "").strip().lower()
    if "@" not in email:
        return None
    classified = classify_email(email, domain, str(hit.get("source") or "text"))
    kind: EmailKind = hit.get("kind") if hit.get("kind") in ("personal", "role") else classified.kind
    on_domain = hit.get("on_company_domain")
    name = name_from_local_part(email) if kind == "personal" else None
    return Contact(
        company_id=company_id,
        email=email,
        email_kind=kind,
        on_company_domain=bool(classified.on_company_domain if on_domain is None else on_domain),
        full_name=name,
        # The published phone is the company's line: it belongs with the shared mailboxes, not a person.
        phone=phone_line if kind == "role" else None,
        sources=frozenset({SITE}),
        name_source="email_local_part" if name else None,
        vendor_ref={SITE: {"email_source": classified.source, "free_mail": classified.free_mail}},
    )


def contacts_from_signals(company: Mapping[str, Any], signals: Mapping[str, Any]) -> list[Contact]:
    """Site contacts from a company's stored signals (``SiteSignals.to_dict()`` without the corpus).

    One contact per address, in the order the crawl found them; free-mail and off-domain addresses
    are kept and classified so the primary choice can prefer the company's own domain.
    """
    domain = company_domain(company, signals)
    phones = [p for p in signals.get("phones") or [] if isinstance(p, str) and p]
    contacts: dict[str, Contact] = {}
    for hit in signals.get("emails") or []:
        if not isinstance(hit, Mapping):
            continue
        contact = _site_contact(int(company["company_id"]), hit, domain, phones[0] if phones else None)
        if contact is not None:
            contacts.setdefault(contact.email, contact)
    return name_from_site_people(list(contacts.values()), signals.get("people") or [])


def name_from_site_people(contacts: Sequence[Contact], people: Sequence[Mapping[str, Any]]) -> list[Contact]:
    """Personal addresses matched to a person the site names take that person's name and title."""
    named = match_people_to_emails(people, [c.email for c in contacts if c.is_personal])
    result = []
    for contact in contacts:
        person = named.get(contact.email) if contact.is_personal else None
        if person is None:
            result.append(contact)
            continue
        title = str(person.get("title") or "").strip() or None
        site_ref = {**contact.vendor_ref.get(SITE, {}),
                    "person": {"page": person.get("page"), "markup": person.get("source")}}
        result.append(dataclasses.replace(
            contact, full_name=str(person["name"]), title=title, seniority=classify_title(title),
            name_source="site_page", vendor_ref={**contact.vendor_ref, SITE: site_ref}))
    return result


def _first_email(addresses: Iterable[Any]) -> str | None:
    emails = [a for a in addresses if isinstance(a, str) and "@" in a]
    return emails[0].strip().lower() if emails else None


def contact_from_lusha(company_id: int, domain: str | None, person: Mapping[str, Any]) -> Contact | None:
    """A contact from an enriched Lusha person (the shape stored in ``lusha_lookups.contacts``);
    None when Lusha revealed no address, since a contact is keyed by its address."""
    email = _first_email(person.get("emails") or [])
    if email is None:
        return None
    classified = classify_email(email, domain, "lusha")
    title = person.get("job_title") or None
    label_rank = LUSHA_SENIORITY.get(str(person.get("seniority") or "").strip().lower(), UNKNOWN_SENIORITY)
    phone = next(filter(None, (normalize_phone(str(p)) for p in person.get("phones") or [])), None)
    full_name = person.get("full_name") or " ".join(
        filter(None, (person.get("first_name"), person.get("last_name")))) or None
    return Contact(
        company_id=company_id,
        email=email,
        email_kind=classified.kind,
        on_company_domain=classified.on_company_domain,
        full_name=full_name,
        title=title,
        seniority=max(classify_title(title), label_rank),
        phone=phone,
        linkedin=person.get("linkedin") or None,
        sources=frozenset({LUSHA}),
        name_source="lusha" if full_name else None,
        vendor_ref={LUSHA: {"contact_id": person.get("contact_id"), "request_id": person.get("request_id")}},
    )


def merge_contacts(stored: Contact, incoming: Contact) -> Contact:
    """One contact from two sightings of the same address: sources and vendor references are
    united; person fields come from the richer source (a Lusha name beats one read off a mailbox)."""
    if (stored.company_id, stored.email) != (incoming.company_id, incoming.email):
        raise ValueError(f"cannot merge {stored.email} of company {stored.company_id} with "
                         f"{incoming.email} of company {incoming.company_id}")
    incoming_richer = _NAME_SOURCE_RANK[incoming.name_source] >= _NAME_SOURCE_RANK[stored.name_source]
    rich, other = (incoming, stored) if incoming_richer else (stored, incoming)
    title = rich.title or other.title
    return Contact(
        company_id=incoming.company_id,
        email=incoming.email,
        email_kind=incoming.email_kind,
        on_company_domain=incoming.on_company_domain or stored.on_company_domain,
        full_name=rich.full_name or other.full_name,
        title=title,
        seniority=rich.seniority if title == rich.title else other.seniority,
        phone=rich.phone or other.phone,
        linkedin=rich.linkedin or other.linkedin,
        sources=stored.sources | incoming.sources,
        name_source=rich.name_source if rich.full_name else other.name_source,
        vendor_ref={**stored.vendor_ref, **incoming.vendor_ref},
    )


def _title_pattern(title: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(' '.join(title.lower().split()))}(?![a-z0-9])")


def preferred_title_rank(title: str | None, preferred_titles: Sequence[str]) -> int:
    """Index of the first preferred title the job title contains (``len(preferred_titles)`` if none)."""
    text = " ".join((title or "").lower().split())
    for index, preferred in enumerate(preferred_titles):
        if text and preferred.strip() and _title_pattern(preferred).search(text):
            return index
    return len(preferred_titles)


def choose_primary(contacts: Iterable[Contact], preferred_titles: Sequence[str],
                   verification: Mapping[str, Deliverability | str]) -> Contact | None:
    """The contact to approach: preferred titles in their given order, then seniority, then a
    deliverable address; a suppressed address never. Remaining ties go to the company's own people
    over shared mailboxes and outsiders, the company's domain, then the address (so the choice is
    deterministic)."""
    def policy(contact: Contact) -> str | None:
        value = verification.get(contact.email)
        return str(value) if value is not None else None

    eligible = [c for c in contacts if policy(c) != Deliverability.SUPPRESSED]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (
        preferred_title_rank(c.title, preferred_titles),
        -c.seniority,
        policy(c) != Deliverability.DELIVERABLE,
        not c.is_company_person,
        not c.on_company_domain,
        c.email,
    ))


T = TypeVar("T")


def fair_order(groups: Sequence[Sequence[T]]) -> list[T]:
    """Every group's first item (groups in their order), then every group's second, and so on: the
    order a shared cap is spent in, so that a cap cut short leaves no group with all and another with none."""
    longest = max((len(group) for group in groups), default=0)
    return [group[rank] for rank in range(longest) for group in groups if rank < len(group)]


def batches_by_key(items: Iterable[tuple[str, T]], size: int) -> list[tuple[str, list[T]]]:
    """``(key, item)`` pairs gathered per key into batches of at most ``size`` items; the batches come
    in the order of their first item and keep the items' order."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    by_key: dict[str, list[T]] = {}
    for key, item in items:
        by_key.setdefault(key, []).append(item)
    return [(key, group[start:start + size]) for key, group in by_key.items()
            for start in range(0, len(group), size)]
