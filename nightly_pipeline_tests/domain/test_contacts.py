"""Contacts as pure data: seniority of titles, the primary choice, the ZeroBounce status policy, and
contacts read from stored crawl signals."""
from __future__ import annotations

import datetime as dt

import pytest

from nightly_pipeline.crawl.signals import merge_site_signals, page_signals
from nightly_pipeline.domain.contacts import (
    Contact,
    Deliverability,
    VerificationPolicy,
    batches_by_key,
    choose_primary,
    classify_title,
    contact_from_lusha,
    contacts_from_signals,
    fair_order,
    merge_contacts,
    name_from_local_part,
    preferred_title_rank,
)

PREFERRED = ["CEO", "Founder", "Managing Director", "CTO", "Head of Sales"]


def person(email: str, title: str | None = None, *, kind: str = "personal", on_domain: bool = True) -> Contact:
    return Contact(company_id=1, email=email, email_kind=kind, on_company_domain=on_domain, title=title,
                   seniority=classify_title(title))


@pytest.mark.parametrize(("title", "seniority"), [
    ("CEO", 6), ("Chief Executive Officer", 6), ("Founder & CEO", 6), ("Co-Founder", 6), ("Managing Director", 6),
    ("Owner", 6), ("Vice President, Sales", 5), ("Senior Vice President", 5), ("Head of Sales", 5),
    ("General Manager", 5), ("Sales Director", 4), ("Director of Engineering", 4), ("Sales Manager", 3),
    ("Team Lead", 3), ("Senior Software Engineer", 2), ("Account Executive", 1), ("Executive Assistant to the CEO", 1),
    ("Intern", 1), ("", 0), (None, 0),
])
def test_title_seniority(title: str | None, seniority: int) -> None:
    assert classify_title(title) == seniority


def test_preferred_titles_match_whole_words_in_their_order() -> None:
    assert preferred_title_rank("Founder & CEO", PREFERRED) == 0
    assert preferred_title_rank("Co-Founder", PREFERRED) == 1
    assert preferred_title_rank("Director", PREFERRED) == len(PREFERRED)
    assert preferred_title_rank("Procurement Officer", ["CEO"]) == 1, "no match inside another word"


@pytest.mark.parametrize(("status", "policy"), [
    ("valid", Deliverability.DELIVERABLE),
    ("catch-all", Deliverability.RISKY),
    ("unknown", Deliverability.RISKY),
    ("invalid", Deliverability.SUPPRESSED),
    ("spamtrap", Deliverability.SUPPRESSED),
    ("abuse", Deliverability.SUPPRESSED),
    ("do_not_mail", Deliverability.SUPPRESSED),
    ("Catch_All", Deliverability.RISKY),
    ("a-status-added-later", Deliverability.RISKY),
])
def test_status_policy_table(status: str, policy: Deliverability) -> None:
    assert VerificationPolicy().deliverability(status) is policy


def test_unknown_verdicts_expire_quickly_and_ttls_are_configurable() -> None:
    default = VerificationPolicy()
    assert default.ttl("unknown") == dt.timedelta(days=1)
    assert default.ttl("valid") == default.ttl("invalid") == dt.timedelta(days=90)
    custom = VerificationPolicy(default_ttl=dt.timedelta(days=30),
                                ttl_by_status={"unknown": dt.timedelta(hours=6), "catch-all": dt.timedelta(days=7)})
    assert custom.ttl("unknown") == dt.timedelta(hours=6)
    assert custom.ttl("catch-all") == dt.timedelta(days=7)
    assert custom.ttl("valid") == dt.timedelta(days=30)


def test_primary_follows_preferred_title_order_before_seniority() -> None:
    contacts = [person("cfo@acme.sg", "CFO"), person("hos@acme.sg", "Head of Sales"), person("cto@acme.sg", "CTO")]
    assert choose_primary(contacts, PREFERRED, {}).email == "cto@acme.sg"
    assert choose_primary(contacts, ["Head of Sales", "CTO"], {}).email == "hos@acme.sg"


