"""What the OpenAI sandbox answers: facts read from the prompt with deterministic heuristics, then
poured into whatever JSON schema the caller asked for (or into a short text reply).

Facts come from the user and tool messages first and from the system prompt only when those do not
state them, because system prompts list example values ("industry, e.g. software or logistics")
that are not facts about the company.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from nightly_pipeline_sandbox.llm_tokens import message_text

# Canonical industry → phrases that signal it. The canonical word is what a free-text field gets.
INDUSTRY_SIGNALS: dict[str, tuple[str, ...]] = {
    "software": ("software", "saas", "app development", "mobile apps", "web applications", "applications"),
    "logistics": ("logistics", "freight", "shipping", "warehousing", "warehouse", "supply chain", "courier",
                  "forwarding"),
    "construction": ("construction", "contractor", "renovation", "building works", "civil works"),
    "manufacturing": ("manufacturing", "manufacturer", "factory", "fabrication"),
    "retail": ("retail", "retailer", "boutique"),
    "food and beverage": ("f&b", "food and beverage", "restaurant", "cafe", "catering", "bakery"),
    "healthcare": ("healthcare", "clinic", "medical", "dental", "pharmaceutical"),
    "education": ("education", "tuition", "enrichment classes", "training provider", "school"),
    "financial services": ("financial services", "fintech", "accounting", "insurance", "wealth management"),
    "real estate": ("real estate", "property agency", "property management"),
    "marketing": ("marketing", "advertising", "branding", "creative agency"),
    "consulting": ("consulting", "consultancy", "advisory"),
    "it services": ("it services", "information technology", "managed services", "cloud", "hosting",
                    "data processing", "computer service"),
    "cybersecurity": ("cybersecurity", "cyber security", "penetration testing"),
    "hospitality": ("hotel", "hospitality", "tourism", "travel agency"),
    "wholesale": ("wholesale", "trading company", "import", "export", "distributor", "distribution"),
    "e-commerce": ("e-commerce", "ecommerce", "online store"),
    "engineering": ("engineering",),
}
_B2B_SIGNALS = (r"\bb2b\b", r"\bbusinesses\b", r"\benterprises?\b", r"\bcorporate\b", r"\bsmes?\b",
                r"\bcompanies\b", r"\bwholesale\b", r"\bdistributors?\b", r"\bclients\b", r"\bpartners\b",
                r"\bindustrial\b", r"\bprocurement\b")
_B2C_SIGNALS = (r"\bb2c\b", r"\bconsumers?\b", r"\bshop now\b", r"\bbuy now\b", r"\badd to cart\b",
                r"\bfamilies\b", r"\bindividuals\b", r"\bhomeowners\b", r"\bshoppers\b", r"\bdiners\b",
                r"\bparents\b", r"\bpatients\b")
_TECHNOLOGIES = ("WordPress", "Shopify", "WooCommerce", "Magento", "Wix", "Squarespace", "HubSpot", "Salesforce",
                 "Zoho", "Google Analytics", "Google Tag Manager", "Hotjar", "Intercom", "Stripe", "React",
                 "Angular", "Vue", "Cloudflare", "AWS", "Azure", "Odoo", "SAP", "Xero")
_UNKNOWN_WORDS = ("unknown", "other", "others", "none", "n/a", "unclear", "not specified", "unspecified")
_EMPLOYEE_THRESHOLDS = (10, 50, 200, 1000)
# Singapore SMEs turn over very roughly S$200k per employee; enough to order revenue buckets.
_REVENUE_PER_EMPLOYEE = 200_000

_EMPLOYEES_AFTER = re.compile(
    r"(?:(\d[\d,]*)\s*(?:-|–|to)\s*)?(\d[\d,]*)\s*\+?\s*(?:full[- ]time\s+|dedicated\s+|strong\s+)?"
    r"(?:employees|staff|people|team members|professionals|headcount|workers)\b", re.IGNORECASE)
_EMPLOYEES_BEFORE = re.compile(
    r"(?:number\s*of\s*employees|numberofemployees|employee[_ ]?count|employees|headcount|staff|team size|"
    r"team of)[\"']?\s*(?:[:=]|is|of)?\s*[\"']?(?:about|around|over|approximately|some)?\s*(\d[\d,]*)",
    re.IGNORECASE)
# Asked for a headcount that a text about a team never states, a model still answers, and with the same
# round number for most companies: the sandbox does too, a little less sure than of a stated one.
GUESSED_HEADCOUNT = 50
GUESS_EVIDENCE_SHARE = 0.5
_TEAM_WORDS = re.compile(r"\b(?:team|staff|workforce)\b", re.IGNORECASE)
_POSTAL = re.compile(r"(?:Singapore|S)\s*\(?\s*(\d{6})\)?", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?:\+65[\s-]?)?\b[689]\d{3}[\s-]?\d{4}\b")
_URL = re.compile(r"https?://[^\s)\"'<>\]]+|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.IGNORECASE)
_YEAR_FOUNDED = re.compile(r"(?:founded|established|since|incorporated)\D{0,20}((?:19|20)\d{2})", re.IGNORECASE)
_COMPANY_NAME = re.compile(
    r"\b([A-Z][A-Za-z0-9&.'-]*(?:\s+[A-Z0-9][A-Za-z0-9&.'-]*){0,5}\s+(?:Pte\.?\s*Ltd\.?|PTE\.?\s*LTD\.?|"
    r"Private Limited|PRIVATE LIMITED|LLP|Limited|LIMITED))")
_LABEL_LINE = re.compile(r"^\s*(?:[-*•]\s*)?\**([A-Za-z][A-Za-z0-9 _/()-]{0,40}?)\**\s*[:=]\s*(\S.*?)\s*$")
_JSON_PAIR = re.compile(r"\"([A-Za-z_][A-Za-z0-9_]*)\"\s*:\s*(\"(?:[^\"\\]|\\.)*\"|-?\d+(?:\.\d+)?|true|false)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.)])\s+(.+?)\s*$")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*#*\s*$")
_OFFER_PHRASE = re.compile(r"(?:we offer|we provide|specialis(?:e|ing) in|speciali(?:ze|zing) in|"
                           r"services include|products include|our services:|our products:)\s+([^.\n]+)", re.IGNORECASE)
_OFFER_HEADING = re.compile(r"product|service|solution|offer|what we do|capabilit", re.IGNORECASE)
_INSTRUCTION = re.compile(r"^\s*(?:you are|extract|return|classify|summari[sz]e|given|use |answer|based on|"
                          r"respond|write|output|read the|from the|please)\b", re.IGNORECASE)
_REASONS_HEADER = re.compile(r"\breasons?\b|\bsignals\b|\bcontribut", re.IGNORECASE)
_CONTRIBUTION = re.compile(r"(?<![\w.])([+-]\s?\d+(?:\.\d+)?)")
# A sentence ends at . ! or ? before a capital, except after abbreviations common in company names.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\bPte\.)(?<!\bCo\.)(?<!\bInc\.)(?<!\bBhd\.)(?<!\bSdn\.)(?<!\bMr\.)"
                           r"(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bNo\.)(?<!\be\.g\.)(?<!\bi\.e\.)\s+(?=[A-Z0-9\"'(])")


@dataclasses.dataclass(frozen=True)
class Reason:
    feature: str
    value: str | None
    contribution: float | None
    # A reason already written as a phrase for people ("no pricing page"): restated as it is.
    verbatim: bool = False

    def phrase(self) -> str:
        if self.verbatim:
            return self.feature
        details = [d for d in (self.value, None if self.contribution is None else f"{self.contribution:+g}") if d]
        return _humanise(self.feature) + (f" ({', '.join(details)})" if details else "")


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Facts stated in the conversation; ``None`` or empty where the text says nothing."""

    text: str
    labels: Mapping[str, str]
    industry: str | None
    employees: int | None
    address: str | None
    postal_code: str | None
    country: str | None
    company_name: str | None
    products: tuple[str, ...]
    b2b_hits: int
    b2c_hits: int
    sentences: tuple[str, ...]
    reasons: tuple[Reason, ...]
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    urls: tuple[str, ...]
    year_founded: int | None
    technologies: tuple[str, ...]
    # What a model answers when asked for a headcount the text does not state: a round guess.
    employees_guess: int | None = None

    def or_else(self, fallback: Evidence) -> Evidence:
        """This evidence, with every fact it lacks taken from ``fallback``."""
        merged = {field.name: getattr(self, field.name) or getattr(fallback, field.name)
                  for field in dataclasses.fields(self)}
        merged["text"] = self.text or fallback.text
        merged["labels"] = {**fallback.labels, **self.labels}
        if self.b2b_hits or self.b2c_hits:
            merged["b2b_hits"], merged["b2c_hits"] = self.b2b_hits, self.b2c_hits
        return Evidence(**merged)

    @property
    def business_model(self) -> str | None:
        """``"B2B"``, ``"B2C"``, ``"B2B and B2C"`` or ``None`` when the text has no signal."""
        if not self.b2b_hits and not self.b2c_hits:
            return None
        if self.b2b_hits > 2 * self.b2c_hits:
            return "B2B"
        if self.b2c_hits > 2 * self.b2b_hits:
            return "B2C"
        return "B2B and B2C"

    def summary(self, sentences: int = 2) -> str | None:
        return " ".join(self.sentences[:sentences]) or None

    def rationale(self) -> str | None:
        if not self.reasons:
            return None
        ranked = sorted(self.reasons, key=lambda r: -abs(r.contribution or 0.0))
        positives = [r.phrase() for r in ranked if (r.contribution or 0.0) >= 0][:3]
        negatives = [r.phrase() for r in ranked if (r.contribution or 0.0) < 0][:3]
        if positives and negatives:
            return f"The lead scores on {_join(positives)}, held back by {_join(negatives)}."
        if positives:
            return f"The lead scores on {_join(positives)}."
        return f"The lead is held back by {_join(negatives)}."

    def fact_sentence(self) -> str | None:
        if not (self.company_name or self.industry or self.employees or self.address):
            return None
        subject = self.company_name or "The company"
        text = f"{subject} is a {self.industry} company" if self.industry else f"{subject} is a company"
        if self.employees:
            text += f" with about {self.employees} employees"
        if self.address:
            text += f", located at {self.address}"
        return text + "."


