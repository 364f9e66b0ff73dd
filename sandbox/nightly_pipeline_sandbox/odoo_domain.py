"""Odoo 17 search domains, evaluated in memory for the Odoo sandbox server.

A domain is a list of ``[field_path, operator, value]`` leaves and the prefix operators ``"&"``,
``"|"`` and ``"!"`` (Polish notation); top-level terms are AND-ed. :func:`compile_domain` checks a
domain against a model's fields once and returns a predicate over record mappings, so a search
over many records pays for parsing, field lookup and value coercion only once.

The semantics follow the SQL Odoo 17 generates (``odoo/osv/expression.py``):

* ``False``/``None`` stand for NULL; a boolean ``False`` counts as NULL too. Empty char values are
  stored as ``False`` by the sandbox, so ``("email", "=", False)`` finds records without an email.
* Negative operators (``!=``, ``not like``, ``not ilike``, ``not in``) also match NULL, as Odoo's
  ``... OR field IS NULL`` does; ordering comparisons never match NULL.
* ``like``/``ilike`` wrap the value in ``%``; ``=like``/``=ilike`` use it as a LIKE pattern as is.
  An empty or ``False`` pattern matches every record (Odoo adds ``OR field IS NULL``).
* A dotted path through a many2one matches when the related record exists and matches the rest of
  the path; through a one2many/many2many it matches when any related record does.
* A string compared with a relational field is matched against the related records' display name
  (Odoo runs a ``name_search``); negative operators then match records that have no such relation.
* ``=``/``!=`` with a list value mean ``in``/``not in``, as Odoo rewrites them.
* ``child_of``/``parent_of`` follow the related model's parent field (``parent_id``).

The module does no I/O: the caller supplies field metadata and record lookup through
:class:`DomainSchema`.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

AND, OR, NOT = "&", "|", "!"
POSITIVE_LIKE = ("like", "ilike", "=like", "=ilike")
NEGATIVE_LIKE = ("not like", "not ilike")
COMPARISONS = ("<", ">", "<=", ">=")
OPERATORS = frozenset(("=", "!=", "=?", *COMPARISONS, *POSITIVE_LIKE, *NEGATIVE_LIKE,
                       "in", "not in", "child_of", "parent_of"))
NEGATIVE_OPERATORS = frozenset(("!=", "not in", *NEGATIVE_LIKE))
_POSITIVE_OF = {"!=": "=", "not in": "in", "not like": "like", "not ilike": "ilike"}
_OPERATOR_ALIASES = {"<>": "!=", "==": "="}
RELATIONAL_TYPES = frozenset(("many2one", "one2many", "many2many"))
X2MANY_TYPES = frozenset(("one2many", "many2many"))
_TEXT_TYPES = frozenset(("char", "text", "html", "selection", "date", "datetime", "reference"))
_INTEGER_TYPES = frozenset(("integer", "many2one", "one2many", "many2many"))
_FLOAT_TYPES = frozenset(("float", "monetary"))
# Odoo's constant leaves, used by the ORM itself to express "always" and "never".
_TRUE_LEAF = (1, "=", 1)
_FALSE_LEAF = (0, "=", 1)


class DomainError(ValueError):
    """A malformed domain or a leaf that cannot apply to the model (Odoo raises ``ValueError``)."""


class FieldRef(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def relation(self) -> str | None: ...


class DomainSchema(Protocol):
    """What evaluation needs to know: fields per model, records by id, hierarchies."""

    def domain_field(self, model: str, name: str) -> FieldRef | None:
        """The field ``name`` of ``model``, or ``None`` when the model has no such field."""

    def domain_record(self, model: str, record_id: int) -> Record | None:
        """Record ``record_id`` of ``model`` (archived included), ``None`` if it does not exist.

        The mapping must expose every field the domain can name, computed ones included, with
        many2one values as an id or ``False`` and x2many values as a list of ids.
        """

    def domain_parent_field(self, model: str) -> str | None:
        """The many2one field that makes ``model`` a hierarchy (Odoo's ``_parent_name``)."""


# -- parsing -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    operator: str
    value: Any


@dataclasses.dataclass(frozen=True)
class Constant:
    result: bool


@dataclasses.dataclass(frozen=True)
class Not:
    child: Node


@dataclasses.dataclass(frozen=True)
class Junction:
    """``&`` or ``|`` over any number of children (nested junctions of the same kind are merged)."""

    operator: str
    children: tuple[Node, ...]


Node = Leaf | Constant | Not | Junction


def parse_domain(domain: Any) -> Node:
    """Turn a domain into a tree; raise :class:`DomainError` if it is malformed.

    Works from the right with a stack instead of recursing, so that a generated OR chain over
    thousands of leaves parses without hitting Python's recursion limit.
    """
    if domain is None or domain is False:
        return Constant(True)
    if not isinstance(domain, (list, tuple)):
        raise DomainError(f"Invalid domain {domain!r}: expected a list of terms")
    stack: list[Node] = []
    for term in reversed(domain):
        if term in (AND, OR):
            stack.append(_junction(term, _pop_operands(stack, term, 2)))
        elif term == NOT:
            stack.append(Not(_pop_operands(stack, term, 1)[0]))
        else:
            stack.append(_parse_leaf(term))
    return _junction(AND, list(reversed(stack))) if stack else Constant(True)


def _pop_operands(stack: list[Node], operator: str, count: int) -> list[Node]:
    if len(stack) < count:
        raise DomainError(f"Invalid domain: operator {operator!r} is missing operands")
    return [stack.pop() for _ in range(count)]


def _junction(operator: str, children: Sequence[Node]) -> Node:
    if len(children) == 1:
        return children[0]
    merged: list[Node] = []
    for child in children:
        if isinstance(child, Junction) and child.operator == operator:
            merged.extend(child.children)
        else:
            merged.append(child)
    return Junction(operator, tuple(merged))


def _parse_leaf(term: Any) -> Node:
    if not isinstance(term, (list, tuple)) or len(term) != 3:
        raise DomainError(f"Invalid leaf {term!r}: expected [field, operator, value] or '&', '|', '!'")
    if tuple(term) == _TRUE_LEAF:
        return Constant(True)
    if tuple(term) == _FALSE_LEAF:
        return Constant(False)
    field, operator, value = term
    if not isinstance(field, str) or not field or any(not part for part in field.split(".")):
        raise DomainError(f"Invalid leaf {term!r}: the field must be a field name or dotted path")
    if not isinstance(operator, str):
        raise DomainError(f"Invalid operator {operator!r} in leaf {term!r}")
    operator = _OPERATOR_ALIASES.get(operator.lower(), operator.lower())
    if operator not in OPERATORS:
        raise DomainError(f"Invalid operator {operator!r} in leaf {term!r}")
    if operator in ("=", "!=") and isinstance(value, (list, tuple)):
        # Odoo 17 logs a warning and treats the term as a membership test.
        operator = "in" if operator == "=" else "not in"
    return Leaf(tuple(field.split(".")), operator, value)


def leaf_fields(domain: Any) -> set[str]:
    """Field names of the domain's leaves as written (Odoo checks these for ``active``)."""
    if not isinstance(domain, (list, tuple)):
        return set()
    return {term[0] for term in domain
            if isinstance(term, (list, tuple)) and len(term) == 3 and isinstance(term[0], str)}


# -- compilation ---------------------------------------------------------------------------------
def compile_domain(domain: Any, model: str, schema: DomainSchema) -> Predicate:
    """A predicate telling whether a record of ``model`` matches ``domain``."""
    return _compile(parse_domain(domain), model, schema)


def filter_records(domain: Any, model: str, records: Iterable[Record], schema: DomainSchema) -> list[Record]:
    predicate = compile_domain(domain, model, schema)
    return [record for record in records if predicate(record)]


def _compile(node: Node, model: str, schema: DomainSchema) -> Predicate:
    if isinstance(node, Constant):
        result = node.result
        return lambda record: result
    if isinstance(node, Not):
        child = _compile(node.child, model, schema)
        return lambda record: not child(record)
    if isinstance(node, Junction):
        children = [_compile(child, model, schema) for child in node.children]
        if node.operator == AND:
            return lambda record: all(child(record) for child in children)
        return lambda record: any(child(record) for child in children)
    return _compile_leaf(node, model, schema)


def _compile_leaf(leaf: Leaf, model: str, schema: DomainSchema) -> Predicate:
    name = leaf.path[0]
    field = schema.domain_field(model, name)
    if field is None:
        raise DomainError(f"Invalid field {model}.{name} in leaf {_leaf_repr(leaf)}")
    if len(leaf.path) > 1:
        return _compile_path(leaf, field, schema)
    if leaf.operator in ("child_of", "parent_of"):
        return _compile_hierarchy(leaf, model, field, schema)
    if field.type in RELATIONAL_TYPES and _is_name_value(leaf.value):
        return _compile_name_match(leaf, model, schema)
    if field.type in X2MANY_TYPES:
        return _compile_x2many(leaf, field)
    return _compile_scalar(name, leaf.operator, _coerce_value(leaf, field), field.type)


def _leaf_repr(leaf: Leaf) -> str:
    return repr((".".join(leaf.path), leaf.operator, leaf.value))


def _compile_path(leaf: Leaf, field: FieldRef, schema: DomainSchema) -> Predicate:
    name = leaf.path[0]
    if field.type not in RELATIONAL_TYPES or not field.relation:
        raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: {name!r} is not a relational field")
    comodel = field.relation
    rest = _compile_leaf(Leaf(leaf.path[1:], leaf.operator, leaf.value), comodel, schema)

    def related_match(record_id: Any) -> bool:
        related = schema.domain_record(comodel, record_id) if _is_id(record_id) else None
        return related is not None and rest(related)

    if field.type == "many2one":
        return lambda record: related_match(record.get(name))
    return lambda record: any(related_match(rid) for rid in record.get(name) or ())


def _is_name_value(value: Any) -> bool:
    return isinstance(value, str)


def _compile_name_match(leaf: Leaf, model: str, schema: DomainSchema) -> Predicate:
    if leaf.operator in COMPARISONS:
        raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: cannot compare a relation with {leaf.operator!r}")
    name_path = (leaf.path[0], "display_name")
    if leaf.operator in NEGATIVE_OPERATORS:
        positive = _compile_leaf(Leaf(name_path, _POSITIVE_OF[leaf.operator], leaf.value), model, schema)
        return lambda record: not positive(record)
    return _compile_leaf(Leaf(name_path, leaf.operator, leaf.value), model, schema)


def _compile_x2many(leaf: Leaf, field: FieldRef) -> Predicate:
    name, operator = leaf.path[0], leaf.operator
    if _is_null(leaf.value) and operator in ("=", "!="):
        wants_empty = operator == "="
        return lambda record: (not record.get(name)) == wants_empty
    if operator == "=?":
        if _is_null(leaf.value):
            return lambda record: True
        operator = "="
    if operator in ("=", "!=", "in", "not in"):
        wanted = frozenset(_coerce_id(leaf, item) for item in _as_list(leaf.value) if not _is_null(item))
        negative = operator in ("!=", "not in")
        return lambda record: bool(wanted.intersection(record.get(name) or ())) != negative
    raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: operator {operator!r} does not apply to {field.type} ids")


def _compile_hierarchy(leaf: Leaf, model: str, field: FieldRef, schema: DomainSchema) -> Predicate:
    name = leaf.path[0]
    comodel = model if name == "id" else field.relation
    parent_field = schema.domain_parent_field(comodel) if comodel else None
    if comodel is None or parent_field is None:
        raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: {comodel or name!r} is not a hierarchy")
    roots = frozenset(_coerce_id(leaf, item) for item in _as_list(leaf.value) if not _is_null(item))

    def ancestors_or_self(record_id: int) -> set[int]:
        seen: set[int] = set()
        current: Any = record_id
        while _is_id(current) and current not in seen:
            seen.add(current)
            row = schema.domain_record(comodel, current)
            current = row.get(parent_field) if row is not None else None
        return seen

    def related_ids(record: Record) -> list[int]:
        value = record.get(name)
        if field.type in X2MANY_TYPES:
            return list(value or ())
        return [value] if _is_id(value) else []

    if leaf.operator == "child_of":
        return lambda record: any(roots & ancestors_or_self(rid) for rid in related_ids(record))
    lineage = frozenset().union(*(ancestors_or_self(root) for root in roots))
    return lambda record: any(rid in lineage for rid in related_ids(record))


def _compile_scalar(name: str, operator: str, value: Any, field_type: str) -> Predicate:
    if operator == "=?":
        if _is_null(value):
            return lambda record: True
        operator = "="
    if operator in ("=", "!="):
        return _equality(name, operator, value)
    if operator in COMPARISONS:
        return _comparison(name, operator, value)
    if operator in ("in", "not in"):
        return _membership(name, operator, value)
    return _pattern(name, operator, value, field_type)


def _equality(name: str, operator: str, value: Any) -> Predicate:
    if _is_null(value):
        wants_null = operator == "="
        return lambda record: _is_null(record.get(name)) == wants_null
    if operator == "=":
        return lambda record: not _is_null(stored := record.get(name)) and stored == value
    return lambda record: _is_null(stored := record.get(name)) or stored != value


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
}