def test_primary_falls_back_to_seniority_then_deliverability() -> None:
    contacts = [person("ops@acme.sg", "Operations Manager"), person("a.tan@acme.sg", "Sales Director"),
                person("b.lim@acme.sg", "Finance Director")]
    assert choose_primary(contacts, PREFERRED, {}).email == "a.tan@acme.sg"
    verdicts = {"a.tan@acme.sg": "risky", "b.lim@acme.sg": Deliverability.DELIVERABLE}
    assert choose_primary(contacts, PREFERRED, verdicts).email == "b.lim@acme.sg"


def test_suppressed_addresses_are_never_primary() -> None:
    ceo, info = person("ceo@acme.sg", "CEO"), person("info@acme.sg", kind="role")
    assert choose_primary([ceo, info], PREFERRED, {"ceo@acme.sg": "suppressed"}) == info
    assert choose_primary([ceo, info], PREFERRED, {"ceo@acme.sg": "suppressed", "info@acme.sg": "suppressed"}) is None
    assert choose_primary([], PREFERRED, {}) is None


def test_a_person_beats_a_shared_mailbox_and_the_company_domain_beats_free_mail() -> None:
    info = person("info@acme.sg", kind="role")
    owner = person("weiming.tan@gmail.com", on_domain=False)
    staff = person("jia.hui@acme.sg")
    assert choose_primary([info, owner], PREFERRED, {}) == owner
    assert choose_primary([info, owner, staff], PREFERRED, {}) == staff


def test_an_outsiders_personal_address_ranks_below_the_companys_shared_mailbox() -> None:
    info = person("info@acme.sg", kind="role")
    agency = person("john.lee@webagency.sg", on_domain=False)
    assert not agency.is_company_person and person("kelvin.lim@gmail.com", on_domain=False).is_company_person
    assert choose_primary([agency, info], PREFERRED, {}) == info


def test_names_are_proposed_only_from_first_last_local_parts() -> None:
    assert name_from_local_part("wei.ming@acme.sg") == "Wei Ming"
    assert name_from_local_part("priya_nair@acme.sg") == "Priya Nair"
    assert name_from_local_part("jtan@acme.sg") is None
    assert name_from_local_part("info.sg@acme.sg") is None
    assert name_from_local_part("sales.team@acme.sg") is None


def stored_signals(pages: list[tuple[str, str]], domain: str) -> dict:
    """Signals as the crawl stage stores them: ``SiteSignals.to_dict()`` without the corpus."""
    signals = merge_site_signals([page_signals(url, html, {}, domain) for url, html in pages]).to_dict()
    signals.pop("corpus")
    signals["domain"] = {"value": domain, "source": "acra", "confidence": 1.0}
    return signals


def test_contacts_from_stored_signals_classify_every_address() -> None:
    home = ('<html><body><p>Call <a href="tel:+6562345678">6234 5678</a> or write to '
            '<a href="mailto:Info@Acme.com.sg">Info@Acme.com.sg</a>.</p>'
            '<p>Site by studio@webagency.sg</p></body></html>')
    team = ('<html><body><div class="person"><h3>Wei Ming Tan</h3><p>Founder</p>'
            '<p>wei.ming@acme.com.sg</p></div><p>Owner: kelvin.lim@gmail.com, INFO@acme.com.sg</p></body></html>')
    signals = stored_signals([("https://acme.com.sg/", home), ("https://acme.com.sg/team", team)], "acme.com.sg")

    contacts = {c.email: c for c in contacts_from_signals({"company_id": 7, "website_domain": None}, signals)}

    assert set(contacts) == {"info@acme.com.sg", "studio@webagency.sg", "wei.ming@acme.com.sg",
                             "kelvin.lim@gmail.com"}
    info = contacts["info@acme.com.sg"]
    assert (info.email_kind, info.on_company_domain, info.phone, info.full_name) == ("role", True, "+6562345678", None)
    founder = contacts["wei.ming@acme.com.sg"]
    # The team page names the owner of the address: the name and title come from it, not the mailbox.
    assert (founder.email_kind, founder.on_company_domain, founder.full_name, founder.title, founder.phone) == (
        "personal", True, "Wei Ming Tan", "Founder", None)
    assert founder.name_source == "site_page" and founder.source == "site" and founder.seniority == 6
    assert founder.vendor_ref["site"]["person"] == {"page": "https://acme.com.sg/team", "markup": "card"}
    owner = contacts["kelvin.lim@gmail.com"]
    assert (owner.on_company_domain, owner.vendor_ref["site"]["free_mail"]) == (False, True)
    assert contacts["studio@webagency.sg"].on_company_domain is False
    assert all(c.company_id == 7 for c in contacts.values())


