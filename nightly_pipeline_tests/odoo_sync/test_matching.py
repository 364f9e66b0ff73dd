"""Which Odoo record each record is, and what may be written to it: plain data, no Odoo."""
from __future__ import annotations

from typing import Any

import pytest

from nightly_pipeline.odoo_sync.matching import (
    changes_to_fill,
    lead_token,
    match_companies,
    match_contacts,
    match_lead,
    same_value,
    unique_contacts,
)
from nightly_pipeline.odoo_sync.records import (
    Many2one,
    MergeDecision,
    OdooCompany,
    OdooContact,
    OdooLead,
    SyncContact,
    SyncRecord,
    many2one,
)


def record(uen: str, name: str = "ACME PTE. LTD.", domain: str | None = None, *,
           other_names: tuple[str, ...] = (), contacts: tuple[SyncContact, ...] = ()) -> SyncRecord:
    return SyncRecord(company_id=1, uen=uen, name=name, domain=domain, street=None, zip=None, contacts=contacts,
                      score=0.9, bucket="High", reasons=(), rationale="", other_names=other_names)


def company(partner_id: int, name: str | None = None, *, uen: str | None = None,
            website: str | None = None) -> OdooCompany:
    return OdooCompany(id=partner_id, name=name, company_registry=uen, website=website, street=None, zip=None,
                       country_id=None)


def contact(partner_id: int, parent_id: int | None, email: str | None) -> OdooContact:
    return OdooContact(id=partner_id, parent_id=parent_id, name=None, email=email, function=None, phone=None)


def lead(lead_id: int, name: str, partner_id: int | None, *, active: bool = True) -> OdooLead:
    return OdooLead(id=lead_id, name=name, partner_id=partner_id, active=active, description=None, priority=None,
                    contact_name=None, email_from=None, phone=None, function=None, website=None)


# -- companies -------------------------------------------------------------------------------------
def test_a_company_is_found_by_uen_before_domain_and_name() -> None:
    by_name = company(1, "ACME PTE. LTD.")
    by_domain = company(2, "Acme", website="https://www.acme.sg")
    by_uen = company(3, "Acme Holdings", uen=" 201900001k ")

    [(uen, match)] = match_companies([record("201900001K", domain="acme.sg")], [by_name, by_domain, by_uen]).items()

    assert (uen, match.company) == ("201900001K", by_uen)
    assert match.decisions == (MergeDecision(matched_by="uen", partner_id=3),)


def test_without_a_uen_match_the_domain_wins_over_the_name_and_the_name_is_exact() -> None:
    partners = [company(1, "ACME PTE. LTD."), company(2, "Acme", website="http://shop.acme.sg/x")]
    assert match_companies([record("1A", domain="acme.sg")], partners)["1A"].company == partners[1]
    assert match_companies([record("1A", domain="other.sg")], partners)["1A"].company == partners[0]
    assert match_companies([record("1A", name="Acme Pte Ltd")], partners)["1A"].company is None
    assert match_companies([record("1A", name="X", other_names=("Acme",))], partners)["1A"].company == partners[1]


def test_a_partner_with_another_uen_is_another_legal_entity_and_never_reused() -> None:
    other = company(7, "ACME PTE. LTD.", uen="199900001Z")

    match = match_companies([record("201900001K")], [other])["201900001K"]

    assert match.company is None
    assert match.decisions == (MergeDecision(decision="not reused: same name but another UEN", partner_id=7,
                                             odoo_uen="199900001Z"),)


def test_a_uen_match_is_never_taken_by_another_records_domain_or_name() -> None:
    # The second record's name is the first record's partner's name: the partner stays with its UEN.
    partner = company(5, "BETA PTE. LTD.", uen="1A")
    matches = match_companies([record("2B", name="BETA PTE. LTD."), record("1A", name="ALPHA")], [partner])
    assert matches["1A"].company == partner and matches["2B"].company is None


def test_one_partner_goes_to_one_record_and_shared_uens_use_the_oldest() -> None:
    shared = [company(9, "A", uen="1A"), company(4, "A", uen="1A")]
    same_name = [record("2B", name="TWIN"), record("3C", name="TWIN")]

    matches = match_companies([record("1A"), *same_name], [*shared, company(6, "TWIN")])

    assert matches["1A"].company == shared[1]
    assert MergeDecision(decision="several Odoo companies share this UEN; used the oldest",
                         partner_ids=(4, 9)) in matches["1A"].decisions
    assert (matches["2B"].company, matches["3C"].company) == (company(6, "TWIN"), None)


