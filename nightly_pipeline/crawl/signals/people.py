"""People a company names on its own pages, and the headcount it states.

People come from structured data first (schema.org ``Person`` nodes, an organisation's
``employee``/``founder``/``member``), then from the markup team, leadership and about pages use:
cards holding a name and a title, a heading followed by a title line, definition lists, and
"Name, Title" lines. A name must look like a person's name and a title like a job title, so
product cards, section headings and testimonials are left alone. Each person keeps the address
printed in their card, when there is one.

The headcount is read from the page's words ("a team of 42 people", "over 200 employees").
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from nightly_pipeline.crawl.signals.emails import extract_emails
from nightly_pipeline.crawl.signals.jsonld import iter_nodes, node_types
from nightly_pipeline.domain import headcount as headcount_domain
from nightly_pipeline.domain.headcount import Headcount

# Page kinds whose markup is read for people; structured data is read on every page.
PEOPLE_PAGE_KINDS = frozenset({"team", "about", "contact", "home"})
PERSON_SOURCES = ("jsonld", "card", "heading", "definition", "table", "line")
MAX_PEOPLE_PER_PAGE = 60
MAX_CARD_CHARS = 400
MAX_TITLE_CHARS = 80
MAX_NAME_CHARS = 60

_TITLE_WORDS = (
    "ceo", "cto", "cfo", "coo", "cio", "cmo", "cpo", "cro", "cso", "md", "gm", "vp", "svp", "evp", "avp",
    "founder", "co-founder", "cofounder", "director", "manager", "head", "chief", "officer", "president",
    "vice", "partner", "chair", "chairman", "chairwoman", "chairperson", "owner", "proprietor", "lead",
    "leader", "engineer", "executive", "consultant", "accountant", "analyst", "specialist", "coordinator",
    "administrator", "associate", "secretary", "designer", "developer", "architect", "advisor", "adviser",
    "principal", "supervisor", "representative", "assistant", "intern", "strategist", "editor", "producer",
    "scientist", "controller", "treasurer", "counsel", "lawyer", "solicitor", "recruiter", "trainer",
    "technician", "officer", "superintendent", "foreman", "nurse", "doctor", "dentist", "pharmacist",
    "teacher", "tutor", "chef", "planner", "buyer", "surveyor", "auditor", "agent", "marketer",
)
_TITLE_PATTERN = re.compile(r"(?<![a-z])(?:" + "|".join(re.escape(w) for w in _TITLE_WORDS) + r")(?![a-z])",
                            re.IGNORECASE)
# Words that make a capitalised phrase a heading, a company or a place rather than a person.
_NOT_NAME_WORDS = frozenset(w.lower() for w in (
    "our", "the", "team", "meet", "about", "contact", "us", "we", "services", "service", "products", "product",
    "solutions", "pte", "ltd", "llp", "limited", "inc", "company", "group", "holdings", "singapore", "asia",
    "customers", "clients", "read", "more", "privacy", "policy", "home", "news", "blog", "careers", "pricing",
    "events", "support", "sales", "marketing", "operations", "board", "management", "leadership", "people",
    "office", "hours", "terms", "use", "welcome", "join", "why", "what", "how", "who", "plan", "plans",
    "enterprise", "starter", "growth", "business", "case", "studies", "story", "stories", "values", "mission",
    "vision", "history", "download", "brochure", "email", "phone", "address", "linkedin", "facebook", "twitter",
    "instagram", "youtube", "london", "road", "street", "avenue", "building", "tower", "centre", "center",
    "park", "hub", "bay", "and", "of", "for", "with", "to", "in", "on", "at", "by", "a", "an", "is", "are",
    "monday", "friday", "january", "december", "quote", "get", "started", "learn", "view", "all", "profile",
))
_NAME_PARTICLES = frozenset({"bin", "binte", "binti", "bte", "b.", "s/o", "d/o", "van", "von", "de", "der", "den",
                             "la", "le", "da", "del", "di", "al", "el", "ap"})
_HONORIFIC = re.compile(r"^(?:mr|mrs|ms|mdm|miss|dr|prof|er|sir|dato'?|datuk|tan sri)\.?\s+", re.IGNORECASE)
_INITIAL = re.compile(r"[A-Z]\.")
_NAME_PUNCTUATION = "'\u2019-"
# Testimonials and reviews name customers, not the company's people.
_QUOTE_CONTAINER = re.compile(r"testimonial|review|quote|client|customer", re.IGNORECASE)
_CARD_CLASS = re.compile(r"(?:^|[\s_-])(?:person|people|member|members|team|staff|profile|leader|leaders|"
                         r"leadership|bio|employee|founder|founders|executive|director|card)(?:$|[\s_-])",
                         re.IGNORECASE)
_NAME_SELECTOR = ("[itemprop=name], .name, .person-name, .member-name, .team-name, [class*=name], "
                  "h2, h3, h4, h5, h6, strong, b")
_TITLE_SELECTOR = ("[itemprop=jobTitle], .title, .role, .position, .job-title, .jobtitle, .designation, "
                   "[class*=title], [class*=role], [class*=position], [class*=designation]")
_LINE_SEPARATORS = re.compile(r"\s*(?:,|\u2013|\u2014|\s-\s|\|)\s*")
_PAREN_TITLE = re.compile(r"^(?P<name>[^()]+?)\s*\((?P<title>[^()]+)\)$")
_TITLE_COLON = re.compile(r"^(?P<title>[^:]{2,60}?)\s*:\s*(?P<name>.+)$")
_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

# -- stated headcount --------------------------------------------------------------------------------------
_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d{1,6})"
_QUALIFIER = r"(?:(over|more than|above|upwards of|nearly|almost|about|around|approximately|some|close to)\s+)?"
_STAFF_NOUNS = (r"(?:full[- ]time\s+)?(?:employees|staff(?:\s+members)?|team\s+members|people|professionals|"
                r"engineers|consultants|specialists|members)")
_HEADCOUNT_PATTERNS = (
    # "a team of 42 people", "a workforce of over 200", "headcount of 50"
    re.compile(rf"\b(?:team|workforce|headcount|staff|strength)\s+of\s+{_QUALIFIER}{_NUMBER}(\+)?"
               rf"(?:\s+{_STAFF_NOUNS})?", re.IGNORECASE),
    # "employs over 120 people"
    re.compile(rf"\bemploy(?:s|ing)?\s+{_QUALIFIER}{_NUMBER}(\+)?\s+{_STAFF_NOUNS}", re.IGNORECASE),
    # "42 employees", "200+ staff", "over 1,000 employees"
    re.compile(rf"{_QUALIFIER}\b{_NUMBER}(\+)?\s+(?:full[- ]time\s+)?(?:employees|staff(?:\s+members)?|"
               rf"team\s+members)\b", re.IGNORECASE),
)
_FLOOR_QUALIFIERS = frozenset({"over", "more than", "above", "upwards of"})
_MAX_PLAUSIBLE_HEADCOUNT = 500_000


@dataclass(frozen=True, slots=True)
class PersonHit:
    """A person a page names, with the title it gives them and the address in their card, if any."""

    name: str
    title: str | None
    email: str | None
    source: str
    page: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- names and titles --------------------------------------------------------------------------------------
def _clean(text: str | None) -> str:
    return " ".join((text or "").replace("\u00a0", " ").split()).strip(" ,;:|\u2013\u2014-")


def person_name(text: str | None) -> str | None:
    """``text`` as a person's name (two to five name words), or None."""
    name = _HONORIFIC.sub("", _clean(text))
    if not name or len(name) > MAX_NAME_CHARS or any(ch.isdigit() for ch in name) or "@" in name:
        return None
    tokens = name.split()
    if name.isupper() and len(name) > 3:
        tokens = [t.capitalize() if t.lower() not in _NAME_PARTICLES else t.lower() for t in tokens]
    words = [t for t in tokens if t.lower() not in _NAME_PARTICLES]
    if not 2 <= len(words) <= 5 or len(tokens) > 6:
        return None
    if not all(_is_name_token(t) for t in words):
        return None
    if any(t.lower().strip(".") in _NOT_NAME_WORDS for t in words) or _TITLE_PATTERN.search(" ".join(words)):
        return None
    return " ".join(tokens)


