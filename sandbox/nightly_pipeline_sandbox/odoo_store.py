"""One in-memory Odoo database of the sandbox: users, records, ORM operations and accounting.

Behaviour kept from Odoo 17 because a client can observe it:

* Values are stored as Odoo reads them back: ``False`` for an empty char/date/many2one, ints for
  many2one, id lists for many2many; html without markup is wrapped in ``<p>`` like Odoo's sanitizer.
* ``read`` silently drops ids that do not exist (odoorpc's ``browse`` then raises ``ValueError``);
  ``write`` and ``unlink`` on missing ids raise ``MissingError``.
* Readonly fields (``id``, dates, computed fields without inverse) are ignored on create/write;
  unknown fields raise ``ValueError("Invalid field 'x' on model 'y'")``.
* Each RPC call is a transaction: if it fails, every change it made is undone.
* Ordering by a many2one sorts by the related record's display name (Odoo uses the comodel's
  ``_order``); strings sort by code point, as in Odoo's ``LC_COLLATE 'C'`` databases.

All public methods take the database lock, so tests may inspect a database from another thread
while the server thread serves requests.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import html as html_lib
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from nightly_pipeline_sandbox.odoo_domain import compile_domain, leaf_fields
from nightly_pipeline_sandbox.odoo_schema import MODELS, FieldSpec, ModelSpec, lookup_seed_rows

Row = dict[str, Any]
DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_SYSTEM_UID = 1
_X2MANY = ("one2many", "many2many")
_ORDER_TERM = re.compile(r"^\s*(?P<field>[a-z0-9_]+)(?:\s+(?P<direction>asc|desc))?"
                         r"(?:\s+nulls\s+(?P<nulls>first|last))?\s*$", re.IGNORECASE)
_MARKUP = re.compile(r"<[a-zA-Z!/]")


class OdooError(Exception):
    """An error Odoo reports in its JSON-RPC error envelope under ``data.name``."""

    exception_name = "odoo.exceptions.UserError"

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UserError(OdooError):
    exception_name = "odoo.exceptions.UserError"


class AccessDenied(OdooError):
    exception_name = "odoo.exceptions.AccessDenied"

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class AccessError(OdooError):
    exception_name = "odoo.exceptions.AccessError"


class MissingError(OdooError):
    exception_name = "odoo.exceptions.MissingError"


class ValidationError(OdooError):
    exception_name = "odoo.exceptions.ValidationError"


class _RecordView(Mapping[str, Any]):
    """A stored row plus its computed and one2many fields, as domains and reads see it."""

    __slots__ = ("_db", "_spec", "_row")

    def __init__(self, db: OdooDatabase, spec: ModelSpec, row: Row) -> None:
        self._db = db
        self._spec = spec
        self._row = row

    def __getitem__(self, name: str) -> Any:
        if name in self._row:
            return self._row[name]
        field = self._spec.field(name)
        if field is None:
            raise KeyError(name)
        if field.compute is not None:
            return field.compute(self._db, self._row)
        if field.type == "one2many":
            return self._db.children_ids(field, self._row["id"])
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._spec.fields)

    def __len__(self) -> int:
        return len(self._spec.fields)


class OdooDatabase:
    """Tables, users and call accounting of one database (implements ``DomainSchema``)."""

    def __init__(self, name: str, users: Mapping[str, str], *, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.lock = threading.RLock()
        self._clock = clock
        self._tables: dict[str, dict[int, Row]] = {model: {} for model in MODELS}
        self._next_id: dict[str, int] = {model: 1 for model in MODELS}
        self._passwords: dict[int, str] = {}
        self._undo: list[Callable[[], None]] | None = None
        self._pending_creates: Counter[str] = Counter()
        self._version = 0
        self._children_index: dict[tuple[str, str], tuple[int, dict[int, list[int]]]] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.creates: Counter[str] = Counter()
        self.login_failures = 0
        self._seed()
        for login, password in users.items():
            self.add_user(login, password)

    # -- persistence -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The records (JSON-ready), so a sandbox Odoo can outlive one process like a real one."""
        with self.lock:
            return {"tables": {model: list(table.values()) for model, table in self._tables.items()},
                    "next_id": dict(self._next_id)}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the records with a :meth:`snapshot`; users keep the passwords configured now."""
        with self.lock:
            for model, rows in snapshot["tables"].items():
                if model in self._tables:
                    self._tables[model] = {row["id"]: dict(row) for row in rows}
            self._next_id.update({m: n for m, n in snapshot["next_id"].items() if m in self._next_id})
            self._children_index.clear()
            self._version += 1

    # -- users -----------------------------------------------------------------------------------
    def add_user(self, login: str, password: str) -> int:
        """Create an active user with its partner; return its uid."""
        with self.lock:
            if any(row["login"] == login for row in self._tables["res.users"].values()):
                raise ValueError(f"user {login!r} already exists in database {self.name!r}")
            display = "Administrator" if login == "admin" else login
            partner_id = self._insert_seed("res.partner", {
                "name": display, "email": login if "@" in login else False, "type": "contact"})
            uid = self._insert_seed("res.users", {"name": display, "login": login, "partner_id": partner_id})
            self._passwords[uid] = password
            return uid

    def authenticate(self, login: Any, password: Any) -> int | None:
        with self.lock:
            for uid, row in self._tables["res.users"].items():
                if row["login"] == login and row["active"] and self._passwords.get(uid) == password:
                    return uid
            self.login_failures += 1
            return None

    def check_credentials(self, uid: Any, password: Any) -> bool:
        with self.lock:
            row = self._tables["res.users"].get(uid) if _is_id(uid) else None
            return row is not None and bool(row["active"]) and self._passwords.get(uid) == password

    # -- transactions and journaled storage ------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Undo every change made inside the block if it raises, like a rolled-back cursor.

        Ids handed out stay consumed, as with PostgreSQL sequences.
        """
        with self.lock:
            if self._undo is not None:
                yield
                return
            self._undo = []
            try:
                yield
            except BaseException:
                for undo in reversed(self._undo):
                    undo()
                raise
            else:
                self.creates.update(self._pending_creates)
            finally:
                self._undo = None
                self._pending_creates.clear()

    def _journal(self, undo: Callable[[], None]) -> None:
        self._version += 1
        if self._undo is not None:
            def undo_and_bump() -> None:
                undo()
                self._version += 1
            self._undo.append(undo_and_bump)

    def _insert(self, model: str, row: Row) -> None:
        table = self._tables[model]
        table[row["id"]] = row
        self._journal(lambda: table.pop(row["id"], None))

    def _update(self, model: str, record_id: int, changes: Mapping[str, Any]) -> None:
        row = self._tables[model][record_id]
        previous = {name: row[name] for name in changes}
        row.update(changes)
        self._journal(lambda: row.update(previous))

    def _delete(self, model: str, record_id: int) -> None:
        table = self._tables[model]
        row = table.pop(record_id)
        self._journal(lambda: table.__setitem__(record_id, row))

    def _new_id(self, model: str) -> int:
        new_id = self._next_id[model]
        self._next_id[model] = new_id + 1
        return new_id

    # -- seeding ---------------------------------------------------------------------------------
    def _seed(self) -> None:
        for model, rows in lookup_seed_rows().items():
            for row in rows:
                self._insert_seed(model, row)
        bot_partner = self._insert_seed("res.partner", {"name": "OdooBot", "parent_id": 1, "active": False})
        self._insert_seed("res.users", {"name": "OdooBot", "login": "__system__", "partner_id": bot_partner,
                                        "active": False})

    def _insert_seed(self, model: str, values: Mapping[str, Any]) -> int:
        spec = MODELS[model]
        row = self._blank_row(spec, _SYSTEM_UID)
        row.update(values)
        row["id"] = values["id"] if "id" in values else self._new_id(model)
        self._next_id[model] = max(self._next_id[model], row["id"] + 1)
        now = self._now()
        row.update(create_uid=_SYSTEM_UID, write_uid=_SYSTEM_UID, create_date=now, write_date=now)
        self._insert(model, row)
        return row["id"]

    def _blank_row(self, spec: ModelSpec, uid: int) -> Row:
        return {field.name: self._default_value(field, uid) if field.has_default else _empty_value(field)
                for field in spec.fields.values() if _is_stored(field) and field.name != "id"}

    def _default_value(self, field: FieldSpec, uid: int) -> Any:
        if field.default_from == "uid":
            return uid
        if field.default_from == "first_record" and field.relation:
            first = self._search_ids(MODELS[field.relation], [], active_test=True, limit=1)
            return first[0] if first else False
        return copy.deepcopy(field.default)

    def _now(self) -> str:
        return dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc).strftime(DATETIME_FORMAT)

    # -- DomainSchema and RowLookup --------------------------------------------------------------
    def domain_field(self, model: str, name: str) -> FieldSpec | None:
        spec = MODELS.get(model)
        return spec.field(name) if spec else None

    def domain_record(self, model: str, record_id: int) -> Mapping[str, Any] | None:
        row = self._tables[model].get(record_id)
        return _RecordView(self, MODELS[model], row) if row is not None else None

    def domain_parent_field(self, model: str) -> str | None:
        spec = MODELS.get(model)
        return spec.parent_name if spec else None

    def stored_row(self, model: str, record_id: Any) -> Mapping[str, Any] | None:
        return self._tables[model].get(record_id) if _is_id(record_id) else None

    def children_ids(self, field: FieldSpec, parent_id: int) -> list[int]:
        """Active records of the one2many's comodel whose inverse many2one points at ``parent_id``."""
        comodel = field.relation or ""
        table = self._tables[comodel]
        check_active = "active" in MODELS[comodel].fields
        return [child for child in self._all_children(comodel, field.relation_field or "", parent_id)
                if not check_active or table[child]["active"]]

    def _all_children(self, comodel: str, inverse: str, parent_id: int) -> list[int]:
        key = (comodel, inverse)
        cached = self._children_index.get(key)
        if cached is None or cached[0] != self._version:
            index: dict[int, list[int]] = defaultdict(list)
            for child_id, row in self._tables[comodel].items():
                if row.get(inverse):
                    index[row[inverse]].append(child_id)
            cached = (self._version, index)
            self._children_index[key] = cached
        return list(cached[1].get(parent_id, ()))

    # -- models ----------------------------------------------------------------------------------
    def spec(self, model: str) -> ModelSpec:
        spec = MODELS.get(model)
        if spec is None:
            raise UserError(f"Object {model} doesn't exist")
        return spec

    def _writable_spec(self, model: str, operation: str) -> ModelSpec:
        spec = self.spec(model)
        if not spec.writable:
            raise AccessError(f"You are not allowed to {operation} '{spec.description}' ({spec.name}) records."
                              "\n\nContact your administrator to request access if necessary.")
        return spec

    # -- ORM operations --------------------------------------------------------------------------
    def search(self, model: str, domain: Any, *, offset: Any = 0, limit: Any = None, order: Any = None,
               active_test: bool = True) -> list[int]:
        with self.lock:
            return self._search_ids(self.spec(model), domain, offset=offset, limit=limit, order=order,
                                    active_test=active_test)

    def _search_ids(self, spec: ModelSpec, domain: Any, *, offset: Any = 0, limit: Any = None,
                    order: Any = None, active_test: bool = True) -> list[int]:
        predicate = compile_domain(domain, spec.name, self)
        # Odoo hides archived records unless the domain itself mentions ``active``.
        hide_archived = active_test and "active" in spec.fields and "active" not in leaf_fields(domain)
        views = [_RecordView(self, spec, row) for row in self._tables[spec.name].values()
                 if not (hide_archived and not row["active"])]
        matching = self._sorted(spec, [view for view in views if predicate(view)], order)
        start = _non_negative_int(offset, "offset")
        stop = None if limit is None or limit is False else start + _non_negative_int(limit, "limit")
        return [view["id"] for view in matching[start:stop]]

    def _sorted(self, spec: ModelSpec, views: list[_RecordView], order: Any) -> list[_RecordView]:
        for field, descending, nulls_first in reversed(_parse_order(spec, order or spec.order)):
            nulls_last = not nulls_first if nulls_first is not None else not descending
            null_rank = -1 if nulls_last == descending else 1
            views.sort(key=self._sort_key(field, null_rank), reverse=descending)
        return views

    def _sort_key(self, field: FieldSpec, null_rank: int) -> Callable[[_RecordView], tuple[Any, ...]]:
        def key(view: _RecordView) -> tuple[Any, ...]:
            value = view[field.name]
            if value is None or (value is False and field.type != "boolean"):
                return (null_rank,)
            if field.type == "many2one" and field.relation:
                related = self.domain_record(field.relation, value)
                return (0, related["display_name"] or "" if related is not None else "")
            return (0, value)
        return key

    def read(self, model: str, ids: Any, fields: Any = None, *, load: Any = "_classic_read") -> list[Row]:
        with self.lock:
            spec = self.spec(model)
            names = _requested_fields(spec, fields)
            table = self._tables[model]
            return [self._read_row(spec, table[rid], names, load) for rid in _normalize_ids(ids) if rid in table]

    def _read_row(self, spec: ModelSpec, row: Row, names: Sequence[str], load: Any) -> Row:
        view = _RecordView(self, spec, row)
        result: Row = {"id": row["id"]}
        for name in names:
            result[name] = self._read_value(spec.fields[name], view[name], load)
        return result

    def _read_value(self, field: FieldSpec, value: Any, load: Any) -> Any:
        if field.type == "many2one":
            if not _is_id(value) or not field.relation:
                return False
            if load != "_classic_read":
                return value
            related = self.domain_record(field.relation, value)
            return [value, related["display_name"] if related is not None else False]
        if field.type in _X2MANY:
            return list(value or ())
        return copy.deepcopy(value)

    def create(self, model: str, values: Any, *, uid: int) -> int | list[int]:
        with self.transaction():
            spec = self._writable_spec(model, "create")
            if isinstance(values, Mapping):
                return self._create_one(spec, values, uid)
            if not isinstance(values, list) or not all(isinstance(vals, Mapping) for vals in values):
                raise ValueError(f"create() expects a dict or a list of dicts, got {values!r}")
            return [self._create_one(spec, vals, uid) for vals in values]

    def _create_one(self, spec: ModelSpec, values: Mapping[str, Any], uid: int) -> int:
        stored, commands = self._convert_values(spec, values)
        row = self._blank_row(spec, uid)
        row.update(stored)
        for name, field_commands in commands.items():
            field = spec.fields[name]
            if field.type == "many2many":
                row[name] = self._apply_many2many(spec, field, [], field_commands, uid)
        now = self._now()
        row.update(id=self._new_id(spec.name), create_uid=uid, write_uid=uid, create_date=now, write_date=now)
        self._check_row(spec, row)
        self._insert(spec.name, row)
        for name, field_commands in commands.items():
            if spec.fields[name].type == "one2many":
                self._apply_one2many(spec, spec.fields[name], row["id"], field_commands, uid)
        self._pending_creates[spec.name] += 1
        return row["id"]

    def write(self, model: str, ids: Any, values: Any, *, uid: int) -> bool:
        with self.transaction():
            spec = self._writable_spec(model, "write")
            if not isinstance(values, Mapping):
                raise ValueError(f"write() expects a dict of values, got {values!r}")
            self._write_records(spec, self._existing_ids(spec, ids), values, uid)
            return True

    def _write_records(self, spec: ModelSpec, ids: list[int], values: Mapping[str, Any], uid: int) -> None:
        stored, commands = self._convert_values(spec, values)
        for record_id in ids:
            row = self._tables[spec.name][record_id]
            changes = dict(stored, write_uid=uid, write_date=self._now())
            for name, field_commands in commands.items():
                field = spec.fields[name]
                if field.type == "many2many":
                    changes[name] = self._apply_many2many(spec, field, row[name], field_commands, uid)
            self._check_row(spec, {**row, **changes})
            self._update(spec.name, record_id, changes)
            for name, field_commands in commands.items():
                if spec.fields[name].type == "one2many":
                    self._apply_one2many(spec, spec.fields[name], record_id, field_commands, uid)

    def unlink(self, model: str, ids: Any) -> bool:
        with self.transaction():
            spec = self._writable_spec(model, "delete")
            self._unlink_records(spec, self._existing_ids(spec, ids))
            return True

    def _unlink_records(self, spec: ModelSpec, ids: list[int]) -> None:
        for record_id in ids:
            if record_id in self._tables[spec.name]:
                self._delete(spec.name, record_id)
                self._detach_references(spec.name, record_id)

    def _detach_references(self, model: str, record_id: int) -> None:
        """Odoo's default ``ondelete='set null'`` for many2one, and dropped many2many links."""
        for other in MODELS.values():
            for field in other.fields.values():
                if field.relation != model or not _is_stored(field):
                    continue
                for row in self._tables[other.name].values():
                    if field.type == "many2one" and row[field.name] == record_id:
                        self._update(other.name, row["id"], {field.name: False})
                    elif field.type == "many2many" and record_id in row[field.name]:
                        self._update(other.name, row["id"],
                                     {field.name: [rid for rid in row[field.name] if rid != record_id]})

    def _existing_ids(self, spec: ModelSpec, ids: Any) -> list[int]:
        record_ids = list(dict.fromkeys(_normalize_ids(ids)))
        missing = [rid for rid in record_ids if rid not in self._tables[spec.name]]
        if missing:
            raise MissingError("Record does not exist or has been deleted.\n"
                               f"(Record: {spec.name}({', '.join(map(str, missing))},))")
        return record_ids

    def default_get(self, model: str, fields: Any, *, uid: int) -> Row:
        with self.lock:
            spec = self.spec(model)
            names = list(spec.fields) if not fields else [name for name in fields if isinstance(name, str)]
            return {name: self._default_value(spec.fields[name], uid) for name in names
                    if name in spec.fields and spec.fields[name].has_default}

    def name_search(self, model: str, name: Any, domain: Any, operator: Any, limit: Any, *,
                    active_test: bool = True) -> list[list[Any]]:
        with self.lock:
            spec = self.spec(model)
            full_domain = list(domain or [])
            if name:
                terms: list[Any] = [[field, operator, name] for field in spec.rec_names_search]
                joiner = "&" if operator in ("!=", "not like", "not ilike", "not in") else "|"
                full_domain += [joiner] * (len(terms) - 1) + terms
            ids = self._search_ids(spec, full_domain, limit=limit, active_test=active_test)
            table = self._tables[model]
            return [[rid, _RecordView(self, spec, table[rid])["display_name"]] for rid in ids]

    def fields_get(self, model: str, allfields: Any = None, attributes: Any = None) -> dict[str, dict[str, Any]]:
        spec = self.spec(model)
        names = [name for name in spec.fields if not allfields or name in allfields]
        described = {name: spec.fields[name].describe() for name in names}
        if attributes:
            described = {name: {key: value for key, value in info.items() if key in attributes}
                         for name, info in described.items()}
        return described

    # -- value conversion ------------------------------------------------------------------------
    def _convert_values(self, spec: ModelSpec, values: Mapping[str, Any]) -> tuple[Row, dict[str, Any]]:
        """Split ``values`` into stored values (converted) and x2many commands; drop readonly ones."""
        stored: Row = {}
        commands: dict[str, Any] = {}
        inverse_values: Row = {}
        for name, value in values.items():
            field = spec.field(name) if isinstance(name, str) else None
            if field is None:
                raise ValueError(f"Invalid field {name!r} on model {spec.name!r}")
            if field.inverse is not None:
                inverse_values.update(field.inverse(self._convert_scalar(spec, field, value)))
            elif field.readonly or field.compute is not None:
                continue
            elif field.type in _X2MANY:
                commands[name] = value
            else:
                stored[name] = self._convert_scalar(spec, field, value)
        for name, value in inverse_values.items():
            stored[name] = self._convert_scalar(spec, spec.fields[name], value)
        return stored, commands

    def _convert_scalar(self, spec: ModelSpec, field: FieldSpec, value: Any) -> Any:
        def wrong() -> ValueError:
            return ValueError(f"Wrong value for {spec.name}.{field.name}: {value!r}")

        if field.type == "boolean":
            return bool(value)
        if field.type in ("integer", "float", "monetary"):
            number_type = int if field.type == "integer" else float
            if value is None or value is False:
                return number_type(0)
            if isinstance(value, (list, tuple, dict)):
                raise wrong()
            try:
                return number_type(value)
            except (TypeError, ValueError) as exc:
                raise wrong() from exc
        if _is_empty(value):
            return False
        if field.type in ("char", "text"):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise wrong()
            return str(value)
        if field.type == "html":
            if not isinstance(value, str):
                raise wrong()
            return value if _MARKUP.search(value) else f"<p>{html_lib.escape(value, quote=False)}</p>"
        if field.type == "selection":
            if value not in {key for key, _ in field.selection or ()}:
                raise wrong()
            return value
        if field.type in ("date", "datetime"):
            return _convert_date(field.type, value, wrong)
        if field.type == "many2one":
            return self._convert_many2one(spec, field, value, wrong)
        raise wrong()

    def _convert_many2one(self, spec: ModelSpec, field: FieldSpec, value: Any,
                          wrong: Callable[[], ValueError]) -> int:
        if not _is_id(value):
            raise wrong()
        if value not in self._tables[field.relation or ""]:
            raise ValidationError(
                "The operation cannot be completed: a record this one refers to does not exist.\n\n"
                f"Model: {spec.description} ({spec.name})\nField: {field.string} ({field.name})\n"
                f"Missing record: {field.relation}({value},)")
        return value

    def _apply_many2many(self, spec: ModelSpec, field: FieldSpec, current: list[int], commands: Any,
                         uid: int) -> list[int]:
        comodel = MODELS[field.relation or ""]
        if commands is None or commands is False:
            return []
        if not isinstance(commands, list):
            raise ValueError(f"Wrong value for {spec.name}.{field.name}: {commands!r}")
        if all(_is_id(item) for item in commands):
            return self._known_ids(comodel, commands, spec, field)
        ids = list(current)
        for command in commands:
            code, record_id, payload = _unpack_command(spec, field, command)
            if code == 0:
                ids.append(self._create_one(self._writable_spec(comodel.name, "create"), payload, uid))
            elif code == 1:
                self._write_records(self._writable_spec(comodel.name, "write"),
                                    self._existing_ids(comodel, record_id), payload, uid)
            elif code == 2:
                self._unlink_records(self._writable_spec(comodel.name, "delete"),
                                     self._existing_ids(comodel, record_id))
                ids = [rid for rid in ids if rid != record_id]
            elif code == 3:
                ids = [rid for rid in ids if rid != record_id]
            elif code == 4:
                ids += [rid for rid in self._known_ids(comodel, [record_id], spec, field) if rid not in ids]
            elif code == 5:
                ids = []
            else:
                ids = self._known_ids(comodel, payload, spec, field)
        return ids

    def _apply_one2many(self, spec: ModelSpec, field: FieldSpec, parent_id: int, commands: Any, uid: int) -> None:
        comodel = self._writable_spec(field.relation or "", "write")
        inverse = field.relation_field or ""
        if commands is None or commands is False:
            commands = [[5]]
        if not isinstance(commands, list):
            raise ValueError(f"Wrong value for {spec.name}.{field.name}: {commands!r}")
        if all(_is_id(item) for item in commands):
            commands = [[6, 0, commands]]
        for command in commands:
            code, record_id, payload = _unpack_command(spec, field, command)
            if code == 0:
                self._create_one(comodel, {**payload, inverse: parent_id}, uid)
            elif code == 1:
                self._write_records(comodel, self._existing_ids(comodel, record_id), payload, uid)
            elif code == 2:
                self._unlink_records(comodel, self._existing_ids(comodel, record_id))
            elif code in (3, 4):
                self._write_records(comodel, self._existing_ids(comodel, record_id),
                                    {inverse: parent_id if code == 4 else False}, uid)
            else:
                keep = set(self._known_ids(comodel, payload, spec, field)) if code == 6 else set()
                current = self._all_children(comodel.name, inverse, parent_id)
                self._write_records(comodel, [rid for rid in current if rid not in keep], {inverse: False}, uid)
                self._write_records(comodel, [rid for rid in keep if rid not in current], {inverse: parent_id}, uid)

    def _known_ids(self, comodel: ModelSpec, ids: Any, spec: ModelSpec, field: FieldSpec) -> list[int]:
        if not isinstance(ids, list) or not all(_is_id(rid) for rid in ids):
            raise ValueError(f"Wrong value for {spec.name}.{field.name}: {ids!r}")
        unknown = [rid for rid in ids if rid not in self._tables[comodel.name]]
        if unknown:
            raise MissingError("Record does not exist or has been deleted.\n"
                               f"(Record: {comodel.name}({', '.join(map(str, unknown))},))")
        return list(dict.fromkeys(ids))

    # -- constraints -----------------------------------------------------------------------------
    def _check_row(self, spec: ModelSpec, row: Mapping[str, Any]) -> None:
        for field in spec.fields.values():
            if field.required and _is_stored(field) and _is_empty(row.get(field.name)):
                raise ValidationError(
                    "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n"
                    "- Delete: another model requires the record being deleted. If possible, archive it instead."
                    f"\n\nModel: {spec.description} ({spec.name})\nField: {field.string} ({field.name})")
        for holds, message in spec.constraints:
            if not holds(row):
                raise ValidationError(message)
        if spec.parent_name and self._creates_cycle(spec, row):
            raise ValidationError(f"You cannot create recursive {spec.description} hierarchies.")

    def _creates_cycle(self, spec: ModelSpec, row: Mapping[str, Any]) -> bool:
        parent_field = spec.parent_name or ""
        seen = {row["id"]}
        current = row.get(parent_field)
        while _is_id(current):
            if current in seen:
                return True
            seen.add(current)
            current = self._tables[spec.name][current].get(parent_field)
        return False

    # -- inspection for tests and the admin API --------------------------------------------------
    def records(self, model: str) -> list[Row]:
        with self.lock:
            self.spec(model)
            return [copy.deepcopy(row) for _, row in sorted(self._tables[model].items())]

    def count_call(self, model: str, method: str) -> None:
        with self.lock:
            self.calls[(model, method)] += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            calls: dict[str, dict[str, int]] = defaultdict(dict)
            for (model, method), count in sorted(self.calls.items()):
                calls[model][method] = count
            return {"calls": dict(calls), "creates": dict(sorted(self.creates.items())),
                    "records": {model: len(table) for model, table in self._tables.items()},
                    "login_failures": self.login_failures}

    def reset_counters(self) -> None:
        with self.lock:
            self.calls.clear()
            self.creates.clear()
            self.login_failures = 0

    def duplicates(self) -> dict[str, list[dict[str, Any]]]:
        """Groups of active records a correct sync never creates twice, keyed as the sync matches them."""
        with self.lock:
            partners = [row for row in self._tables["res.partner"].values() if row["active"]]
            leads = [row for row in self._tables["crm.lead"].values() if row["active"]]
            companies = _groups(partners, lambda row: row["company_registry"].strip().upper()
                                if row["is_company"] and row["company_registry"] else None)
            contacts = _groups(partners, lambda row: (row["parent_id"], row["email"].strip().lower())
                               if not row["is_company"] and row["parent_id"] and row["email"] else None)
            by_partner = _groups(leads, lambda row: row["partner_id"] or None)
            return {
                "companies_by_registry": [{"company_registry": key, "ids": ids} for key, ids in companies],
                "contacts_by_email": [{"parent_id": key[0], "email": key[1], "ids": ids} for key, ids in contacts],
                "leads_by_partner": [{"partner_id": key, "ids": ids} for key, ids in by_partner],
            }


