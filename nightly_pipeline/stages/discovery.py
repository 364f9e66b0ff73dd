"""Finding the website of a company the registry gives none: name guesses first, then a Tavily search.

A guess (``acme-robotics.com.sg`` for ``ACME ROBOTICS PTE. LTD.``) is only the company's site when
its home page says so: the UEN on the page, or the company's name as the page's own name. Similar
names are common, so a page naming another UEN, or presenting itself under a longer name ("Acme
Robotics Trading"), is a look-alike and rejected. Only the home page of a guess is ever fetched.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser

from nightly_pipeline.crawl.crawler import SiteCrawler
from nightly_pipeline.crawl.fetcher import FetchResult
from nightly_pipeline.crawl.pages import parse_html
from nightly_pipeline.crawl.signals import decode_html
from nightly_pipeline.crawl.signals.html import SOCIAL_DOMAINS, page_meta_from_tree, visible_text_from_tree
from nightly_pipeline.crawl.signals.jsonld import iter_nodes, jsonld_values, organization_from_values
from nightly_pipeline.domain.acra import core_name
from nightly_pipeline.domain.web import registrable_domain
from nightly_pipeline.stages.tavily_fallback import SearchHit, TavilyFallback

logger = logging.getLogger(__name__)

# Where Singapore companies register, most common first.
GUESS_SUFFIXES = ("com.sg", "sg", "com")
UEN_CONFIDENCE = 0.95
NAME_CONFIDENCE = 0.8          # the name as the page's own name: title, JSON-LD, footer
TEXT_CONFIDENCE = 0.7          # the name in running text only
# A search snippet is Tavily's summary of a page we could not read ourselves.
SNIPPET_CONFIDENCE_FACTOR = 0.6
SEARCH_RESULTS = 5

Source = Literal["name_guess", "tavily_search"]

_MAX_LABEL_CHARS = 63
_MAX_DOMAIN_CHARS = 253
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00a0": " "})
_SLUG_WORD = re.compile(r"[^\W_]+")
# "ACME (S) PTE. LTD." trades as Acme: the country qualifier is part of the registration only.
_COUNTRY_QUALIFIER = re.compile(r"\(\s*(?:S|SG|SINGAPORE)\s*\)", re.IGNORECASE)
_NAME_WORD = re.compile(r"[^\W_]+(?:[&'][^\W_]+)*")
_UEN_BODY = r"(?:\d{8}[A-Z]|(?:19|20)\d{7}[A-Z]|[STR]\d{2}[A-Z]{2}\d{4}[A-Z])"
# A UEN the page attributes to itself; bare numbers elsewhere on a page are too ambiguous.
_LABELLED_UEN = re.compile(
    r"(?i:\bUEN|\b(?:company\s+)?reg(?:istration)?\.?\s*(?:no|number))\.?\s*[:#.]?\s*"
    rf"({_UEN_BODY})(?![A-Za-z0-9])")
_TITLE_SEPARATORS = re.compile(r"\s+[|\u2013\u2014\u00b7\u2022:-]\s+|\s*\|\s*")
_FOLLOWING_WORD = re.compile(r"[ \t]+([^\W\d_][\w&'-]*)")
# Words that follow a company's name without making it another company's name.
_NAME_TAIL_WORDS = frozenset({
    "pte", "ltd", "private", "limited", "llp", "inc", "corp", "co", "singapore", "sg",
    "official", "website", "homepage", "home", "site",
})


# -- candidates --------------------------------------------------------------------------------------------
def _fold(text: str) -> str:
    """Accents removed and typographic apostrophes straightened: ``Café’s`` → ``Cafe's``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def trading_name(legal_name: str) -> str:
    """``"ACME (S) PTE. LTD."`` → ``"ACME"``: the name without legal form or country qualifier."""
    return " ".join(_COUNTRY_QUALIFIER.sub(" ", core_name(legal_name)).split())


def _slug_words(name: str) -> list[str]:
    # "John's" is written "johns" in domains, not "john-s".
    return _SLUG_WORD.findall(_fold(name).lower().replace("'", ""))


def _dns_label(label: str) -> str | None:
    """``label`` as an ASCII DNS label (punycode for non-ASCII), or None when it cannot be one."""
    try:
        ascii_label = label if label.isascii() else label.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return ascii_label if len(ascii_label) <= _MAX_LABEL_CHARS and _LDH_LABEL.match(ascii_label) else None