def conversation_evidence(messages: Iterable[Mapping[str, Any]]) -> Evidence:
    messages = list(messages)
    primary = "\n".join(message_text(m.get("content")) for m in messages if m.get("role") in ("user", "tool"))
    system = "\n".join(message_text(m.get("content")) for m in messages
                       if m.get("role") in ("system", "developer"))
    return read_evidence(primary).or_else(read_evidence(system))


def read_evidence(text: str) -> Evidence:
    lines = text.splitlines()
    reasons = tuple(_reasons(text, lines))
    return Evidence(
        text=text, labels=_labels(text, lines), industry=_industry(text), employees=_employees(text),
        address=_address(lines), postal_code=(m.group(1) if (m := _POSTAL.search(text)) else None),
        country="Singapore" if re.search(r"\bsingapore\b", text, re.IGNORECASE) else None,
        company_name=(m.group(1).strip() if (m := _COMPANY_NAME.search(text)) else None),
        products=tuple(_products(text, lines)),
        b2b_hits=sum(len(re.findall(p, text, re.IGNORECASE)) for p in _B2B_SIGNALS),
        b2c_hits=sum(len(re.findall(p, text, re.IGNORECASE)) for p in _B2C_SIGNALS),
        sentences=tuple(_prose_sentences(lines)), reasons=reasons,
        emails=tuple(dict.fromkeys(_EMAIL.findall(text))),
        phones=tuple(dict.fromkeys(p.strip() for p in _PHONE.findall(text))),
        urls=tuple(dict.fromkeys(u.rstrip(".,;") for u in _URL.findall(text))),
        year_founded=int(m.group(1)) if (m := _YEAR_FOUNDED.search(text)) else None,
        technologies=tuple(t for t in _TECHNOLOGIES if re.search(rf"\b{re.escape(t)}\b", text, re.IGNORECASE)),
        employees_guess=GUESSED_HEADCOUNT if _TEAM_WORDS.search(text) else None)


