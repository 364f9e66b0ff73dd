"""Odoo domain evaluation (pure): every operator, prefix logic, dotted paths, NULL handling, errors."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nightly_pipeline_sandbox.odoo_domain import (
    DomainError,
    compile_domain,
    filter_records,
    like_to_regex,
)


@dataclasses.dataclass(frozen=True)
class Field:
    type: str
    relation: str | None = None


FIELDS: dict[str, dict[str, Field]] = {
    "partner": {
        "id": Field("integer"), "name": Field("char"), "display_name": Field("char"), "email": Field("char"),
        "is_company": Field("boolean"), "score": Field("integer"), "amount": Field("float"),
        "since": Field("date"), "parent_id": Field("many2one", "partner"),
        "child_ids": Field("one2many", "partner"), "country_id": Field("many2one", "country"),
        "tag_ids": Field("many2many", "tag"),
    },
    "country": {"id": Field("integer"), "name": Field("char"), "display_name": Field("char"), "code": Field("char")},
    "tag": {"id": Field("integer"), "name": Field("char"), "display_name": Field("char")},
}


def _partner(pid: int, name: str, *, email: Any = False, company: bool = False, score: int = 0,
             amount: float = 0.0, since: Any = False, parent: Any = False, country: Any = False,
             tags: tuple[int, ...] = ()) -> dict[str, Any]:
    return {"id": pid, "name": name, "display_name": name, "email": email, "is_company": company, "score": score,
            "amount": amount, "since": since, "parent_id": parent, "country_id": country, "tag_ids": list(tags)}


PARTNERS = [
    _partner(1, "Acme Pte Ltd", company=True, score=10, amount=1.5, since="2024-01-15", country=1, tags=(1,)),
    _partner(2, "Bob Tan", email="Bob@Acme.com", parent=1, country=1, tags=(1, 2)),
    _partner(3, "Carol_Lim", email="carol@beta.sg", score=5, since="2023-12-31", parent=4, country=2),
    _partner(4, "Beta 100% Ltd", email="info@beta.sg", company=True, score=20, country=2, tags=(2,)),
    _partner(5, "Dan", score=7, parent=2),
]
for _row in PARTNERS:
    _row["child_ids"] = [child["id"] for child in PARTNERS if child["parent_id"] == _row["id"]]

TABLES: dict[str, dict[int, dict[str, Any]]] = {
    "partner": {row["id"]: row for row in PARTNERS},
    "country": {1: {"id": 1, "name": "Singapore", "display_name": "Singapore", "code": "SG"},
                2: {"id": 2, "name": "Malaysia", "display_name": "Malaysia", "code": "MY"}},
    "tag": {1: {"id": 1, "name": "vip", "display_name": "vip"}, 2: {"id": 2, "name": "cold", "display_name": "cold"}},
}
ALL = [1, 2, 3, 4, 5]


class Schema:
    def domain_field(self, model: str, name: str) -> Field | None:
        return FIELDS[model].get(name)

    def domain_record(self, model: str, record_id: int) -> Mapping[str, Any] | None:
        return TABLES[model].get(record_id)

    def domain_parent_field(self, model: str) -> str | None:
        return "parent_id" if model == "partner" else None


def matching_ids(domain: Any) -> list[int]:
    return [row["id"] for row in filter_records(domain, "partner", PARTNERS, Schema())]


@pytest.mark.parametrize(("domain", "expected"), [
    ([], ALL),
    (None, ALL),
    ([("name", "=", "Bob Tan")], [2]),
    ([("email", "=", False)], [1, 5]),
    ([("email", "!=", False)], [2, 3, 4]),
    ([("email", "!=", "info@beta.sg")], [1, 2, 3, 5]),
    ([("email", "=?", False)], ALL),
    ([("email", "=?", "carol@beta.sg")], [3]),
    ([("score", ">", 5)], [1, 4, 5]),
    ([("score", ">=", 5)], [1, 3, 4, 5]),
    ([("score", "<", 5)], [2]),
    ([("score", "<=", 5)], [2, 3]),
    ([("since", "<", "2024-01-01")], [3]),
    ([("since", ">", False)], []),
    ([("amount", ">", 1)], [1]),
    ([("id", "=", "3")], [3]),
    ([("name", "like", "Tan")], [2]),
    ([("name", "like", "tan")], []),
    ([("name", "ilike", "tan")], [2]),
    ([("name", "ILIKE", "TAN")], [2]),
    ([("name", "ilike", "100\\%")], [4]),
    ([("name", "ilike", "")], ALL),
    ([("name", "not like", "Ltd")], [2, 3, 5]),
    ([("name", "not ilike", "ltd")], [2, 3, 5]),
    ([("email", "not ilike", "beta")], [1, 2, 5]),
    ([("name", "=like", "C_rol%")], [3]),
    ([("name", "=like", "Carol\\_%")], [3]),
    ([("name", "=like", "Car")], []),
    ([("name", "=ilike", "bob tan")], [2]),
    ([("email", "=ilike", "BOB@acme.com")], [2]),
    ([("id", "in", [1, 3, 99])], [1, 3]),
    ([("id", "in", 4)], [4]),
    ([("id", "=", [1, 2])], [1, 2]),
    ([("id", "!=", [1, 2])], [3, 4, 5]),
    ([("id", "in", [])], []),
    ([("id", "not in", [1, 3])], [2, 4, 5]),
    ([("id", "not in", [])], ALL),
    ([("email", "in", [False, "info@beta.sg"])], [1, 4, 5]),
    ([("email", "not in", ["info@beta.sg"])], [1, 2, 3, 5]),
    ([("email", "not in", [False, "info@beta.sg"])], [2, 3]),
    ([("is_company", "=", True)], [1, 4]),
    ([("is_company", "=", False)], [2, 3, 5]),
    ([("is_company", "!=", True)], [2, 3, 5]),
    ([("is_company", "in", [False])], [2, 3, 5]),
    ([("parent_id", "=", False)], [1, 4]),
    ([("parent_id", "=", 1)], [2]),
    ([("parent_id", "in", [1, 4])], [2, 3]),
    ([("parent_id", "!=", 1)], [1, 3, 4, 5]),
    ([("id", "<>", 1)], [2, 3, 4, 5]),
    ([("id", "==", 1)], [1]),
])
def test_operators(domain: Any, expected: list[int]) -> None:
    assert matching_ids(domain) == expected


@pytest.mark.parametrize(("domain", "expected"), [
    ([("parent_id.name", "=", "Acme Pte Ltd")], [2]),
    ([("parent_id.name", "!=", "Acme Pte Ltd")], [3, 5]),
    ([("parent_id.parent_id.name", "ilike", "acme")], [5]),
    ([("parent_id.country_id.code", "=", "MY")], [3]),
    ([("parent_id.email", "=", False)], [2]),
    ([("country_id.code", "=", "SG")], [1, 2]),
    ([("country_id", "=", "Singapore")], [1, 2]),
    ([("country_id", "ilike", "malay")], [3, 4]),
    ([("country_id", "!=", "Singapore")], [3, 4, 5]),
    ([("tag_ids", "=", 1)], [1, 2]),
    ([("tag_ids", "in", [2])], [2, 4]),
    ([("tag_ids", "not in", [1])], [3, 4, 5]),
    ([("tag_ids", "!=", 2)], [1, 3, 5]),
    ([("tag_ids", "=", False)], [3, 5]),
    ([("tag_ids", "!=", False)], [1, 2, 4]),
    ([("tag_ids.name", "=", "cold")], [2, 4]),
    ([("tag_ids", "ilike", "vi")], [1, 2]),
    ([("child_ids", "!=", False)], [1, 2, 4]),
    ([("child_ids.name", "=", "Dan")], [2]),
    ([("id", "child_of", 1)], [1, 2, 5]),
    ([("id", "child_of", [4])], [3, 4]),
    ([("parent_id", "child_of", 1)], [2, 5]),
    ([("id", "parent_of", 5)], [1, 2, 5]),
    ([("id", "parent_of", [3])], [3, 4]),
])
def test_paths_relations_and_hierarchies(domain: Any, expected: list[int]) -> None:
    assert matching_ids(domain) == expected


@pytest.mark.parametrize(("domain", "expected"), [
    (["|", ("name", "=", "Dan"), ("score", "=", 20)], [4, 5]),
    (["!", ("is_company", "=", True)], [2, 3, 5]),
    (["!", "!", ("id", "=", 1)], [1]),
    (["&", "|", ("score", "=", 0), ("score", "=", 5), ("country_id", "=", 2)], [3]),
    (["|", "&", ("is_company", "=", True), ("country_id", "=", 1), ("name", "=", "Dan")], [1, 5]),
    (["!", "|", ("score", ">", 7), ("email", "=", False)], [2, 3]),
    ([("is_company", "=", False), "|", ("score", "=", 0), ("score", "=", 7)], [2, 5]),
    (["|", "|", ("id", "=", 1), ("id", "=", 2), "!", ("score", "<", 20)], [1, 2, 4]),
    (["&", ("country_id", "=", 1), "!", "|", ("id", "=", 1), ("id", "=", 5)], [2]),
    ([[1, "=", 1]], ALL),
    ([[0, "=", 1]], []),
])
def test_prefix_logic(domain: Any, expected: list[int]) -> None:
    assert matching_ids(domain) == expected


def test_long_or_chain_parses_without_recursion() -> None:
    ids = list(range(1, 3001))
    domain = ["|"] * (len(ids) - 1) + [("id", "=", pid) for pid in ids]
    assert matching_ids(domain) == ALL


@pytest.mark.parametrize(("domain", "message"), [
    ("name", "expected a list"),
    ([("name", "=")], "Invalid leaf"),
    ([("nope", "=", 1)], "Invalid field partner.nope"),
    ([("parent_id.nope", "=", 1)], "Invalid field partner.nope"),
    ([("name", "between", 1)], "Invalid operator 'between'"),
    ([("name", 3, 1)], "Invalid operator"),
    (["|", ("id", "=", 1)], "missing operands"),
    (["!"], "missing operands"),
    ([("", "=", 1)], "Invalid leaf"),
    ([("name.code", "=", 1)], "not a relational field"),
    ([("country_id", "child_of", 1)], "is not a hierarchy"),
    ([("tag_ids", ">", 1)], "does not apply"),
    ([("country_id", ">", "S")], "cannot compare"),
    ([("score", "=", "abc")], "is not a valid integer"),
    ([("score", ">", [1, 2])], "needs a single value"),
    ([("id", "in", {"a": 1})], "needs a list"),
    ([("id", "child_of", "x")], "is not a record id"),
])
def test_malformed_domains_raise_clear_errors(domain: Any, message: str) -> None:
    with pytest.raises(DomainError, match=message):
        compile_domain(domain, "partner", Schema())


@pytest.mark.parametrize(("pattern", "wrap", "ignore_case", "text", "matches"), [
    ("a%c", False, False, "abbbc", True),
    ("a_c", False, False, "abc", True),
    ("a_c", False, False, "abbc", False),
    ("a\\_c", False, False, "abc", False),
    ("a\\_c", False, False, "a_c", True),
    ("b", True, False, "abc", True),
    ("B", True, True, "abc", True),
    ("B", True, False, "abc", False),
    ("a.c", False, False, "abc", False),
])
def test_like_to_regex(pattern: str, wrap: bool, ignore_case: bool, text: str, matches: bool) -> None:
    regex = like_to_regex(pattern, wrap=wrap, ignore_case=ignore_case)
    assert (regex.fullmatch(text) is not None) == matches


LEAVES = [
    ("email", "=", False), ("email", "ilike", "beta"), ("score", ">", 5), ("is_company", "=", True),
    ("parent_id.name", "ilike", "acme"), ("tag_ids", "in", [2]), ("id", "child_of", 1), ("name", "not like", "Ltd"),
    ("country_id", "=", "Singapore"), ("since", "<=", "2024-01-01"),
]
leaves = st.sampled_from(LEAVES)


@settings(max_examples=60, deadline=None)
@given(leaves, leaves)
def test_prefix_operators_agree_with_set_algebra(left: tuple[str, str, Any], right: tuple[str, str, Any]) -> None:
    a, b = set(matching_ids([left])), set(matching_ids([right]))
    assert set(matching_ids(["!", left])) == set(ALL) - a
    assert set(matching_ids(["|", left, right])) == a | b
    assert set(matching_ids(["&", left, right])) == set(matching_ids([left, right])) == a & b
    assert set(matching_ids(["!", "|", left, right])) == set(matching_ids(["&", "!", left, "!", right]))