def candidate_domains(legal_name: str) -> list[str]:
    """Domains a company is likely to use, most likely first.

    ``"ACME ROBOTICS PTE. LTD."`` → ``acme-robotics.com.sg``, ``acmerobotics.com.sg``,
    ``acme-robotics.sg``, ``acmerobotics.sg``, ``acme-robotics.com``, ``acmerobotics.com``.
    """
    words = _slug_words(trading_name(legal_name))
    if not words:
        return []
    labels = [label for form in dict.fromkeys(("-".join(words), "".join(words)))
              if (label := _dns_label(form)) is not None]
    domains = (f"{label}.{suffix}" for suffix in GUESS_SUFFIXES for label in labels)
    # A name such as "GOV" would otherwise give gov.sg, a public suffix nobody can own.
    return [domain for domain in dict.fromkeys(domains)
            if len(domain) <= _MAX_DOMAIN_CHARS and registrable_domain(domain) == domain]


# -- confirmation ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Confirmation:
    confirmed: bool
    evidence: str
    confidence: float


@dataclasses.dataclass(frozen=True)
class _PageView:
    """The parts of a page that say whose page it is."""

    organization_names: tuple[str, ...]     # JSON-LD Organization name/legalName, og:site_name
    title: str
    footer: str
    text: str                               # all visible text, footer included


NameMatch = Literal["same", "longer", "other"]


def _name_words(name: str) -> tuple[str, ...]:
    return tuple(_NAME_WORD.findall(_fold(name).lower()))


def _without_tail_words(words: tuple[str, ...]) -> tuple[str, ...]:
    end = len(words)
    while end > 0 and words[end - 1] in _NAME_TAIL_WORDS:
        end -= 1
    return words[:end]


def _contains_run(words: tuple[str, ...], run: tuple[str, ...]) -> bool:
    return any(words[start:start + len(run)] == run for start in range(len(words) - len(run) + 1))


def compare_names(claimed: str, ours: tuple[str, ...]) -> NameMatch:
    """How a name a page claims relates to our company's core name words.

    ``same``: the same name (legal form, "Singapore" and spacing aside); ``longer``: our name
    plus distinguishing words, i.e. a look-alike; ``other``: a different name.
    """
    words = _name_words(trading_name(claimed))
    if not words:
        return "other"
    if ours in (words, _without_tail_words(words)) or "".join(words) == "".join(ours):
        return "same"
    return "longer" if _contains_run(words, ours) else "other"


def _phrase_pattern(ours: tuple[str, ...]) -> re.Pattern[str]:
    spaced = r"\s+".join(re.escape(word) for word in ours)
    forms = [spaced] if len(ours) == 1 else [spaced, re.escape("".join(ours))]
    # Not part of an e-mail address, URL or domain: "info@acme-robotics.com.sg" names no one.
    return re.compile(rf"(?<![\w@/.&'-])(?:{'|'.join(forms)})(?![\w&'-]|\.[^\W_])", re.IGNORECASE)


def _phrase_verdict(text: str, ours: tuple[str, ...]) -> tuple[bool, str | None]:
    """(our name stands alone somewhere in ``text``, else the first longer name it is part of)."""
    longer = None
    for match in _phrase_pattern(ours).finditer(text):
        follower = _FOLLOWING_WORD.match(text, match.end())
        word = follower.group(1) if follower else None
        # A capitalised word running on from the name makes it a longer name ("Acme Robotics Trading").
        if word is None or not word[0].isupper() or word.lower() in _NAME_TAIL_WORDS:
            return True, None
        longer = longer or f"{match.group(0)} {word}"
    return False, longer


def _own_uen_pattern(uen: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(uen)}(?![A-Za-z0-9])", re.IGNORECASE)


def _judge_organization(names: tuple[str, ...], ours: tuple[str, ...]) -> Confirmation | None:
    """The verdict of the names the page gives its organisation, or None when it gives none."""
    if not names:
        return None
    matches = {name: compare_names(name, ours) for name in names}
    same = [name for name, match in matches.items() if match == "same"]
    if same:
        return Confirmation(True, f"the page's organization is named {same[0]!r}", NAME_CONFIDENCE)
    longer = [name for name, match in matches.items() if match == "longer"]
    if longer:
        return Confirmation(False, f"the page's organization is {longer[0]!r}, a longer, different name", 0.0)
    # A site declaring itself to be another organisation is not ours, whatever its text mentions.
    return Confirmation(False, f"the page's organization is {names[0]!r}, a different name", 0.0)