def _is_name_token(token: str) -> bool:
    if _INITIAL.fullmatch(token):
        return True
    return (token[0].isupper() and any(c.islower() for c in token)
            and all(c.isalpha() or c in _NAME_PUNCTUATION for c in token) and token[-1].isalpha())


def _quoted(node: LexborNode) -> bool:
    """Inside a blockquote or a testimonial, review or customer block."""
    current: LexborNode | None = node
    for _ in range(12):
        if current is None:
            return False
        if current.tag in ("blockquote", "q") or _QUOTE_CONTAINER.search(current.attributes.get("class") or ""):
            return True
        current = current.parent
    return False


_TITLE_TAIL = re.compile(r"\s+[|\u00b7\u2022]\s+.*$|\s*\[.*$")


def job_title(text: str | None) -> str | None:
    """``text`` as a job title (it names a role such as CEO, Director, Engineer), or None; whatever
    follows a "|" or "·" (an address, a phone) is not part of it."""
    title = _clean(_TITLE_TAIL.sub("", _clean(text)))
    if not title or len(title) > MAX_TITLE_CHARS or "@" in title or not _TITLE_PATTERN.search(title):
        return None
    if len(title.split()) > 10 or title.endswith((".", "!", "?")):
        return None
    return title


# -- structured data ---------------------------------------------------------------------------------------
def _text_value(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, str) and item.strip()), None)
    if isinstance(value, dict):
        value = value.get("name")
    return value if isinstance(value, str) else None