def _comparison(name: str, operator: str, value: Any) -> Predicate:
    if _is_null(value):
        return lambda record: False
    compare = _COMPARATORS[operator]
    return lambda record: not _is_null(stored := record.get(name)) and compare(stored, value)


def _membership(name: str, operator: str, values: list[Any]) -> Predicate:
    includes_null = any(_is_null(item) for item in values)
    wanted = frozenset(item for item in values if not _is_null(item))
    if operator == "in":
        return lambda record: (includes_null if _is_null(stored := record.get(name)) else stored in wanted)
    return lambda record: (not includes_null if _is_null(stored := record.get(name)) else stored not in wanted)


def _pattern(name: str, operator: str, value: Any, field_type: str) -> Predicate:
    negative = operator in NEGATIVE_LIKE
    if _is_null(value) or value == "":
        # Odoo turns an empty pattern into "LIKE '%%' OR IS NULL": everything for the positive
        # operators, and only NULLs for the negative ones ("NOT LIKE '%%' OR IS NULL").
        if operator in ("=like", "=ilike"):
            return lambda record: _is_null(record.get(name))
        if negative:
            return lambda record: _is_null(record.get(name))
        return lambda record: True
    regex = like_to_regex(str(value), wrap=operator in ("like", "ilike", *NEGATIVE_LIKE),
                          ignore_case="ilike" in operator)
    as_text = _text_of_boolean if field_type == "boolean" else str

    def matches(record: Record) -> bool:
        stored = record.get(name)
        if _is_null(stored):
            return negative
        return (regex.fullmatch(as_text(stored)) is not None) != negative

    return matches