def _judge_title(title: str, ours: tuple[str, ...]) -> Confirmation | None:
    """The verdict of the title's segments that name a company, or None when none names ours."""
    matches = {segment: compare_names(segment, ours) for segment in _TITLE_SEPARATORS.split(title) if segment.strip()}
    if "same" in matches.values():
        return Confirmation(True, f"the page title {title!r} names the company", NAME_CONFIDENCE)
    longer = [segment for segment, match in matches.items() if match == "longer"]
    if longer:
        return Confirmation(False, f"the page title names {longer[0]!r}, a longer, different name", 0.0)
    return None


def _judge(view: _PageView, *, legal_name: str, uen: str) -> Confirmation:
    uen = uen.strip().upper()
    searchable = "\n".join((view.text, view.title, *view.organization_names))
    if uen and _own_uen_pattern(uen).search(searchable):
        return Confirmation(True, f"UEN {uen} on the page", UEN_CONFIDENCE)
    foreign = sorted({found.upper() for found in _LABELLED_UEN.findall(searchable)} - {uen})
    if foreign:
        return Confirmation(False, f"the page gives another UEN ({', '.join(foreign)})", 0.0)
    ours = _name_words(trading_name(legal_name))
    if not ours:
        return Confirmation(False, "the company has no name to look for", 0.0)
    by_name = _judge_organization(view.organization_names, ours) or _judge_title(view.title, ours)
    if by_name is not None:
        return by_name
    for part, text, confidence in (("footer", view.footer, NAME_CONFIDENCE), ("page text", view.text, TEXT_CONFIDENCE)):
        alone, longer = _phrase_verdict(text, ours)
        if alone:
            return Confirmation(True, f"the {part} names the company", confidence)
        if longer:
            return Confirmation(False, f"the name only appears within {longer!r}, a longer name", 0.0)
    return Confirmation(False, "neither the UEN nor the company's name is on the page", 0.0)


def _organization_names(jsonld: list[Any], tree: LexborHTMLParser) -> tuple[str, ...]:
    names = []
    organization = organization_from_values(jsonld)
    if organization.get("name"):
        names.append(organization["name"])
    names += [" ".join(node["legalName"].split()) for value in jsonld for node in iter_nodes(value)
              if isinstance(node.get("legalName"), str) and node["legalName"].strip()]
    site_name = tree.css_first('meta[property="og:site_name" i]')
    if site_name is not None and (site_name.attributes.get("content") or "").strip():
        names.append(" ".join((site_name.attributes.get("content") or "").split()))
    return tuple(dict.fromkeys(names))


def _page_view(html: str) -> _PageView:
    tree = parse_html(html)
    jsonld = jsonld_values(tree)
    footer = "\n".join(node.text(separator=" ") for node in tree.css("footer"))
    return _PageView(organization_names=_organization_names(jsonld, tree),
                     title=page_meta_from_tree(tree).title or "",
                     footer=_fold(" ".join(footer.split())),
                     text=_fold(visible_text_from_tree(tree.clone())))


def page_confirms_company(html: str, *, legal_name: str, uen: str) -> Confirmation:
    """Whether a page is ``legal_name``'s own: its UEN (strong), or its name as the page's name.

    A page giving another UEN, or naming itself with our name plus distinguishing words (a
    look-alike such as "Acme Robotics Trading" for "ACME ROBOTICS PTE. LTD."), is rejected.
    """
    return _judge(_page_view(html), legal_name=legal_name, uen=uen)


def snippet_confirms_company(hit: SearchHit, *, legal_name: str, uen: str) -> Confirmation:
    """The same judgement on a search result's title and snippet, at a lower confidence."""
    view = _PageView(organization_names=(), title=_fold(hit.title), footer="", text=_fold(hit.content))
    verdict = _judge(view, legal_name=legal_name, uen=uen)
    if not verdict.confirmed:
        return verdict
    return Confirmation(True, f"search result for {hit.url}: {verdict.evidence}",
                        round(verdict.confidence * SNIPPET_CONFIDENCE_FACTOR, 2))


# -- discovery ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DiscoveredWebsite:
    domain: str
    source: Source
    confidence: float
    evidence: str
    candidates_tried: tuple[str, ...]
    # Confirmed by a search result's snippet alone, not by a page we read ourselves.
    from_snippet: bool = False


@dataclasses.dataclass(frozen=True)
class _HomePageCheck:
    """What one domain's home page said: a verdict, or nothing readable (``verdict`` None)."""

    domain: str
    verdict: Confirmation | None
    reason: str


_SOCIAL_NETWORK_DOMAINS = frozenset(domain for domains in SOCIAL_DOMAINS.values() for domain in domains)


