"""Models and fields of the Odoo sandbox: a small Odoo 17 database with contacts and CRM.

Field names, types, labels and default sort orders follow Odoo 17 (``res_partner.py``,
``crm_lead.py``). Only the fields the product can touch are modelled (vendor-apis.md §5.3), plus
the lookups a CRM sync needs (stages, tags, teams, countries, industries, users). ``crm.lead.ref``
is not a standard Odoo field; the sandbox has it so a sync can key leads by an external reference.

Computed fields (``display_name``, ``complete_name``, ``commercial_partner_id``, ``company_type``)
are derived from stored values on every access, so they never go stale.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

NO_DEFAULT: Any = object()
DefaultSource = Literal["uid", "first_record"]


class RowLookup(Protocol):
    def stored_row(self, model: str, record_id: Any) -> Mapping[str, Any] | None:
        """The stored values of a record, or ``None`` if it does not exist."""


Compute = Callable[[RowLookup, Mapping[str, Any]], Any]
Inverse = Callable[[Any], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    string: str
    relation: str | None = None
    relation_field: str | None = None  # the comodel's many2one behind a one2many
    required: bool = False
    readonly: bool = False
    store: bool = True
    selection: tuple[tuple[str, str], ...] | None = None
    default: Any = NO_DEFAULT
    default_from: DefaultSource | None = None
    compute: Compute | None = None
    inverse: Inverse | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT or self.default_from is not None

    def describe(self) -> dict[str, Any]:
        """The field as ``fields_get`` returns it."""
        description: dict[str, Any] = {
            "type": self.type, "string": self.string, "required": self.required,
            "readonly": self.readonly, "store": self.store, "searchable": True,
            "sortable": self.store and self.type not in ("one2many", "many2many"),
        }
        if self.relation:
            description["relation"] = self.relation
        if self.relation_field:
            description["relation_field"] = self.relation_field
        if self.selection is not None:
            description["selection"] = [list(option) for option in self.selection]
        return description


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    fields: Mapping[str, FieldSpec]
    order: str
    writable: bool
    rec_names_search: tuple[str, ...] = ("name",)
    parent_name: str | None = None
    # (predicate over the merged values, Odoo's message) checked on every create and write
    constraints: tuple[tuple[Callable[[Mapping[str, Any]], bool], str], ...] = ()

    def field(self, name: str) -> FieldSpec | None:
        return self.fields.get(name)


# -- field builders ------------------------------------------------------------------------------
def char(name: str, string: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "char", string, **kw)


def html(name: str, string: str) -> FieldSpec:
    return FieldSpec(name, "html", string)


def boolean(name: str, string: str, default: bool = False) -> FieldSpec:
    return FieldSpec(name, "boolean", string, default=default)


def many2one(name: str, string: str, relation: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, "many2one", string, relation=relation, **kw)


def many2many(name: str, string: str, relation: str) -> FieldSpec:
    return FieldSpec(name, "many2many", string, relation=relation)


def selection(name: str, string: str, options: tuple[tuple[str, str], ...], **kw: Any) -> FieldSpec:
    return FieldSpec(name, "selection", string, selection=options, **kw)


def computed(name: str, type_: str, string: str, compute: Compute, **kw: Any) -> FieldSpec:
    kw.setdefault("readonly", True)
    return FieldSpec(name, type_, string, compute=compute, **kw)


# -- computations --------------------------------------------------------------------------------
def _name_of(_: RowLookup, row: Mapping[str, Any]) -> Any:
    return row.get("name") or False


def _partner_commercial_row(lookup: RowLookup, row: Mapping[str, Any]) -> Mapping[str, Any]:
    seen: set[int] = set()
    while not row.get("is_company") and row.get("parent_id") and row["id"] not in seen:
        seen.add(row["id"])
        parent = lookup.stored_row("res.partner", row["parent_id"])
        if parent is None:
            break
        row = parent
    return row


def _partner_commercial_id(lookup: RowLookup, row: Mapping[str, Any]) -> Any:
    return _partner_commercial_row(lookup, row)["id"]


_PARTNER_TYPES = (("contact", "Contact"), ("invoice", "Invoice Address"),
                  ("delivery", "Delivery Address"), ("other", "Other Address"))


def _partner_complete_name(lookup: RowLookup, row: Mapping[str, Any]) -> Any:
    """Odoo's ``_get_complete_name``: a company's contact reads "Company, Name"."""
    name = row.get("name") or ""
    parent = lookup.stored_row("res.partner", row["parent_id"]) if row.get("parent_id") else None
    if parent is None or row.get("is_company"):
        return name or False
    if not name and row.get("type") != "contact":
        name = dict(_PARTNER_TYPES).get(row.get("type") or "", "")
    company = _partner_commercial_row(lookup, parent)
    return f"{company.get('name') or parent.get('name') or ''}, {name}"


def _partner_company_type(_: RowLookup, row: Mapping[str, Any]) -> str:
    return "company" if row.get("is_company") else "person"


def _state_display_name(lookup: RowLookup, row: Mapping[str, Any]) -> Any:
    country = lookup.stored_row("res.country", row["country_id"]) if row.get("country_id") else None
    return f"{row.get('name')} ({country['code']})" if country else row.get("name") or False


# -- models --------------------------------------------------------------------------------------
def _common_fields(display_name: Compute) -> list[FieldSpec]:
    return [
        FieldSpec("id", "integer", "ID", readonly=True),
        computed("display_name", "char", "Display Name", display_name, store=False),
        many2one("create_uid", "Created by", "res.users", readonly=True),
        FieldSpec("create_date", "datetime", "Created on", readonly=True),
        many2one("write_uid", "Last Updated by", "res.users", readonly=True),
        FieldSpec("write_date", "datetime", "Last Updated on", readonly=True),
    ]


def _address_fields() -> list[FieldSpec]:
    return [char("street", "Street"), char("street2", "Street2"), char("zip", "Zip"), char("city", "City"),
            many2one("state_id", "State", "res.country.state"), many2one("country_id", "Country", "res.country")]


def _model(name: str, description: str, fields: list[FieldSpec], *, order: str, writable: bool = False,
           display_name: Compute = _name_of, **kw: Any) -> ModelSpec:
    all_fields = _common_fields(display_name) + fields
    return ModelSpec(name, description, {spec.name: spec for spec in all_fields}, order, writable, **kw)


def _contact_has_name(values: Mapping[str, Any]) -> bool:
    return values.get("type") != "contact" or bool(values.get("name"))


RES_PARTNER = _model("res.partner", "Contact", [
    char("name", "Name"),
    computed("complete_name", "char", "Complete Name", _partner_complete_name),
    boolean("is_company", "Is a Company"),
    computed("company_type", "selection", "Company Type", _partner_company_type, store=False, readonly=False,
             selection=(("person", "Individual"), ("company", "Company")),
             inverse=lambda value: {"is_company": value == "company"}),
    many2one("parent_id", "Related Company", "res.partner"),
    FieldSpec("child_ids", "one2many", "Contact", relation="res.partner", relation_field="parent_id"),
    selection("type", "Address Type", _PARTNER_TYPES, default="contact"),
    char("email", "Email"), char("phone", "Phone"), char("mobile", "Mobile"), char("website", "Website Link"),
    char("function", "Job Position"), char("ref", "Reference"), char("vat", "Tax ID"),
    char("company_registry", "Company ID"),
    html("comment", "Notes"),
    *_address_fields(),
    many2one("industry_id", "Industry", "res.partner.industry"),
    many2many("category_id", "Tags", "res.partner.category"),
    boolean("active", "Active", default=True),
    computed("commercial_partner_id", "many2one", "Commercial Entity", _partner_commercial_id,
             relation="res.partner"),
], order="complete_name ASC, id DESC", writable=True, display_name=_partner_complete_name,
    rec_names_search=("complete_name", "email", "ref", "vat", "company_registry"), parent_name="parent_id",
    constraints=((_contact_has_name, "The operation cannot be completed: Contacts require a name"),))

CRM_LEAD = _model("crm.lead", "Lead/Opportunity", [
    char("name", "Opportunity", required=True),
    selection("type", "Type", (("lead", "Lead"), ("opportunity", "Opportunity")), required=True,
              default="opportunity"),
    many2one("partner_id", "Customer", "res.partner"),
    char("partner_name", "Company Name"), char("contact_name", "Contact Name"), char("email_from", "Email"),
    char("phone", "Phone"), char("mobile", "Mobile"), char("function", "Job Position"), char("website", "Website"),
    char("ref", "Reference"),
    many2one("stage_id", "Stage", "crm.stage", default_from="first_record"),
    many2one("user_id", "Salesperson", "res.users", default_from="uid"),
    many2one("team_id", "Sales Team", "crm.team", default_from="first_record"),
    FieldSpec("expected_revenue", "monetary", "Expected Revenue", default=0.0),
    FieldSpec("probability", "float", "Probability", default=0.0),
    html("description", "Notes"),
    selection("priority", "Priority", (("0", "Low"), ("1", "Medium"), ("2", "High"), ("3", "Very High")),
              default="0"),
    many2many("tag_ids", "Tags", "crm.tag"),
    boolean("active", "Active", default=True),
    FieldSpec("date_deadline", "date", "Expected Closing"),
    many2one("lost_reason_id", "Lost Reason", "crm.lost.reason"),
    *_address_fields(),
], order="priority desc, id desc", writable=True)

LOOKUP_MODELS = (
    _model("res.users", "User", [
        char("name", "Name", required=True), char("login", "Login", required=True),
        many2one("partner_id", "Related Partner", "res.partner", required=True), boolean("active", "Active", True),
    ], order="name, login", rec_names_search=("name", "login")),
    _model("res.country", "Country", [char("name", "Country Name", required=True), char("code", "Country Code")],
           order="name"),
    _model("res.country.state", "Country state", [
        char("name", "State Name", required=True), char("code", "State Code", required=True),
        many2one("country_id", "Country", "res.country", required=True),
    ], order="code", display_name=_state_display_name),
    _model("res.partner.industry", "Industry", [
        char("name", "Name"), char("full_name", "Full Name"), boolean("active", "Active", True),
    ], order="name"),
    _model("res.partner.category", "Partner Tags", [
        char("name", "Tag Name", required=True), FieldSpec("color", "integer", "Color", default=0),
        many2one("parent_id", "Parent Category", "res.partner.category"), boolean("active", "Active", True),
    ], order="name", writable=True, parent_name="parent_id"),
    _model("crm.stage", "CRM Stages", [
        char("name", "Stage Name", required=True), FieldSpec("sequence", "integer", "Sequence", default=1),
        boolean("is_won", "Is Won Stage?"), boolean("fold", "Folded in Pipeline"),
    ], order="sequence, name, id"),
    _model("crm.tag", "CRM Tag", [char("name", "Tag Name", required=True),
                                   FieldSpec("color", "integer", "Color", default=0)],
           order="name", writable=True),
    _model("crm.team", "Sales Team", [
        char("name", "Sales Team", required=True), FieldSpec("sequence", "integer", "Sequence", default=10),
        boolean("active", "Active", True),
    ], order="sequence ASC, id DESC"),
    _model("crm.lost.reason", "Opp. Lost Reason", [char("name", "Description", required=True),
                                                     boolean("active", "Active", True)], order="name"),
    _model("ir.model", "Models", [char("name", "Model Description", required=True),
                                  char("model", "Model", required=True)], order="model"),
)

MODELS: Mapping[str, ModelSpec] = {spec.name: spec for spec in (RES_PARTNER, CRM_LEAD, *LOOKUP_MODELS)}

# -- seed data -----------------------------------------------------------------------------------
_COUNTRIES = (("Australia", "AU"), ("China", "CN"), ("Hong Kong", "HK"), ("India", "IN"), ("Indonesia", "ID"),
              ("Japan", "JP"), ("Malaysia", "MY"), ("Philippines", "PH"), ("Singapore", "SG"),
              ("Thailand", "TH"), ("United Kingdom", "GB"), ("United States", "US"), ("Vietnam", "VN"))
_MALAYSIAN_STATES = (("Johor", "JHR"), ("Kuala Lumpur", "KUL"), ("Penang", "PNG"), ("Selangor", "SGR"))
_INDUSTRIES = ("Administrative", "Agriculture", "Construction", "Education", "Energy supply", "Entertainment",
               "Finance/Insurance", "Food", "Health/Social", "IT/Communication", "Manufacturing", "Mining",
               "Other Services", "Public Administration", "Real Estate", "Scientific", "Transportation/Logistics",
               "Water supply", "Wholesale/Retail")
_STAGES = (("New", 1, False), ("Qualified", 2, False), ("Proposition", 3, False), ("Won", 70, True))
_LOST_REASONS = ("Not enough stock", "Too expensive", "We don't have people/skills")
COMPANY_PARTNER_NAME = "YourCompany"


def lookup_seed_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows every new database starts with, ids included (users and their partners excepted)."""
    countries = [{"id": i, "name": name, "code": code} for i, (name, code) in enumerate(_COUNTRIES, start=1)]
    country_id = {row["code"]: row["id"] for row in countries}
    return {
        "res.country": countries,
        "res.country.state": [{"id": i, "name": name, "code": code, "country_id": country_id["MY"]}
                              for i, (name, code) in enumerate(_MALAYSIAN_STATES, start=1)],
        "res.partner.industry": [{"id": i, "name": name, "full_name": name, "active": True}
                                 for i, name in enumerate(_INDUSTRIES, start=1)],
        "crm.stage": [{"id": i, "name": name, "sequence": sequence, "is_won": won, "fold": False}
                      for i, (name, sequence, won) in enumerate(_STAGES, start=1)],
        "crm.team": [{"id": 1, "name": "Sales", "sequence": 10, "active": True}],
        "crm.lost.reason": [{"id": i, "name": name, "active": True} for i, name in enumerate(_LOST_REASONS, start=1)],
        "ir.model": [{"id": i, "name": spec.description, "model": spec.name}
                     for i, spec in enumerate(MODELS.values(), start=1)],
        "res.partner": [{"id": 1, "name": COMPANY_PARTNER_NAME, "is_company": True, "type": "contact",
                         "active": True, "country_id": country_id["SG"]}],
    }
