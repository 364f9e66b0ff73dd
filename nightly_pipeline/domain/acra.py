"""ACRA registry rows: reading the data.gov.sg CSV layout, and normalizing a row into a company.

Pure functions; the database layer stores what they return.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from nightly_pipeline.domain.web import registrable_domain

REQUIRED_COLUMNS = (
    "uen", "entity_name", "entity_type_description", "entity_status_description",
    "registration_incorporation_date", "primary_ssic_code", "primary_ssic_description",
    "postal_code", "street_name",
)
OPTIONAL_COLUMNS = ("website",)
MAX_LENGTH = {
    "uen": 10, "entity_name": 300, "entity_type_description": 100, "entity_status_description": 100,
    "primary_ssic_description": 300, "postal_code": 6, "street_name": 200,
    "website": 300,
}
# UEN forms: business (8 digits + letter), local company (YYYY + 5 digits + letter),
# other entities (T/S/R + 2-digit year + 2-letter type + 4 digits + letter).
UEN_PATTERN = re.compile(r"^(?:\d{8}[A-Z]|(?:19|20)\d{7}[A-Z]|[STR]\d{2}[A-Z]{2}\d{4}[A-Z])$")
LIVE_STATUSES = frozenset({"live", "live company", "registered"})
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d")
_LEGAL_SUFFIX = re.compile(
    r"[\s,]*\b(?:PTE\.?\s*LTD\.?|PRIVATE\s+LIMITED|LIMITED|LTD\.?|LLP|L\.L\.P\.|PTE\.?|INC\.?|CORP\.?)\s*$",
    re.IGNORECASE)
_KEEP_UPPER = frozenset({"IT", "AI", "SG", "HR", "PR", "IOT", "ICT", "UK", "USA", "NUS", "3D", "F&B", "B2B", "AV"})


class AcraFileError(ValueError):
    """The file as a whole cannot be read (no header, missing required columns)."""


@dataclasses.dataclass(frozen=True)
class RowError:
    line: int
    uen: str | None
    reason: str

    def __str__(self) -> str:
        who = f" (uen {self.uen})" if self.uen else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class StagingRow:
    uen: str
    entity_name: str
    entity_type_description: str | None
    entity_status_description: str | None
    registration_incorporation_date: dt.date | None
    primary_ssic_code: str | None
    primary_ssic_description: str | None
    postal_code: str | None
    street_name: str | None
    website: str | None
    extra: dict[str, str]

    @property
    def row_hash(self) -> str:
        payload = dataclasses.asdict(self)
        payload["registration_incorporation_date"] = str(self.registration_incorporation_date)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class ParseResult:
    rows: list[StagingRow]
    errors: list[RowError]


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None


def parse_date(value: str | None) -> dt.date | None:
    text = _clean(value)
    if text is None:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"unparseable registration_incorporation_date {text!r} (expected YYYY-MM-DD)")


def normalize_ssic(value: str | None) -> str | None:
    """SSIC codes are five digits; spreadsheets drop the leading zero of codes such as 01111."""
    text = _clean(value)
    if text is None:
        return None
    if not text.isdigit():
        raise ValueError(f"non-numeric primary_ssic_code {text!r}")
    if len(text) > 5:
        raise ValueError(f"primary_ssic_code {text!r} has more than 5 digits")
    return text.zfill(5)


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by errors="surrogateescape"


def _unstorable(text: str) -> str | None:
    """Why PostgreSQL would refuse ``text`` (and with it the whole batch), or None."""
    if "\x00" in text:
        return "contains a NUL byte"
    if _UNDECODABLE.search(text):
        return "is not valid UTF-8"
    return None


def _parse_row(raw: dict[str, str | None], line: int) -> StagingRow:
    for column, value in raw.items():
        problem = _unstorable(value) if isinstance(value, str) else None
        if problem:
            raise ValueError(f"{column} {problem}")
    cleaned = {k: _clean(v) for k, v in raw.items() if k is not None}
    uen = (cleaned.get("uen") or "").upper() or None
    if uen is None:
        raise ValueError("missing uen")
    if not UEN_PATTERN.match(uen):
        raise ValueError(f"malformed uen {uen!r}")
    if not cleaned.get("entity_name"):
        raise ValueError("missing entity_name")
    for column, limit in MAX_LENGTH.items():
        value = cleaned.get(column)
        if value is not None and len(value) > limit:
            raise ValueError(f"{column} is {len(value)} characters long (at most {limit})")
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    return StagingRow(
        uen=uen,
        entity_name=cleaned["entity_name"],
        entity_type_description=cleaned.get("entity_type_description"),
        entity_status_description=cleaned.get("entity_status_description"),
        registration_incorporation_date=parse_date(cleaned.get("registration_incorporation_date")),
        primary_ssic_code=normalize_ssic(cleaned.get("primary_ssic_code")),
        primary_ssic_description=cleaned.get("primary_ssic_description"),
        postal_code=cleaned.get("postal_code"),
        street_name=cleaned.get("street_name"),
        website=cleaned.get("website"),
        extra={k: v for k, v in cleaned.items() if k not in known and v is not None},
    )


def parse_acra_csv(stream: TextIO) -> ParseResult:
    """Read a data.gov.sg ACRA CSV; bad rows become :class:`RowError` (by line), good rows load."""
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:
        raise AcraFileError("the file is empty: expected a CSV header with the ACRA column names")
    header = [h.strip().lower() for h in reader.fieldnames]
    for name in header:
        problem = _unstorable(name)
        if problem:
            raise AcraFileError(f"column name {name!r} {problem}")
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise AcraFileError(f"missing required column(s): {', '.join(missing)}")
    rows: list[StagingRow] = []
    errors: list[RowError] = []
    first_line_of: dict[str, int] = {}
    while True:
        before = reader.reader.line_num
        try:
            raw = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # A field over csv.field_size_limit(), say: the reader drops the rest of that line and
            # goes on with the next one, so only this record is lost.
            errors.append(RowError(reader.reader.line_num, None, f"unreadable record: {exc}"))
            if reader.reader.line_num == before:  # nothing consumed: it cannot move past this point
                break
            continue
        line = reader.line_num
        if None in raw:
            errors.append(RowError(line, _clean(raw.get("uen")), "more fields than the header has columns"))
            continue
        try:
            row = _parse_row(raw, line)
        except ValueError as exc:
            errors.append(RowError(line, _clean(raw.get("uen")), str(exc)))
            continue
        if row.uen in first_line_of:
            errors.append(RowError(line, row.uen, f"duplicate uen (first on line {first_line_of[row.uen]})"))
            continue
        first_line_of[row.uen] = line
        rows.append(row)
    return ParseResult(rows, errors)


def parse_acra_text(text: str) -> ParseResult:
    return parse_acra_csv(io.StringIO(text))


# -- normalization into `companies` ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CompanyRecord:
    uen: str
    name: str
    legal_name: str
    entity_type: str | None
    entity_status: str | None
    is_live: bool
    ssic_code: str | None
    ssic_description: str | None
    incorporation_date: dt.date | None
    incorporation_year: int | None
    postal_code: str | None
    street_name: str | None
    website_domain: str | None
    source_row_hash: str


def core_name(legal_name: str) -> str:
    """The name without its legal form: ``ACME ROBOTICS PTE. LTD.`` → ``ACME ROBOTICS``."""
    name = legal_name
    while True:
        stripped = _LEGAL_SUFFIX.sub("", name).strip(" ,.")
        if stripped == name or not stripped:
            return name.strip()
        name = stripped


def _title_word(word: str) -> str:
    if word.upper() in _KEEP_UPPER:
        return word.upper()
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


def display_name(legal_name: str) -> str:
    """``PEARL APPS PTE. LTD.`` → ``Pearl Apps Pte. Ltd.``; mixed-case names are kept as registered."""
    text = " ".join(legal_name.split())
    if text != text.upper():
        return text
    core = core_name(text)
    suffix = text[len(core):].strip()
    pretty_core = " ".join(_title_word(w) for w in core.split())
    pretty_suffix = {"PTE. LTD.": "Pte. Ltd.", "PTE LTD": "Pte. Ltd.", "PRIVATE LIMITED": "Private Limited",
                     "LTD.": "Ltd.", "LTD": "Ltd.", "LIMITED": "Limited", "LLP": "LLP"}.get(
        " ".join(suffix.upper().split()), " ".join(_title_word(w) for w in suffix.split()))
    return f"{pretty_core} {pretty_suffix}".strip()


def normalize_company(row: StagingRow) -> CompanyRecord:
    status = row.entity_status_description
    date = row.registration_incorporation_date
    return CompanyRecord(
        uen=row.uen,
        name=display_name(row.entity_name),
        legal_name=row.entity_name,
        entity_type=row.entity_type_description,
        entity_status=status,
        is_live=(status or "").strip().lower() in LIVE_STATUSES,
        ssic_code=row.primary_ssic_code,
        ssic_description=row.primary_ssic_description,
        incorporation_date=date,
        incorporation_year=date.year if date else None,
        postal_code=row.postal_code.zfill(6) if row.postal_code and row.postal_code.isdigit() else row.postal_code,
        street_name=row.street_name,
        website_domain=registrable_domain(row.website),
        source_row_hash=row.row_hash,
    )


def normalize_many(rows: Iterable[StagingRow]) -> Iterator[CompanyRecord]:
    for row in rows:
        yield normalize_company(row)