def _jsonld_person(node: dict[str, Any], implied_title: str | None, page: str) -> PersonHit | None:
    raw_name = _text_value(node.get("name")) or " ".join(
        filter(None, (_text_value(node.get("givenName")), _text_value(node.get("familyName")))))
    name = person_name(raw_name)
    if name is None:
        return None
    title = _clean(_text_value(node.get("jobTitle")) or _text_value(node.get("roleName"))) or implied_title
    if title is None:
        return None  # an author or a reviewer: not known to work there
    email = _text_value(node.get("email"))
    email = email.removeprefix("mailto:").strip().lower() if email and "@" in email else None
    return PersonHit(name=name, title=title[:MAX_TITLE_CHARS], email=email, source="jsonld", page=page)


def people_from_jsonld(values: list[Any], page: str) -> list[PersonHit]:
    found: list[PersonHit] = []
    for node in (node for value in values for node in iter_nodes(value)):
        if "Person" in node_types(node):
            hit = _jsonld_person(node, None, page)
            if hit is not None:
                found.append(hit)
            continue
        for key, implied in (("founder", "Founder"), ("founders", "Founder"), ("employee", None),
                             ("employees", None), ("member", None), ("members", None)):
            members = node.get(key)
            for member in members if isinstance(members, list) else [members]:
                if isinstance(member, dict) and "Person" not in node_types(member) and "@type" not in member:
                    hit = _jsonld_person(member, implied, page)
                    if hit is not None:
                        found.append(hit)
    return found


# -- markup ------------------------------------------------------------------------------------------------
def _element_siblings_after(node: LexborNode) -> Iterator[LexborNode]:
    sibling = node.next
    while sibling is not None:
        if sibling.tag not in ("-text", "-comment"):
            yield sibling
        elif (sibling.text(deep=False) or "").strip():
            return  # loose text between them: not a name-then-title pair
        sibling = sibling.next


def _node_text(node: LexborNode) -> str:
    return _clean(node.text(deep=True, separator=" "))


def _card_email(node: LexborNode) -> str | None:
    hits = extract_emails(node.html or "", None)
    personal = [hit.email for hit in hits if hit.kind == "personal"]
    return personal[0] if len(personal) == 1 else None


def _people_in_cards(tree: LexborHTMLParser, page: str) -> Iterator[PersonHit]:
    cards = [node for node in tree.css("[class], [itemtype]")
             if (_CARD_CLASS.search(node.attributes.get("class") or "")
                 or "person" in (node.attributes.get("itemtype") or "").lower()) and not _quoted(node)]
    for card in cards:
        text = _node_text(card)
        if not text or len(text) > MAX_CARD_CHARS:
            continue
        names = [(node, name) for node in card.css(_NAME_SELECTOR)
                 if node.mem_id != card.mem_id and (name := person_name(_node_text(node)))]
        if len({name for _, name in names}) != 1:
            continue  # a wrapper around several people, or no person at all
        name_node, name = names[0]
        title = next((t for node in card.css(_TITLE_SELECTOR)
                      if node.mem_id != name_node.mem_id and (t := job_title(_node_text(node)))), None)
        if title is None:
            title = next((t for node in _element_siblings_after(name_node) if (t := job_title(_node_text(node)))),
                         None)
        if title is not None:
            yield PersonHit(name=name, title=title, email=_card_email(card), source="card", page=page)


def _people_after_headings(tree: LexborHTMLParser, page: str) -> Iterator[PersonHit]:
    for heading in tree.css("h2, h3, h4, h5, h6, strong, b, dt, td"):
        name = person_name(_node_text(heading))
        if name is None or _quoted(heading):
            continue
        following = next(_element_siblings_after(heading), None)
        if following is None or following.tag in ("h1", "h2", "h3"):
            continue
        title = job_title(_node_text(following))
        if title is not None:
            source = {"dt": "definition", "td": "table"}.get(heading.tag, "heading")
            yield PersonHit(name=name, title=title, email=None, source=source, page=page)


def _definition_titles_first(tree: LexborHTMLParser, page: str) -> Iterator[PersonHit]:
    """``<dt>Chief Executive Officer</dt><dd>Jane Tan</dd>``: the title as the term."""
    for term in tree.css("dt"):
        title = job_title(_node_text(term))
        following = next(_element_siblings_after(term), None)
        if title is None or following is None or following.tag != "dd":
            continue
        name = person_name(_node_text(following))
        if name is not None:
            yield PersonHit(name=name, title=title, email=None, source="definition", page=page)