# -- fact readers ----------------------------------------------------------------------------------
def _industry(text: str) -> str | None:
    lowered = text.lower()
    scored = []
    for industry, phrases in INDUSTRY_SIGNALS.items():
        positions = [m.start() for p in phrases for m in re.finditer(rf"\b{re.escape(p)}\b", lowered)]
        if positions:
            scored.append((-len(positions), min(positions), industry))
    return min(scored)[2] if scored else None


def _employees(text: str) -> int | None:
    candidates = []
    for match in _EMPLOYEES_AFTER.finditer(text):
        high = _number(match.group(2))
        low = _number(match.group(1)) if match.group(1) else high
        candidates.append((match.start(), (low + high) // 2))
    candidates += [(m.start(), _number(m.group(1))) for m in _EMPLOYEES_BEFORE.finditer(text)]
    plausible = [(at, n) for at, n in candidates if 0 < n < 1_000_000 and not 1900 <= n <= 2100]
    return min(plausible)[1] if plausible else None


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _address(lines: list[str]) -> str | None:
    for line in lines:
        match = _POSTAL.search(line)
        if not match or not re.search(r"singapore|\bs\s*\(?\d{6}", line, re.IGNORECASE):
            continue
        text = re.sub(r"^\s*(?:[-*•]\s*)?\**[A-Za-z ]{2,20}\**\s*:\s*", "", line[:match.end()])
        start = max(text.rfind(". "), text.rfind("; "))
        return text[start + 2 if start >= 0 else 0:].strip(" ,|")[-160:]
    return None


def _labels(text: str, lines: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, raw in _JSON_PAIR.findall(text):
        labels.setdefault(_normalise_key(key), json.loads(raw) if raw.startswith('"') else raw)
    for line in lines:
        if match := _LABEL_LINE.match(line):
            labels.setdefault(_normalise_key(match.group(1)), match.group(2).strip("* "))
    return {key: str(value) for key, value in labels.items()}


def _products(text: str, lines: list[str]) -> list[str]:
    under_offer_heading, anywhere, headings = [], [], []
    current_heading = ""
    for line in lines:
        if heading := _HEADING.match(line):
            current_heading = heading.group(1)
            headings.append(_clean_item(current_heading))
            continue
        item = _LIST_ITEM.match(line)
        if not item or _REASONS_HEADER.search(current_heading) or _CONTRIBUTION.search(item.group(1)):
            continue
        cleaned = _clean_item(item.group(1))
        if 1 <= len(cleaned.split()) <= 8 and not re.search(r"@|https?://|\d{4}", cleaned):
            (under_offer_heading if _OFFER_HEADING.search(current_heading) else anywhere).append(cleaned)
    offered = [part.strip() for m in _OFFER_PHRASE.finditer(text)
               for part in re.split(r",|\band\b", m.group(1)) if part.strip()]
    generic_headings = re.compile(r"^(home|about|about us|contact|contact us|our team|careers|news|blog)$", re.I)
    for choice in (under_offer_heading, offered, anywhere,
                   [h for h in headings if h and not generic_headings.match(h) and not _OFFER_HEADING.search(h)]):
        if choice:
            return list(dict.fromkeys(choice))[:10]
    return []


def _clean_item(item: str) -> str:
    item = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", item)
    return re.sub(r"[*_`]+", "", item).strip(" .:;-")


def _prose_sentences(lines: list[str]) -> list[str]:
    prose = []
    for line in lines:
        stripped = line.strip()
        if (not stripped or _HEADING.match(line) or _LIST_ITEM.match(line) or _INSTRUCTION.match(stripped)
                or _URL.fullmatch(stripped) or len(stripped.split()) < 5
                or (_LABEL_LINE.match(line) and len(stripped) < 80)):
            continue
        prose.append(stripped)
    sentences = _SENTENCE_END.split(" ".join(prose))
    return [s.strip() for s in sentences if len(s.split()) >= 4]


def _reasons(text: str, lines: list[str]) -> Iterable[Reason]:
    seen: set[str] = set()
    for blob in re.findall(r"\{[^{}]*\"feature\"[^{}]*\}", text):
        try:
            item = json.loads(blob)
        except ValueError:
            continue
        if not isinstance(item.get("feature"), str):
            continue
        contribution = item.get("contribution")
        reason = Reason(str(item["feature"]), None if item.get("value") is None else str(item["value"]),
                        float(contribution) if isinstance(contribution, (int, float)) else None)
        seen.add(reason.feature)
        yield reason
    in_section = False
    for line in lines:
        stripped = line.strip()
        if not stripped:
            in_section = False
            continue
        item = _LIST_ITEM.match(line)
        body = item.group(1) if item else stripped
        if in_section and (item or _CONTRIBUTION.search(body)):
            if (reason := _reason_from_line(body)) and reason.feature not in seen:
                seen.add(reason.feature)
                yield reason
            continue
        in_section = bool(_REASONS_HEADER.search(stripped)) and '"feature"' not in stripped


def _reason_from_line(line: str) -> Reason | None:
    contribution_match = _CONTRIBUTION.search(line)
    contribution = float(contribution_match.group(1).replace(" ", "")) if contribution_match else None
    phrase = re.sub(r"\s*\(\s*\)\s*$", "", _CONTRIBUTION.sub("", line)).strip(" [],;→-")
    if " " in phrase and not re.search(r"[:=]", phrase):
        return Reason(phrase, None, contribution, verbatim=True)
    body = _CONTRIBUTION.sub("", line).strip(" ()[],;→-")
    # "industry_match: software" → feature industry_match, value software
    parts = re.split(r"\s*[:=(]\s*", body, maxsplit=1)
    feature = parts[0].strip(" *`")
    value = parts[1].strip(" )*`,;→-") if len(parts) > 1 else ""
    return Reason(feature, value or None, contribution) if feature else None


def _humanise(name: str) -> str:
    return re.sub(r"[_\s]+", " ", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)).strip().lower()


def _normalise_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", _humanise(name)).strip("_")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# -- schema filling --------------------------------------------------------------------------------
_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("confidence", ("confidence", "certainty")),
    ("rationale", ("rationale", "reason", "reasons", "explanation", "justification", "why")),
    ("industry", ("industry", "industries", "sector", "vertical")),
    ("revenue", ("revenue", "turnover")),
    ("employees", ("employees", "employee", "headcount", "staff", "numberofemployees", "size")),
    ("postal_code", ("postal", "postcode", "zip", "zipcode")),
    ("country", ("country",)),
    ("city", ("city",)),
    ("address", ("address", "street", "hq", "headquarters", "location", "office")),
    ("technologies", ("technologies", "technology", "tech", "stack", "tools", "platforms")),
    ("products", ("product", "products", "service", "services", "offering", "offerings", "solutions",
                  "capabilities")),
    ("business_model", ("b2b", "b2c", "business_model", "customer_type", "target_market", "market_type",
                        "audience")),
    ("summary", ("about", "summary", "description", "overview", "profile", "pitch", "tagline")),
    ("email", ("email", "emails")),
    ("phone", ("phone", "phones", "mobile", "telephone", "tel")),
    ("website", ("website", "url", "domain", "homepage", "site")),
    ("year_founded", ("founded", "established", "founding", "incorporated", "incorporation")),
)
# Only whole field names count as the company's name: "first_name" in a contact object is not it.
_COMPANY_NAME_FIELDS = frozenset({"name", "company_name", "legal_name", "entity_name", "company", "business_name",
                                  "organisation", "organization", "organisation_name", "organization_name"})


_MAX_OPTIONAL_DEPTH = 6
_FOCUS_KINDS = (None, "company_name", "products", "technologies", "rationale", "summary", "email", "phone",
                "website", "industry")


@dataclasses.dataclass(frozen=True)
class _Field:
    """Where a value sits in the schema: its property name, title and description."""

    name: str = ""
    title: str = ""
    description: str = ""

    @property
    def kind(self) -> str | None:
        name = _normalise_key(self.name)
        if name in _COMPANY_NAME_FIELDS:
            return "company_name"
        tokens = set(name.split("_")) | {name}
        for kind, words in _KINDS:
            if tokens & set(words):
                return kind
        described = set(_normalise_key(f"{self.title} {self.description}").split("_"))
        for kind, words in _KINDS:
            if kind != "confidence" and described & set(words):
                return kind
        return None


class SchemaFiller:
    """Builds a JSON value that validates against a JSON schema, filled from ``evidence``.

    Handles what pydantic and OpenAI's strict mode emit: objects, ``$ref``/``$defs``, ``allOf``
    wrappers, ``anyOf``/``oneOf`` with null, type lists, enums and consts, arrays with item bounds,
    number and string bounds and common string formats.
    """

    def __init__(self, evidence: Evidence, root: Mapping[str, Any]) -> None:
        self.evidence = evidence
        self.root = root
        self._depth = 0

    def fill(self) -> Any:
        return self._value(self.root, _Field(), focus=None)[0]

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema or (len(schema.get("allOf", [])) == 1 and "type" not in schema):
            seen += 1
            if seen > 32:
                raise ValueError("schema $ref chain does not end")
            if "$ref" in schema:
                target: Any = self.root
                for part in schema["$ref"].lstrip("#/").split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
                schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            else:
                schema = {**self._resolve(schema["allOf"][0]), **{k: v for k, v in schema.items() if k != "allOf"}}
        return schema

    def _value(self, schema: Mapping[str, Any], field: _Field, focus: str | None) -> tuple[Any, bool]:
        schema = self._resolve(schema)
        field = _Field(field.name, schema.get("title", field.title), schema.get("description", field.description))
        if "const" in schema:
            return schema["const"], True
        branches = schema.get("anyOf") or schema.get("oneOf")
        types = schema.get("type")
        if branches:
            options = [self._resolve(b) for b in branches]
            concrete = [o for o in options if o.get("type") != "null"]
            nullable = len(concrete) < len(options)
            if nullable and self._depth > _MAX_OPTIONAL_DEPTH:
                return None, False  # a self-referencing model ("parent: Node | None") ends here
            value, found = self._value(concrete[0], field, focus) if concrete else (None, False)
            return (value, found) if found or not nullable else (None, False)
        if isinstance(types, list):
            concrete_types = [t for t in types if t != "null"]
            value, found = self._value({**schema, "type": concrete_types[0] if concrete_types else "null"},
                                       field, focus)
            return (value, found) if found or "null" not in types else (None, False)
        if "enum" in schema:
            return self._enum(list(schema["enum"]), field)
        if types == "object" or "properties" in schema:
            return self._object(schema, focus)
        if types == "array":
            return self._array(schema, field)
        if types in ("integer", "number"):
            return self._number(schema, field)
        if types == "boolean":
            return self._boolean(field)
        if types == "null":
            return None, True
        return self._string(schema, field, focus)

    def _object(self, schema: Mapping[str, Any], focus: str | None) -> tuple[dict[str, Any], bool]:
        self._depth += 1
        try:
            return self._object_fields(schema, focus)
        finally:
            self._depth -= 1

    def _object_fields(self, schema: Mapping[str, Any], focus: str | None) -> tuple[dict[str, Any], bool]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        values: dict[str, Any] = {}
        found: dict[str, bool] = {}
        confidence_names = [n for n in properties if _Field(n).kind == "confidence"]
        # An array item's focus (one product, one e-mail …) names the item: it goes to the first text field.
        focus_target = next((n for n, sub in properties.items() if n not in confidence_names
                             and self._holds_text(sub) and _Field(n).kind in _FOCUS_KINDS), None)
        for name, sub_schema in properties.items():
            if name not in confidence_names:
                values[name], found[name] = self._value(sub_schema, _Field(name),
                                                        focus if name == focus_target else None)
        for name in confidence_names:
            subject = re.sub(r"_?confidence|_?certainty", "", name, flags=re.IGNORECASE)
            evidence_found = (found[subject] if subject in found
                              else sum(found.values()) / len(found) if found else 0.0)
            values[name] = _confidence_value(self._resolve(properties[name]), float(evidence_found))
        return {name: values[name] for name in properties}, any(found.values())

    def _holds_text(self, schema: Mapping[str, Any]) -> bool:
        schema = self._resolve(schema)
        options = [self._resolve(b) for b in schema.get("anyOf") or schema.get("oneOf") or [schema]]
        return any(o.get("type") == "string" and "enum" not in o for o in options)

    def _array(self, schema: Mapping[str, Any], field: _Field) -> tuple[list[Any], bool]:
        item_schema = self._resolve(schema.get("items", {}))
        low, high = schema.get("minItems", 0), schema.get("maxItems", 10)
        hints = self._list_facts(field)
        is_object = item_schema.get("type") == "object" or "properties" in item_schema
        if not is_object and item_schema.get("type", "string") == "string" and "enum" not in item_schema:
            items = [self._fit_string(item_schema, h) for h in hints[:high]]
            items += [self._value(item_schema, field, None)[0] for _ in range(low - len(items))]
            return items, bool(hints)
        count = min(high, max(low, len(hints)))
        focuses: list[str | None] = list(hints[:count]) + [None] * (count - len(hints[:count]))
        items = [self._value(item_schema, field, focus)[0] for focus in focuses]
        return items, bool(hints)

    def _list_facts(self, field: _Field) -> list[str]:
        evidence, kind = self.evidence, field.kind
        facts: dict[str | None, Iterable[str]] = {
            "products": evidence.products, "technologies": evidence.technologies, "email": evidence.emails,
            "phone": evidence.phones, "website": evidence.urls,
            "rationale": [r.phrase() for r in evidence.reasons],
            "industry": [evidence.industry] if evidence.industry else [],
            "summary": evidence.sentences[:3],
        }
        if kind in facts:
            return list(facts[kind])
        labelled = self._label(field)
        return [part.strip() for part in labelled.split(",") if part.strip()] if labelled else []

    def _label(self, field: _Field) -> str | None:
        labels = self.evidence.labels
        name = _normalise_key(field.name)
        for key in (name, field.title, re.sub(r"^company_", "", name), re.sub(r"_name$", "", name)):
            if key and (value := labels.get(_normalise_key(key))):
                return value
        return None

    def _enum(self, values: list[Any], field: _Field) -> tuple[Any, bool]:
        evidence, kind = self.evidence, field.kind
        texts = [str(v).lower() for v in values]
        choice: int | None = None
        if kind == "industry" and evidence.industry:
            signals = (evidence.industry, *INDUSTRY_SIGNALS[evidence.industry])
            choice = next((i for i, t in enumerate(texts) if any(s in t or t in s for s in signals)), None)
        elif kind in ("employees", "revenue") and evidence.employees:
            amount = evidence.employees * (_REVENUE_PER_EMPLOYEE if kind == "revenue" else 1)
            choice = _bucket_index(texts, amount, evidence.employees)
        elif kind == "business_model" and evidence.business_model:
            choice = _business_model_index(texts, evidence.business_model)
        if choice is None and (labelled := self._label(field)):
            choice = next((i for i, t in enumerate(texts) if t == labelled.lower()), None)
        if choice is None:
            choice = _most_mentioned(texts, evidence.text)
        if choice is not None:
            return values[choice], True
        fallback = next((i for i, t in enumerate(texts) if t in _UNKNOWN_WORDS), 0)
        return values[fallback], False

    def _number(self, schema: Mapping[str, Any], field: _Field) -> tuple[float | int, bool]:
        evidence, kind = self.evidence, field.kind
        value: float | None = None
        if kind == "employees":
            value = evidence.employees
            if value is None and evidence.employees_guess is not None:
                return _bounded(schema, evidence.employees_guess), GUESS_EVIDENCE_SHARE  # type: ignore[return-value]
        elif kind == "year_founded":
            value = evidence.year_founded
        elif kind == "confidence":
            return _confidence_value(schema, 0.5), True
        elif kind == "revenue" and evidence.employees:
            value = evidence.employees * _REVENUE_PER_EMPLOYEE
        if value is None and (labelled := self._label(field)):
            number = re.search(r"-?\d[\d,]*(?:\.\d+)?", labelled)
            value = float(number.group().replace(",", "")) if number else None
        found = value is not None
        return _bounded(schema, value if value is not None else 0), found

    def _boolean(self, field: _Field) -> tuple[bool, bool]:
        if labelled := self._label(field):
            return labelled.strip().lower() in ("yes", "true", "y", "1"), True
        name = _normalise_key(field.name)
        model = self.evidence.business_model
        if "b2b" in name or "b2c" in name:
            wanted = "B2B" if "b2b" in name else "B2C"
            return (model is not None and wanted in model), model is not None
        subject = [w for w in name.split("_") if w not in ("is", "has", "have", "offers", "uses", "provides", "a")]
        stems = [w[:-1] if w.endswith("s") and len(w) > 3 else w for w in subject if len(w) >= 3]
        present = bool(stems) and all(re.search(rf"\b{re.escape(s)}", self.evidence.text, re.IGNORECASE)
                                      for s in stems)
        return present, present

    def _string(self, schema: Mapping[str, Any], field: _Field, focus: str | None) -> tuple[str, bool]:
        value = self._string_fact(field, focus)
        found = value is not None
        fmt = schema.get("format")
        if fmt in ("date", "date-time") and (value is None or not re.match(r"\d{4}-\d{2}-\d{2}", value)):
            today = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            value, found = (today.date().isoformat() if fmt == "date" else today.isoformat()), False
        elif fmt == "email" and (value is None or not _EMAIL.fullmatch(value)):
            value = self.evidence.emails[0] if self.evidence.emails else None
            found = value is not None
        elif fmt in ("uri", "url") and (value is None or not value.startswith("http")):
            value = next((u if u.startswith("http") else f"https://{u}" for u in self.evidence.urls), None)
            found = value is not None
        return self._fit_string(schema, value if value is not None else "unknown"), found

    def _string_fact(self, field: _Field, focus: str | None) -> str | None:
        evidence, kind = self.evidence, field.kind
        if focus is not None:
            return focus
        facts: dict[str, str | None] = {
            "industry": evidence.industry, "address": evidence.address, "postal_code": evidence.postal_code,
            "country": evidence.country, "city": evidence.country,
            "products": ", ".join(evidence.products) or None, "technologies": ", ".join(evidence.technologies) or None,
            "business_model": evidence.business_model, "summary": evidence.summary(),
            "rationale": evidence.rationale(), "company_name": evidence.company_name,
            "email": evidence.emails[0] if evidence.emails else None,
            "phone": evidence.phones[0] if evidence.phones else None,
            "website": evidence.urls[0] if evidence.urls else None,
            "year_founded": str(evidence.year_founded) if evidence.year_founded else None,
            "employees": str(evidence.employees) if evidence.employees else None,
        }
        return (facts.get(kind) if kind else None) or self._label(field)

    def _fit_string(self, schema: Mapping[str, Any], value: str) -> str:
        limit = schema.get("maxLength")
        if limit is not None and len(value) > limit:
            cut = value[:limit]
            value = cut.rsplit(" ", 1)[0] if " " in cut else cut
        minimum = schema.get("minLength", 0)
        if len(value) < minimum:
            value = (value + " " + (self.evidence.summary(4) or "")).strip()
            value = value.ljust(minimum, ".")
        return value[:limit] if limit is not None else value


def _confidence_value(schema: Mapping[str, Any], evidence_share: float) -> float | int:
    share = round(0.2 + 0.75 * evidence_share, 2)
    maximum = schema.get("maximum", schema.get("exclusiveMaximum", 1))
    scaled = share * maximum if maximum and maximum > 1 else share
    return _bounded(schema, scaled)


def _bounded(schema: Mapping[str, Any], value: float) -> float | int:
    integral = schema.get("type") == "integer"
    step = 1 if integral else 1e-6
    if "minimum" in schema:
        value = max(value, schema["minimum"])
    if "exclusiveMinimum" in schema:
        value = max(value, schema["exclusiveMinimum"] + step)
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    if "exclusiveMaximum" in schema:
        value = min(value, schema["exclusiveMaximum"] - step)
    if multiple := schema.get("multipleOf"):
        value = math.floor(value / multiple) * multiple
    return int(round(value)) if integral else float(value)


def _bucket_index(texts: list[str], amount: float, employees: int) -> int | None:
    """The enum value whose numeric range holds ``amount``; ordinal by headcount when not numeric."""
    candidates = [i for i, t in enumerate(texts) if t not in _UNKNOWN_WORDS]
    ranges = {i: _numeric_range(texts[i]) for i in candidates}
    if candidates and all(r is not None for r in ranges.values()):
        for i, (low, high) in ((i, r) for i, r in ranges.items() if r is not None):
            if low <= amount < high:
                return i
        return min(candidates, key=lambda i: abs(ranges[i][0] - amount))  # type: ignore[index]
    if not candidates:
        return None
    rank = sum(employees >= t for t in _EMPLOYEE_THRESHOLDS)
    return candidates[round(rank * (len(candidates) - 1) / len(_EMPLOYEE_THRESHOLDS))]


def _numeric_range(text: str) -> tuple[float, float] | None:
    """``"1m-10m"`` → (1e6, 1e7); ``"<10"`` → (0, 10); ``"1000+"`` / ``">1b"`` → (x, inf)."""
    numbers = [_amount(n, unit) for n, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(k|m|mn|million|b|bn|billion)?",
                                                          text.replace(",", ""))]
    if not numbers:
        return None
    if len(numbers) >= 2:
        return numbers[0], numbers[1] + 1  # "11-50" includes 50
    if re.search(r"<|under|below|less|up to", text):
        return 0.0, numbers[0]
    if re.search(r">|\+|over|above|more", text):
        return numbers[0], math.inf
    return numbers[0], numbers[0] + 1