# -- helpers -------------------------------------------------------------------------------------
def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == ""


def _is_stored(field: FieldSpec) -> bool:
    return field.compute is None and field.type != "one2many"


def _empty_value(field: FieldSpec) -> Any:
    if field.type in ("integer",):
        return 0
    if field.type in ("float", "monetary"):
        return 0.0
    if field.type == "many2many":
        return []
    return False


def _normalize_ids(ids: Any) -> list[int]:
    if ids is None or ids is False:
        return []
    if _is_id(ids):
        return [ids]
    if isinstance(ids, list) and all(_is_id(rid) for rid in ids):
        return list(ids)
    raise ValueError(f"Invalid record ids {ids!r}: expected an id or a list of ids")


def _non_negative_int(value: Any, name: str) -> int:
    if value is None or value is False:
        return 0
    if not _is_id(value) or value < 0:
        raise ValueError(f"Invalid {name} {value!r}: expected a non-negative integer")
    return value


def _requested_fields(spec: ModelSpec, fields: Any) -> list[str]:
    if not fields:
        return [name for name in spec.fields if name != "id"]
    if not isinstance(fields, list):
        raise ValueError(f"Invalid fields {fields!r}: expected a list of field names")
    for name in fields:
        if not isinstance(name, str) or name not in spec.fields:
            raise ValueError(f"Invalid field {name!r} on model {spec.name!r}")
    return [name for name in dict.fromkeys(fields) if name != "id"]