def _split_line(line: str) -> tuple[str, str] | None:
    """``"Jane Tan, Chief Executive Officer"``, ``"Jane Tan – CEO"``, ``"Jane Tan (CEO)"`` or
    ``"CEO: Jane Tan"`` → (name, title)."""
    line = _clean(_EMAIL_IN_TEXT.sub("", line))
    if (match := _PAREN_TITLE.match(line)) and (name := person_name(match["name"])) \
            and (title := job_title(match["title"])):
        return name, title
    if (match := _TITLE_COLON.match(line)) and (title := job_title(match["title"])) \
            and (name := person_name(match["name"])):
        return name, title
    parts = _LINE_SEPARATORS.split(line, maxsplit=1)
    if len(parts) == 2 and (name := person_name(parts[0])) and (title := job_title(parts[1])):
        return name, title
    return None


def _has_block_inside(node: LexborNode) -> bool:
    # A node's css() matches the node itself as well as its descendants.
    return any(inner.mem_id != node.mem_id for inner in node.css("li, p, td, div, ul, ol, table"))


def _people_in_lines(tree: LexborHTMLParser, page: str) -> Iterator[PersonHit]:
    for block in tree.css("li, p, td, figcaption, address, pre, span, div"):
        if _has_block_inside(block) or _quoted(block):
            continue  # only leaf blocks, so a line is read once
        text = block.text(deep=True, separator="\n") or ""
        for line in text.splitlines() if block.tag == "pre" else [text]:
            if len(line) > MAX_NAME_CHARS + MAX_TITLE_CHARS + 10:
                continue
            pair = _split_line(line)
            if pair is not None:
                emails = [m.group(0).lower() for m in _EMAIL_IN_TEXT.finditer(line)]
                yield PersonHit(name=pair[0], title=pair[1], email=emails[0] if len(emails) == 1 else None,
                                       source="line", page=page)


def people_from_parsed(url: str, kind: str | None, tree: LexborHTMLParser, jsonld: list[Any]) -> list[PersonHit]:
    """People named on one page: its structured data always, its markup on team, about, contact
    and home pages. One hit per name, from its richest source."""
    found = people_from_jsonld(jsonld, url)
    if kind in PEOPLE_PAGE_KINDS or _looks_like_people_page(url):
        found.extend(_people_in_cards(tree, url))
        found.extend(_people_after_headings(tree, url))
        found.extend(_definition_titles_first(tree, url))
        found.extend(_people_in_lines(tree, url))
    return merge_people(found)[:MAX_PEOPLE_PER_PAGE]


_PEOPLE_PATH = re.compile(r"/(?:leadership|management|board|directors|founders|our-people|who-we-are|"
                          r"meet-the-team|staff)(?:[/.?#-]|$)", re.IGNORECASE)


def _looks_like_people_page(url: str) -> bool:
    return _PEOPLE_PATH.search(url) is not None


def _name_key(name: str) -> str:
    return " ".join(name.lower().split())


def merge_people(hits: Iterable[PersonHit]) -> list[PersonHit]:
    """One hit per person name, in order of first appearance; structured data beats markup, and a
    hit with a title or an address fills what the other lacks."""
    rank = {source: i for i, source in enumerate(PERSON_SOURCES)}
    merged: dict[str, PersonHit] = {}
    for hit in hits:
        key = _name_key(hit.name)
        current = merged.get(key)
        if current is None:
            merged[key] = hit
            continue
        best, other = (hit, current) if rank[hit.source] < rank[current.source] else (current, hit)
        merged[key] = PersonHit(name=best.name, title=best.title or other.title, email=best.email or other.email,
                                source=best.source, page=current.page)
    return list(merged.values())


# -- headcount ---------------------------------------------------------------------------------------------
def stated_headcount(text: str) -> Headcount | None:
    """The headcount the page's words state, or None; "over 200" is a floor, not a number."""
    for pattern in _HEADCOUNT_PATTERNS:
        for match in pattern.finditer(text):
            qualifier, number, plus = (match.group(1) or "").lower(), match.group(2), match.group(3)
            count = int(number.replace(",", ""))
            if not 0 < count <= _MAX_PLAUSIBLE_HEADCOUNT or (1900 <= count <= 2100 and "," not in number):
                continue
            if plus or qualifier in _FLOOR_QUALIFIERS:
                return headcount_domain.at_least(count, "stated")
            return headcount_domain.exact(count, "stated")
    return None


def site_headcount(pages: Sequence[tuple[str | None, Headcount | None]]) -> Headcount | None:
    """The site's stated headcount: the about page's first, then the home page's, then any page's."""
    order = {"about": 0, "team": 1, "home": 2}
    stated = [(order.get(kind or "", 3), index, count) for index, (kind, count) in enumerate(pages)
              if count is not None]
    return min(stated, key=lambda item: item[:2])[2] if stated else None