def _amount(number: str, unit: str) -> float:
    scale = {"k": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}
    return float(number) * scale.get(unit.lower(), 1)


def _business_model_index(texts: list[str], model: str) -> int | None:
    if model == "B2B and B2C":
        preferred = [i for i, t in enumerate(texts) if ("b2b" in t and "b2c" in t) or t in ("both", "mixed",
                                                                                            "hybrid")]
        return preferred[0] if preferred else None
    wanted = model.lower()
    other = "b2c" if wanted == "b2b" else "b2b"
    return next((i for i, t in enumerate(texts) if wanted in t and other not in t), None)


def _most_mentioned(texts: list[str], source: str) -> int | None:
    lowered = source.lower()
    counts = Counter({i: len(re.findall(rf"\b{re.escape(t)}\b", lowered)) for i, t in enumerate(texts)
                      if t and t not in _UNKNOWN_WORDS})
    best = counts.most_common(1)
    return best[0][0] if best and best[0][1] > 0 else None


# What an unfaithful model adds to a rationale: a headcount, funding and a CRM that no reason states.
UNFAITHFUL_ADDITION = ("The company employs about 250 people, raised Series A funding last year and runs its sales "
                       "on Salesforce.")


def text_reply(evidence: Evidence, last_user_text: str, *, unfaithful: bool = False) -> str:
    """A short plain-text answer that restates what the prompt said (and, when ``unfaithful``, a
    rationale that asserts facts the reasons do not hold)."""
    if rationale := evidence.rationale():
        return f"{UNFAITHFUL_ADDITION} {rationale}" if unfaithful else rationale
    if facts := evidence.fact_sentence():
        return facts
    first = _SENTENCE_END.split(last_user_text.strip(), maxsplit=1)[0] if last_user_text.strip() else ""
    return f"Noted: {first}" if first else "Noted."


def facts_object(evidence: Evidence) -> dict[str, Any]:
    """The facts as one JSON object, for ``response_format: {"type": "json_object"}``."""
    facts = {"company_name": evidence.company_name, "industry": evidence.industry,
             "employees": evidence.employees, "address": evidence.address, "postal_code": evidence.postal_code,
             "products": list(evidence.products), "business_model": evidence.business_model,
             "summary": evidence.summary(), "rationale": evidence.rationale()}
    return {key: value for key, value in facts.items() if value not in (None, [])}