def _parse_order(spec: ModelSpec, order: Any) -> list[tuple[FieldSpec, bool, bool | None]]:
    def invalid() -> ValueError:
        return ValueError(f'Invalid "order" specified ({order}). A valid "order" specification is a '
                          "comma-separated list of valid field names (optionally followed by asc/desc "
                          "for the direction)")

    if not isinstance(order, str):
        raise invalid()
    terms: list[tuple[FieldSpec, bool, bool | None]] = []
    for part in order.split(","):
        match = _ORDER_TERM.match(part)
        field = spec.field(match["field"]) if match else None
        if match is None or field is None or field.type in _X2MANY:
            raise invalid()
        nulls = match["nulls"]
        terms.append((field, (match["direction"] or "asc").lower() == "desc",
                      None if nulls is None else nulls.lower() == "first"))
    return terms


def _convert_date(field_type: str, value: Any, wrong: Callable[[], ValueError]) -> str:
    """Odoo accepts ``YYYY-MM-DD`` for both types and a full timestamp for datetimes."""
    if not isinstance(value, str):
        raise wrong()
    for fmt in (DATETIME_FORMAT, DATE_FORMAT):
        try:
            parsed = dt.datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return parsed.strftime(DATE_FORMAT if field_type == "date" else DATETIME_FORMAT)
    raise wrong()