# -- contacts --------------------------------------------------------------------------------------
def test_contacts_match_by_parent_and_email_ignoring_case() -> None:
    wanted = (SyncContact("Mei@Acme.sg", "Tan Mei"), SyncContact("info@acme.sg"), SyncContact("MEI@acme.sg"))
    existing = [contact(11, 100, "mei@acme.sg"), contact(12, 200, "info@acme.sg"), contact(13, 100, " MEI@ACME.SG "),
                contact(14, 100, None)]

    matched = match_contacts(100, wanted, existing)

    assert [(ours.email, theirs.id) for ours, theirs in matched.found] == [("mei@acme.sg", 11)]
    assert [c.email for c in matched.missing] == ["info@acme.sg"]


def test_unique_contacts_lower_case_and_keep_the_first_of_each_address() -> None:
    contacts = (SyncContact("A@x.sg", "First"), SyncContact("a@X.sg", "Second"), SyncContact(" ", "Blank"))
    assert unique_contacts(contacts) == [SyncContact("a@x.sg", "First")]


# -- leads -----------------------------------------------------------------------------------------
def test_the_lead_token_names_tenant_and_uen() -> None:
    assert lead_token(3, " 201900001k") == "[np-3-201900001K]"


def test_a_lead_is_found_by_token_on_the_partner_first_then_active_then_oldest() -> None:
    token = lead_token(3, "1A")
    leads = [lead(1, f"ACME {token}", partner_id=99), lead(2, f"Acme {token}", partner_id=5, active=False),
             lead(3, f"acme {token.upper()}", partner_id=5), lead(4, "ACME [np-4-1A]", partner_id=5),
             lead(5, f"ACME {token}", partner_id=5)]

    matched = match_lead(token, 5, leads)

    assert matched.lead == leads[2]
    assert matched.decisions == (MergeDecision(decision="several leads carry this record's token; used one",
                                               lead_ids=(1, 2, 3, 5), lead_id=3),)
    assert match_lead(token, 5, [leads[1]]).lead == leads[1]
    assert match_lead(lead_token(3, "2B"), 5, leads).lead is None


# -- values ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "theirs", "ours", "same"), [
    ("website", "https://www.acme.sg/about", "https://acme.sg", True),
    ("website", "https://acme.com.sg", "https://acme.sg", False),
    ("country_id", Many2one(196, "Singapore"), 196, True),
    ("country_id", Many2one(1, "Andorra"), 196, False),
    ("company_registry", " 201900001k", "201900001K", True),
    ("street", "1  Anson   Road", "1 ANSON ROAD", True),
    ("function", "CEO", "CTO", False),
])
def test_values_compare_as_odoo_means_them(field: str, theirs: Any, ours: Any, same: bool) -> None:
    assert same_value(field, theirs, ours) is same


def test_only_empty_fields_are_filled_and_a_differing_value_is_kept_and_noted() -> None:
    current = OdooCompany(id=1, name="Acme", company_registry=None, website="https://www.acme.sg",
                          street="9 Beta Street", zip=None, country_id=Many2one(1, "Andorra"))
    desired = {"company_registry": "1A", "website": "https://acme.sg", "street": "1 ANSON ROAD", "zip": None,
               "country_id": 196}

    changes, decisions = changes_to_fill("1A", current, desired,
                                         ("company_registry", "website", "street", "zip", "country_id"))

    assert changes == {"company_registry": "1A"}
    assert decisions == [
        MergeDecision(decision="kept the value in Odoo", record="1A", field="street", odoo="9 Beta Street",
                      ours="1 ANSON ROAD"),
        MergeDecision(decision="kept the value in Odoo", record="1A", field="country_id", odoo="Andorra", ours=196)]


# -- records ---------------------------------------------------------------------------------------
def test_odoo_reads_become_typed_records_with_false_as_none() -> None:
    read = {"id": 4, "name": "Acme", "company_registry": False, "website": False, "street": "1 Anson Road",
            "zip": False, "country_id": [196, "Singapore"]}
    assert OdooCompany.from_read(read) == OdooCompany(4, "Acme", None, None, "1 Anson Road", None,
                                                      Many2one(196, "Singapore"))
    assert OdooContact.from_read({"id": 5, "parent_id": [4, "Acme"], "email": False}).parent_id == 4
    assert OdooLead.from_read({"id": 6, "name": "x", "partner_id": False, "active": False}).partner_id is None
    assert (many2one(False), many2one(7), many2one([7, "Acme"])) == (None, Many2one(7), Many2one(7, "Acme"))


def test_a_merge_decision_is_logged_with_only_its_fields() -> None:
    decision = MergeDecision(decision="several leads carry this record's token; used one", lead_ids=(3, 8),
                             lead_id=3)
    assert decision.to_dict() == {"decision": "several leads carry this record's token; used one",
                                  "lead_ids": [3, 8], "lead_id": 3}
