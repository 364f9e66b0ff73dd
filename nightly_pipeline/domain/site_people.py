"""People a company's site names, matched to the addresses the same site publishes.

A person whose card carries an address is matched to it directly. Otherwise an address is matched
by the ways mail servers spell a person's name (``jane.tan@``, ``j.tan@``, ``jtan@``, ``jane@``,
``tan.jane@`` …), reading the name both given-name-first and family-name-first, as Singapore sites
write both. An address that fits two people, or none, stays unnamed: a wrong name on a lead is
worse than no name.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_NON_LETTERS = re.compile(r"[^a-z]")
_PARTICLES = frozenset({"bin", "binte", "binti", "bte", "b", "s/o", "d/o", "van", "von", "de", "der", "den", "la",
                        "le", "da", "del", "di", "al", "el", "ap"})
_SEPARATORS = (".", "_", "-", "")
# A trailing number tells namesakes apart on one mail server (jane.tan2@).
_TRAILING_DIGITS = re.compile(r"\d+$")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_LETTERS.sub("", folded.lower())


def _name_parts(full_name: str) -> list[tuple[list[str], str]]:
    """(given-name tokens, family name) readings of a name, given name first and family name first."""
    tokens = [t for t in full_name.replace("\u2019", "'").split() if t.lower().strip(".") not in _PARTICLES]
    words = [_ascii(t) for t in tokens]
    words = [w for w in words if w]
    if len(words) < 2:
        return []
    readings = [(words[:-1], words[-1]), (words[1:], words[0])]
    return [(given, family) for given, family in readings if given and family]


def local_part_spellings(full_name: str) -> set[str]:
    """Every local part a mail server could give ``full_name``."""
    spellings: set[str] = set()
    for given_tokens, family in _name_parts(full_name):
        for given in {"".join(given_tokens), given_tokens[0]}:
            initials = "".join(token[0] for token in given_tokens)
            for sep in _SEPARATORS:
                spellings |= {f"{given}{sep}{family}", f"{family}{sep}{given}", f"{given[0]}{sep}{family}",
                              f"{given}{sep}{family[0]}", f"{initials}{sep}{family}", f"{family}{sep}{given[0]}"}
            spellings |= {given, f"{given_tokens[0]}{family}"}
    return {spelling for spelling in spellings if len(spelling) >= 2}


def match_people_to_emails(people: Sequence[Mapping[str, Any]], emails: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each address that belongs to exactly one named person → that person (``name``, ``title``,
    ``page``, ``source``). Only addresses given in ``emails`` are matched; nobody gets an address
    the site does not publish."""
    people = [p for p in people if isinstance(p, Mapping) and isinstance(p.get("name"), str) and p["name"].strip()]
    published = {str(e).strip().lower() for e in emails if isinstance(e, str) and "@" in e}
    matched: dict[str, dict[str, Any]] = {}
    for person in people:
        card_email = str(person.get("email") or "").strip().lower()
        if card_email in published:
            matched[card_email] = dict(person)
    spellings = [(person, local_part_spellings(str(person["name"]))) for person in people]
    for email in sorted(published - set(matched)):
        local_part = _TRAILING_DIGITS.sub("", email.partition("@")[0])
        owners = [person for person, spelled in spellings if local_part in spelled]
        names = {str(person["name"]).casefold() for person in owners}
        if len(names) == 1:
            matched[email] = dict(owners[0])
    return matched