def _unpack_command(spec: ModelSpec, field: FieldSpec, command: Any) -> tuple[int, Any, Any]:
    """``(code, id, payload)`` of an x2many command such as ``[0, 0, {...}]`` or ``[6, 0, [ids]]``."""
    arity = {0: 3, 1: 3, 2: 2, 3: 2, 4: 2, 5: 1, 6: 3}
    if (not isinstance(command, (list, tuple)) or not command or command[0] not in arity
            or isinstance(command[0], bool) or len(command) < arity[command[0]]):
        raise ValueError(f"Wrong value for {spec.name}.{field.name}: {command!r}")
    code = command[0]
    record_id = command[1] if len(command) > 1 else None
    payload = command[2] if len(command) > 2 else None
    if code in (1, 2, 3, 4) and not _is_id(record_id):
        raise ValueError(f"Wrong value for {spec.name}.{field.name}: {command!r}")
    if code in (0, 1) and not isinstance(payload, Mapping):
        raise ValueError(f"Wrong value for {spec.name}.{field.name}: {command!r}")
    return code, record_id, payload


def _groups(rows: Sequence[Row], key_of: Callable[[Row], Any]) -> list[tuple[Any, list[int]]]:
    grouped: dict[Any, list[int]] = defaultdict(list)
    for row in rows:
        key = key_of(row)
        if key is not None:
            grouped[key].append(row["id"])
    return [(key, sorted(ids)) for key, ids in grouped.items() if len(ids) > 1]