def test_contacts_from_signals_use_the_registry_domain_when_the_crawl_stored_none() -> None:
    signals = {"emails": [{"email": "sales@pearl.sg", "source": "mailto"}], "phones": []}
    [contact] = contacts_from_signals({"company_id": 3, "website_domain": "https://www.pearl.sg"}, signals)
    assert (contact.email_kind, contact.on_company_domain, contact.phone) == ("role", True, None)


LUSHA_PERSON = {"contact_id": "c-1", "request_id": "r-1", "full_name": "Wei Ming Tan", "first_name": "Wei Ming",
                "last_name": "Tan", "job_title": "Founder & CEO", "seniority": "C-Suite",
                "emails": ["Wei.Ming@acme.com.sg"], "phones": ["+65 9123 4567"],
                "linkedin": "https://www.linkedin.com/in/wei-ming-tan-1"}


def test_lusha_people_become_contacts_with_their_vendor_ids() -> None:
    contact = contact_from_lusha(7, "acme.com.sg", LUSHA_PERSON)
    assert contact is not None
    assert (contact.email, contact.full_name, contact.title, contact.seniority, contact.phone) == (
        "wei.ming@acme.com.sg", "Wei Ming Tan", "Founder & CEO", 6, "+6591234567")
    assert contact.vendor_ref == {"lusha": {"contact_id": "c-1", "request_id": "r-1"}}
    assert contact_from_lusha(7, "acme.com.sg", {**LUSHA_PERSON, "emails": []}) is None


def test_merging_site_and_lusha_keeps_one_contact_with_both_sources() -> None:
    signals = {"emails": [{"email": "wei.ming@acme.com.sg", "kind": "personal", "on_company_domain": True,
                           "free_mail": False, "source": "text"}], "phones": ["+6562345678"]}
    [site] = contacts_from_signals({"company_id": 7, "website_domain": "acme.com.sg"}, signals)
    lusha = contact_from_lusha(7, "acme.com.sg", LUSHA_PERSON)

    for merged in (merge_contacts(site, lusha), merge_contacts(lusha, site)):
        assert merged.source == "site+lusha"
        assert (merged.full_name, merged.title, merged.seniority) == ("Wei Ming Tan", "Founder & CEO", 6)
        assert set(merged.vendor_ref) == {"site", "lusha"}
    assert merge_contacts(merge_contacts(site, lusha), site) == merge_contacts(site, lusha)
    with pytest.raises(ValueError):
        merge_contacts(site, person("other@acme.com.sg"))


def test_fair_order_takes_every_groups_first_item_before_any_groups_second() -> None:
    assert fair_order([["a1", "a2", "a3"], [], ["c1"], ["d1", "d2"]]) == ["a1", "c1", "d1", "a2", "d2", "a3"]
    assert fair_order([]) == []


def test_batches_by_key_keep_each_keys_items_together_in_batches_of_at_most_size() -> None:
    items = [("r1", 1), ("r2", 2), ("r1", 3), ("r1", 4), ("r3", 5), ("r2", 6)]
    assert batches_by_key(items, 2) == [("r1", [1, 3]), ("r1", [4]), ("r2", [2, 6]), ("r3", [5])]
    assert batches_by_key([], 100) == []
    with pytest.raises(ValueError):
        batches_by_key(items, 0)
