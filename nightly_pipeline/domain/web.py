"""Web domains, email addresses and phone numbers as the pipeline reads them: pure and offline.

The one place that decides what a company's registrable domain is, which mailboxes are shared
role addresses or free mail, and what a valid phone number looks like; the crawler, the contacts
stage and the Odoo sync all ask here.
"""
from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers
import tldextract

EmailKind = Literal["role", "personal"]
# Numbers without a country code are read as Singapore numbers.
DEFAULT_PHONE_REGION = "SG"

# Local parts of shared mailboxes: an address starting with one of them reaches a team, not a person.
ROLE_LOCAL_PARTS = frozenset(
    {
        "info", "sales", "hello", "hi", "admin", "administration", "contact", "contactus",
        "enquiry", "enquiries", "enquire", "inquiry", "inquiries", "support", "help", "helpdesk",
        "hr", "careers", "career", "jobs", "recruit", "recruitment", "hiring", "talent",
        "marketing", "office", "accounts", "account", "accounting", "finance", "billing",
        "invoice", "invoices", "payments", "service", "services", "customerservice",
        "customercare", "care", "cs", "general", "mail", "team", "biz", "business", "partners",
        "partnership", "partnerships", "press", "media", "pr", "legal", "privacy", "compliance",
        "webmaster", "operations", "ops", "booking", "bookings", "reservations", "orders",
        "order", "shop", "store", "feedback", "secretary", "reception", "frontdesk",
        "admissions", "ask", "query", "queries", "it", "procurement", "purchasing", "events",
    }
)
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.com.sg", "ymail.com", "rocketmail.com",
        "hotmail.com", "hotmail.sg", "outlook.com", "outlook.sg", "live.com", "live.com.sg",
        "msn.com", "icloud.com", "me.com", "mac.com", "aol.com", "protonmail.com", "proton.me",
        "pm.me", "gmx.com", "gmx.net", "mail.com", "yandex.com", "zohomail.com", "qq.com",
        "163.com", "126.com", "sina.com", "naver.com", "hanmail.net", "rediffmail.com",
        "singnet.com.sg", "pacific.net.sg", "starhub.net.sg", "tutanota.com", "fastmail.com",
    }
)

_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
_LOCAL_PART_SEPARATORS = re.compile(r"[._+-]")


@functools.cache
def _extractor() -> tldextract.TLDExtract:
    # suffix_list_urls=() keeps tldextract on the snapshot bundled with the package: no network.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _host(value: str) -> str | None:
    text = value.strip().lower()
    if not text:
        return None
    if "://" not in text and not text.startswith("//"):
        text = "//" + text
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # a malformed IPv6 literal
        return None
    # Credentials in front of the host ("info@acme.sg" read as a URL) make it an address, not a site.
    if not host or "@" in parts.netloc or " " in parts.netloc:
        return None
    return host.rstrip(".")


# A crawl asks for the registrable domain of every link of every page (social networks, the site's own
# pages), a few hundred distinct values many thousands of times, and a public-suffix lookup is not cheap.
@functools.lru_cache(maxsize=65_536)
def registrable_domain(value: str | None) -> str | None:
    """``https://www.Acme.com.sg/about`` → ``acme.com.sg``, from a URL, a host or a bare domain.

    None for anything that has no registrable domain: an empty value, an email address, a host
    that is not a valid DNS name, a name without a public suffix (``localhost``, ``intranet``) and
    an IP address. An IP address is never a company's web domain, and two sites on one IP are not
    one company; a caller that needs a key for "the same host" falls back to the host itself.
    """
    host = _host(value or "")
    if host is None:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not _HOST.match(host):
        return None
    parts = _extractor()(host)
    if not parts.suffix or not parts.domain:
        return None
    return f"{parts.domain}.{parts.suffix}"


def has_public_suffix(domain: str) -> bool:
    """True when ``domain`` ends in a suffix of the public-suffix list (``.sg``, ``.com.sg``)."""
    return bool(_extractor()(domain.rstrip(".").lower()).suffix)


# -- email addresses -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EmailHit:
    """An address and what it is; ``source`` says where it was found (``mailto``, ``lusha``, …)."""

    email: str
    kind: EmailKind
    on_company_domain: bool
    free_mail: bool
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def email_kind(email: str) -> EmailKind:
    """``role`` for shared mailboxes (``info@``, ``sales@``, ``info.sg@``), else ``personal``."""
    local_part = email.partition("@")[0].lower()
    first_token = _LOCAL_PART_SEPARATORS.split(local_part, maxsplit=1)[0]
    compact = _LOCAL_PART_SEPARATORS.sub("", local_part)
    return "role" if first_token in ROLE_LOCAL_PARTS or compact in ROLE_LOCAL_PARTS else "personal"


def is_free_mail(email: str) -> bool:
    """An address at a webmail provider (Gmail, Yahoo, SingNet, …) rather than at a company."""
    domain = email.rpartition("@")[2].lower()
    return domain in FREE_MAIL_DOMAINS or registrable_domain(domain) in FREE_MAIL_DOMAINS


def classify_email(email: str, company_domain: str | None, source: str) -> EmailHit:
    """Role or personal, on the company's registrable domain or not, free mail or not.

    ``company_domain`` (URL or bare domain) is compared by registrable domain, so
    ``acme.com.sg.evil.com`` does not count as ``acme.com.sg``.
    """
    company_site = registrable_domain(company_domain)
    return EmailHit(
        email=email,
        kind=email_kind(email),
        on_company_domain=company_site is not None
        and registrable_domain(email.rpartition("@")[2]) == company_site,
        free_mail=is_free_mail(email),
        source=source,
    )


# -- phone numbers ---------------------------------------------------------------------------------
def normalize_phone(raw: str) -> str | None:
    """``raw`` as E.164 when it is a valid number (Singapore unless it has a country code)."""
    try:
        number = phonenumbers.parse(raw, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