def _company_identity(company: Mapping[str, Any]) -> tuple[str, str]:
    legal_name = company.get("legal_name") or company.get("entity_name") or company.get("name")
    if not legal_name:
        raise ValueError("company has no legal_name, entity_name or name to discover a website for")
    return str(legal_name), str(company.get("uen") or "")


def _readable_body(page: FetchResult | None) -> str | None:
    if page is None or not page.ok or not page.body:
        return None
    return decode_html(page.body, page.content_type)


class WebsiteDiscovery:
    """Finds companies' websites with the crawl's own client; ``tavily`` None means guesses only."""

    def __init__(self, crawler: SiteCrawler, tavily: TavilyFallback | None) -> None:
        self._crawler = crawler
        self._tavily = tavily

    async def discover(self, company: Mapping[str, Any]) -> DiscoveredWebsite | None:
        """The company's website, or None when no guess and no search result is confirmed."""
        legal_name, uen = _company_identity(company)
        checked: dict[str, _HomePageCheck] = {}
        for domain in candidate_domains(legal_name):
            check = await self._check_home_page(domain, legal_name=legal_name, uen=uen)
            checked[domain] = check
            if check.verdict is not None and check.verdict.confirmed:
                return self._found(check, "name_guess", check.verdict, checked)
        found = await self._search(legal_name, uen, checked)
        if found is None:
            logger.info("no website found for %s (%s): %s", legal_name, uen,
                        "; ".join(f"{check.domain}: {check.reason}" for check in checked.values()))
        return found

    async def _check_home_page(self, domain: str, *, legal_name: str, uen: str) -> _HomePageCheck:
        page = await self._crawler.fetch_home_page(domain)
        html = _readable_body(page)
        if page is None or html is None:
            reason = "no answer" if page is None else f"home page unreadable: {page.error or 'empty'}"
            return _HomePageCheck(domain, None, reason)
        landed = registrable_domain(page.final_url) or domain
        if landed in _SOCIAL_NETWORK_DOMAINS:
            return _HomePageCheck(domain, Confirmation(False, f"redirects to a social network ({landed})", 0.0),
                                  "redirects to a social network")
        verdict = page_confirms_company(html, legal_name=legal_name, uen=uen)
        if landed != domain and verdict.confirmed:
            verdict = dataclasses.replace(verdict, evidence=f"{verdict.evidence} (redirected from {domain})")
        return _HomePageCheck(landed, verdict, verdict.evidence)

    async def _search(self, legal_name: str, uen: str,
                      checked: dict[str, _HomePageCheck]) -> DiscoveredWebsite | None:
        if self._tavily is None or not self._tavily.available:
            return None
        hits = await self._tavily.search(f"{trading_name(legal_name)} Singapore", max_results=SEARCH_RESULTS)
        for hit in _distinct_site_hits(hits):
            check = checked.get(hit.domain)
            if check is None:
                check = await self._check_home_page(hit.domain, legal_name=legal_name, uen=uen)
                checked[hit.domain] = check
            from_snippet = False
            if check.verdict is None and _is_home_page_url(hit.url):
                verdict = snippet_confirms_company(hit, legal_name=legal_name, uen=uen)
                check = _HomePageCheck(hit.domain, verdict, f"{check.reason}; snippet: {verdict.evidence}")
                checked[hit.domain] = check
                from_snippet = True
            if check.verdict is not None and check.verdict.confirmed:
                found = self._found(check, "tavily_search", check.verdict, checked)
                return dataclasses.replace(found, from_snippet=from_snippet)
        return None

    @staticmethod
    def _found(check: _HomePageCheck, source: Source, verdict: Confirmation,
               checked: Mapping[str, _HomePageCheck]) -> DiscoveredWebsite:
        return DiscoveredWebsite(domain=check.domain, source=source, confidence=verdict.confidence,
                                 evidence=verdict.evidence, candidates_tried=tuple(checked))


def _distinct_site_hits(hits: Iterable[SearchHit]) -> list[SearchHit]:
    """One hit per registrable domain, in rank order, social networks left out."""
    by_domain: dict[str, SearchHit] = {}
    for hit in hits:
        if hit.domain not in _SOCIAL_NETWORK_DOMAINS:
            by_domain.setdefault(hit.domain, hit)
    return list(by_domain.values())


def _is_home_page_url(url: str) -> bool:
    # A directory lists many companies on deeper pages; only a site's root speaks for the site.
    return urlsplit(url).path in ("", "/")
