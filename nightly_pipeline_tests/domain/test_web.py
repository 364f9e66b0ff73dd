"""Registrable domains, role and free-mail addresses and phone numbers: the one pure definition."""
from __future__ import annotations

import pytest

from nightly_pipeline.domain.web import (
    classify_email,
    email_kind,
    has_public_suffix,
    is_free_mail,
    normalize_phone,
    registrable_domain,
)


@pytest.mark.parametrize(("value", "expected"), [
    ("https://www.Acme.com.sg/about", "acme.com.sg"),
    ("acme.com.sg", "acme.com.sg"),
    ("ACME.COM.SG/contact", "acme.com.sg"),
    ("//acme.com.sg/x", "acme.com.sg"),
    ("https://shop.acme.co.uk:8443/x", "acme.co.uk"),
    ("https://acme.com.sg.evil.com/", "evil.com"),
    ("acme.com.sg.", "acme.com.sg"),
    ("https://acme.com.sg/about us", "acme.com.sg"),
    ("https://bücher.de/", "xn--bcher-kva.de"),
    ("  acme.sg  ", "acme.sg"),
])
def test_registrable_domain_of_urls_hosts_and_bare_domains(value: str, expected: str) -> None:
    assert registrable_domain(value) == expected


@pytest.mark.parametrize("value", [
    "127.0.0.1",
    "http://127.0.0.1:8080/",
    "https://203.0.113.9/about",
    "10.0.0.5.",
    "[::1]",
    "http://[2606:4700::1111]:443/",
    "http://[::ffff:127.0.0.1]/",
])
def test_an_ip_host_has_no_registrable_domain(value: str) -> None:
    # An IP is never a company's web domain: two companies on one shared host are not one site.
    assert registrable_domain(value) is None


@pytest.mark.parametrize("value", [
    None, "", "   ", "localhost", "http://localhost:3000/", "intranet", "info@acme.com.sg",
    "http://user@acme.com.sg/", "acme com.sg", "my_site.acme.sg", "http://[::1/", "co.uk", "-acme-.sg",
])
def test_anything_else_without_a_registrable_domain_is_none(value: str | None) -> None:
    assert registrable_domain(value) is None


def test_public_suffixes_come_from_the_bundled_list() -> None:
    assert has_public_suffix("acme.com.sg") and has_public_suffix("acme.sg.")
    assert not has_public_suffix("localhost") and not has_public_suffix("acme.internal-only")


@pytest.mark.parametrize(("email", "kind"), [
    ("info@acme.sg", "role"), ("Sales@acme.sg", "role"), ("info.sg@acme.sg", "role"),
    ("customer.service@acme.sg", "role"), ("sales-apac@acme.sg", "role"),
    ("wei.ming@acme.sg", "personal"), ("salesman@acme.sg", "personal"), ("t.nguyen@acme.sg", "personal"),
])
def test_role_mailboxes_by_their_local_part(email: str, kind: str) -> None:
    assert email_kind(email) == kind


@pytest.mark.parametrize(("email", "free"), [
    ("owner@gmail.com", True), ("owner@singnet.com.sg", True), ("Owner@Yahoo.com.sg", True),
    ("owner@acme.sg", False), ("owner@gmail.com.evil.sg", False),
])
def test_free_mail_by_domain(email: str, free: bool) -> None:
    assert is_free_mail(email) is free


@pytest.mark.parametrize(("company_domain", "on_domain"), [
    ("acme.com.sg", True), ("https://www.acme.com.sg/", True), ("acme.com", False),
    ("acme.com.sg.evil.com", False), (None, False), ("http://127.0.0.1:8080/", False),
])
def test_an_address_is_on_the_company_domain_by_registrable_domain(company_domain: str | None,
                                                                   on_domain: bool) -> None:
    hit = classify_email("mei@mail.acme.com.sg", company_domain, "lusha")
    assert (hit.kind, hit.on_company_domain, hit.free_mail, hit.source) == ("personal", on_domain, False, "lusha")


@pytest.mark.parametrize(("raw", "expected"), [
    ("6123 4567", "+6561234567"), ("+65 9123 4567", "+6591234567"), ("+44 20 7946 0958", "+442079460958"),
    ("12345", None), ("not a number", None), ("", None),
])
def test_phones_become_e164_with_singapore_as_the_default_region(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def test_registrable_domain_answers_the_same_when_asked_again() -> None:
    # Cached by value: a repeated question, in any spelling, gets the answer its own value has.
    for _ in range(2):
        assert registrable_domain("https://www.Acme.com.sg/about") == "acme.com.sg"
        assert registrable_domain("https://WWW.ACME.COM.SG/") == "acme.com.sg"
        assert registrable_domain("info@acme.com.sg") is None
        assert registrable_domain(None) is None
        assert registrable_domain("localhost") is None