def _text_of_boolean(value: Any) -> str:
    return "true" if value else "false"


def like_to_regex(pattern: str, *, wrap: bool, ignore_case: bool) -> re.Pattern[str]:
    """SQL LIKE semantics: ``%`` any run, ``_`` one character, backslash escapes the next one."""
    parts: list[str] = [".*"] if wrap else []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape("\\"))
    if wrap:
        parts.append(".*")
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


# -- values --------------------------------------------------------------------------------------
def _is_null(value: Any) -> bool:
    return value is None or value is False


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]


def _coerce_id(leaf: Leaf, value: Any) -> int:
    if _is_id(value):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: {value!r} is not a record id")


def _coerce_value(leaf: Leaf, field: FieldRef) -> Any:
    """Convert the leaf's value to the field's type, as PostgreSQL casts a query parameter."""
    if leaf.operator in ("in", "not in"):
        if isinstance(leaf.value, Mapping):
            raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: 'in' needs a list of values")
        return [_coerce_scalar(leaf, field, item) for item in _as_list(leaf.value)]
    if leaf.operator in POSITIVE_LIKE or leaf.operator in NEGATIVE_LIKE:
        if not _is_null(leaf.value) and not isinstance(leaf.value, (str, int, float)):
            raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: a LIKE pattern must be a string")
        return leaf.value
    if isinstance(leaf.value, (list, tuple, dict, set)):
        raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: operator {leaf.operator!r} needs a single value")
    return _coerce_scalar(leaf, field, leaf.value)


def _coerce_scalar(leaf: Leaf, field: FieldRef, value: Any) -> Any:
    if _is_null(value) and field.type != "boolean":
        return False
    try:
        if field.type == "boolean":
            return bool(value)
        if field.type in _INTEGER_TYPES:
            return value if _is_id(value) else int(value)
        if field.type in _FLOAT_TYPES:
            return float(value)
        if field.type in _TEXT_TYPES and not isinstance(value, (list, tuple, dict)):
            return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError) as exc:
        raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: {value!r} is not a valid {field.type}") from exc
    if isinstance(value, (list, tuple, dict, set)):
        raise DomainError(f"Invalid leaf {_leaf_repr(leaf)}: {value!r} is not a valid {field.type}")
    return value
