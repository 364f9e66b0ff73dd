"""Signal extraction from fetched pages: emails, phones, tech, JSON-LD, text, encodings."""
from __future__ import annotations

import json
import re

import httpx
import pytest
from multidict import CIMultiDict

from nightly_pipeline.crawl.pages import MAX_PARSE_CHARS
from nightly_pipeline.crawl.signals import (
    CareersSignals,
    EmailHit,
    PageMeta,
    careers_signals,
    decode_html,
    extract_emails,
    extract_jsonld_organization,
    extract_page_meta,
    extract_phones,
    extract_social_links,
    extract_tech,
    has_case_studies,
    has_pricing,
    main_text,
    merge_site_signals,
    page_signals,
)
from nightly_pipeline.crawl.signals.emails import cloudflare_decode
from nightly_pipeline.crawl.signals.tech import TECH_CATEGORIES, load_fingerprints

COMPANY = "acme.com.sg"


def cf_encode(email: str, key: int = 0x5A) -> str:
    """Cloudflare's email protection, the inverse of the decoder under test."""
    return f"{key:02x}" + "".join(f"{ord(char) ^ key:02x}" for char in email)


def hit(email: str, kind: str, on_company_domain: bool, source: str, free_mail: bool = False) -> EmailHit:
    return EmailHit(email=email, kind=kind, on_company_domain=on_company_domain, free_mail=free_mail, source=source)


# --- emails -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param("<p>Write to Jane.Tan@Acme.com.sg today.</p>",
                     [hit("jane.tan@acme.com.sg", "personal", True, "text")], id="plain"),
        pytest.param('<a href="mailto:sales@acme.com.sg?subject=Quote%20request&body=Hi">Sales</a>',
                     [hit("sales@acme.com.sg", "role", True, "mailto")], id="mailto-query"),
        pytest.param('<a href="mailto:sales@acme.com.sg,%20ops@acme.com.sg;hr@acme.com.sg">Team</a>',
                     [hit("sales@acme.com.sg", "role", True, "mailto"),
                      hit("ops@acme.com.sg", "role", True, "mailto"),
                      hit("hr@acme.com.sg", "role", True, "mailto")], id="mailto-multiple"),
        pytest.param('<a href="MAILTO:info%40acme.com.sg">Mail</a>',
                     [hit("info@acme.com.sg", "role", True, "mailto")], id="mailto-encoded"),
        pytest.param("<p>info&#64;acme&#46;com.sg</p>",
                     [hit("info@acme.com.sg", "role", True, "text")], id="entity"),
        pytest.param("<p>info&commat;acme.com.sg</p>",
                     [hit("info@acme.com.sg", "role", True, "text")], id="named-entity"),
        pytest.param("<p>info [at] acme [dot] com [dot] sg</p>",
                     [hit("info@acme.com.sg", "role", True, "obfuscated")], id="brackets"),
        pytest.param("<p>enquiries (at) acme (dot) com (dot) sg</p>",
                     [hit("enquiries@acme.com.sg", "role", True, "obfuscated")], id="parentheses"),
        pytest.param("<p>hr{at}acme{dot}com{dot}sg</p>",
                     [hit("hr@acme.com.sg", "role", True, "obfuscated")], id="braces"),
        pytest.param("<p>mei.ling [AT] acme.com.sg</p>",
                     [hit("mei.ling@acme.com.sg", "personal", True, "obfuscated")], id="at-with-real-dots"),
        pytest.param("<p>support [at] acme dot com dot sg</p>",
                     [hit("support@acme.com.sg", "role", True, "obfuscated")], id="bare-dot-after-bracket-at"),
        pytest.param(f'<span class="__cf_email__" data-cfemail="{cf_encode("admin@acme.com.sg")}">[email&#160;protected]</span>',
                     [hit("admin@acme.com.sg", "role", True, "cloudflare")], id="cf-data-attribute"),
        pytest.param(f'<a href="/cdn-cgi/l/email-protection#{cf_encode("david.lim@acme.com.sg", 0x13)}">x</a>',
                     [hit("david.lim@acme.com.sg", "personal", True, "cloudflare")], id="cf-href"),
        pytest.param('<script type="application/ld+json">{"@type":"Organization","email":"mailto:Hello@acme.com.sg"}</script>',
                     [hit("hello@acme.com.sg", "role", True, "jsonld")], id="json-ld"),
        pytest.param('<script>var c = "\\u0063ontact\\u0040acme.com.sg";</script>',
                     [hit("contact@acme.com.sg", "role", True, "text")], id="js-escaped"),
        pytest.param("<p>acme.sg@gmail.com</p>",
                     [hit("acme.sg@gmail.com", "personal", False, "text", free_mail=True)], id="free-mail"),
        pytest.param("<p>info@acme.com.sg.evil.com</p>",
                     [hit("info@acme.com.sg.evil.com", "role", False, "text")], id="look-alike-suffix"),
        pytest.param("<p>info@acme-sg.com</p>",
                     [hit("info@acme-sg.com", "role", False, "text")], id="look-alike-hyphen"),
        pytest.param("<p>sales@mail.acme.com.sg</p>",
                     [hit("sales@mail.acme.com.sg", "role", True, "text")], id="company-subdomain"),
        # Cloudflare email protection, in every place the rewrite puts it.
        pytest.param(f'<div class="contact" data-cfemail="{cf_encode("ops@acme.com.sg")}">[email&#160;protected]</div>',
                     [hit("ops@acme.com.sg", "role", True, "cloudflare")], id="cf-attribute-on-any-element"),
        pytest.param(f'<SPAN CLASS="__cf_email__" DATA-CFEMAIL="{cf_encode("ops@acme.com.sg").upper()}">x</SPAN>',
                     [hit("ops@acme.com.sg", "role", True, "cloudflare")], id="cf-upper-case-markup"),
        pytest.param(f"<span data-cfemail='{cf_encode('ops@acme.com.sg', 0xA7)}'>x</span>",
                     [hit("ops@acme.com.sg", "role", True, "cloudflare")], id="cf-single-quotes-high-key"),
        pytest.param(f'<a href="https://www.acme.com.sg/cdn-cgi/l/email-protection#{cf_encode("jane.tan@acme.com.sg")}">'
                     "Email</a>", [hit("jane.tan@acme.com.sg", "personal", True, "cloudflare")], id="cf-href-absolute"),
        pytest.param(f'<a href="/cdn-cgi/l/email-protection#{cf_encode("jane.tan@acme.com.sg")}"><span class="__cf_email__"'
                     f' data-cfemail="{cf_encode("jane.tan@acme.com.sg", 0x21)}">[email&#160;protected]</span></a>',
                     [hit("jane.tan@acme.com.sg", "personal", True, "cloudflare")], id="cf-href-with-span-inside"),
        pytest.param(f'<footer><p><strong><a href="/cdn-cgi/l/email-protection#{cf_encode("hr@acme.com.sg", 0x9F)}">'
                     '<i class="icon"></i> <em>Mail</em></a></strong></p></footer>',
                     [hit("hr@acme.com.sg", "role", True, "cloudflare")], id="cf-href-nested-in-footer"),
        pytest.param(f'<a href="&#47;cdn-cgi&#47;l&#47;email-protection#{cf_encode("sales@acme.com.sg")}">x</a>',
                     [hit("sales@acme.com.sg", "role", True, "cloudflare")], id="cf-href-entity-encoded"),
        pytest.param(f'<header><a class="btn" href="/cdn-cgi/l/email-protection#{cf_encode("sales@acme.com.sg")}?s=1">'
                     "Sales</a></header>", [hit("sales@acme.com.sg", "role", True, "cloudflare")], id="cf-href-header"),
        # mailto: with every query parameter, encoded, with several recipients, outside links.
        pytest.param('<a href="mailto:sales@acme.com.sg?cc=ops@acme.com.sg&amp;subject=Hi">x</a>',
                     [hit("sales@acme.com.sg", "role", True, "mailto"),
                      hit("ops@acme.com.sg", "role", True, "mailto")], id="mailto-cc"),
        pytest.param('<a href="mailto:sales@acme.com.sg?subject=Quote&amp;bcc=ceo%40acme.com.sg">x</a>',
                     [hit("sales@acme.com.sg", "role", True, "mailto"),
                      hit("ceo@acme.com.sg", "personal", True, "mailto")], id="mailto-bcc-encoded"),
        pytest.param('<a href="mailto:?to=sales@acme.com.sg&amp;body=Hello%20there">x</a>',
                     [hit("sales@acme.com.sg", "role", True, "mailto")], id="mailto-to-parameter"),
        pytest.param('<a href="mailto:sales@acme.com.sg?subject=Quote&body=Hi%20there%2C%20call%20me">x</a>',
                     [hit("sales@acme.com.sg", "role", True, "mailto")], id="mailto-subject-and-body"),
        pytest.param('<a href="mailto:a.lim@acme.com.sg,b.tan@acme.com.sg?cc=c.ong@acme.com.sg,d.ng@acme.com.sg">x</a>',
                     [hit("a.lim@acme.com.sg", "personal", True, "mailto"),
                      hit("b.tan@acme.com.sg", "personal", True, "mailto"),
                      hit("c.ong@acme.com.sg", "personal", True, "mailto"),
                      hit("d.ng@acme.com.sg", "personal", True, "mailto")], id="mailto-several-to-and-cc"),
        pytest.param('<a href="mailto:Jane%20Tan%20%3Cjane.tan%40acme.com.sg%3E">Jane</a>',
                     [hit("jane.tan@acme.com.sg", "personal", True, "mailto")], id="mailto-display-name"),
        pytest.param('<a href="mailto:info%2540acme.com.sg">x</a>',
                     [hit("info@acme.com.sg", "role", True, "mailto")], id="mailto-double-encoded"),
        pytest.param("<button onclick=\"location.href='mailto:info%40acme.com.sg?subject=Hi'\">Mail us</button>",
                     [hit("info@acme.com.sg", "role", True, "mailto")], id="mailto-in-onclick"),
        pytest.param('<form action="mailto:orders@acme.com.sg?subject=Order" method="post"></form>',
                     [hit("orders@acme.com.sg", "role", True, "mailto")], id="mailto-form-action"),
        pytest.param('<div data-href="mailto:info%40acme.com.sg"></div>',
                     [hit("info@acme.com.sg", "role", True, "mailto")], id="mailto-data-attribute"),
        pytest.param('<a href=" MailTo: sales@acme.com.sg ">x</a>',
                     [hit("sales@acme.com.sg", "role", True, "mailto")], id="mailto-mixed-case-spaces"),
        pytest.param('<script type="application/ld+json">{"@type":"Organization","contactPoint":{"@type":"ContactPoint",'
                     '"email":"mailto:support%40acme.com.sg?subject=Help"}}</script>',
                     [hit("support@acme.com.sg", "role", True, "jsonld")], id="json-ld-mailto-encoded"),
        pytest.param('<header><a href="tel:+6561234567">Call</a> | enquiries@acme.com.sg</header>',
                     [hit("enquiries@acme.com.sg", "role", True, "text")], id="header-text"),
        pytest.param('<a title="Email info@acme.com.sg" href="#top">x</a>',
                     [hit("info@acme.com.sg", "role", True, "text")], id="in-an-attribute"),
    ],
)
def test_extract_emails_forms(html: str, expected: list[EmailHit]) -> None:
    assert extract_emails(html, COMPANY) == expected


@pytest.mark.parametrize(
    "html",
    [
        pytest.param('<img srcset="/img/logo@2x.png 2x, x@3x.webp 3x">', id="image-srcset"),
        pytest.param("<p>icon@2x.jpg</p>", id="image-name"),
        pytest.param('<script>Sentry.init({dsn:"https://a1b2c3d4e5f60718@o1.ingest.sentry.io/5"})</script>',
                     id="sentry-dsn"),
        pytest.param("<p>605a7baede844d278b89dc95ae0a9123@sentry-next.wixpress.com</p>", id="wixpress"),
        pytest.param("<p>abc@sentry.wixpress.com</p>", id="wixpress-short"),
        pytest.param("<p>3f9a2b7c81@acme.com.sg</p>", id="hex-local-part"),
        pytest.param("<p>noreply@acme.com.sg no-reply@acme.com.sg</p>", id="no-reply"),
        pytest.param("<p>MAILER-DAEMON@acme.com.sg</p>", id="mailer-daemon"),
        pytest.param("<p>1234+dependabot@users.noreply.github.com</p>", id="github-noreply"),
        pytest.param("<p>the.quick.brown.fox.jumps.over@acme.com.sg</p>", id="long-local-part"),
        pytest.param("<p>Meet us at acme dot com</p>", id="bare-at-prose"),
        pytest.param("<p>Drop by the office at Acme.com.sg to learn more</p>", id="bare-at-domain"),
        pytest.param("<p>your.email@example.com</p>", id="documentation-example"),
        pytest.param("<p>admin@localhost</p>", id="no-public-suffix"),
        pytest.param("<p>bundle@app.js</p>", id="script-name"),
        pytest.param("<p>info@acme..com</p>", id="invalid-syntax"),
        pytest.param(f'<span data-cfemail="{cf_encode("junk")}">x</span>', id="cf-not-an-address"),
        pytest.param('<span data-cfemail="zz">x</span>', id="cf-bad-hex"),
        pytest.param('<span data-cfemail="5a">x</span>', id="cf-key-only"),
        pytest.param('<span data-cfemail="5a1b2">x</span>', id="cf-odd-length"),
        pytest.param(f'<span data-cfemail="{cf_encode("a" + chr(1) + "b@acme.com.sg")}">x</span>', id="cf-control-characters"),
        pytest.param(f'<a href="/cdn-cgi/l/email-protection#{cf_encode("not an address")}">x</a>', id="cf-href-garbage"),
        pytest.param('<a href="mailto:?subject=Hello&amp;body=Write%20to%20us">x</a>', id="mailto-without-recipient"),
    ],
)
def test_extract_emails_skips_junk(html: str) -> None:
    assert extract_emails(html, COMPANY) == []


def test_extract_emails_keeps_richest_source_and_first_position() -> None:
    html = """<p>Mail SALES@acme.com.sg or info [at] acme.com.sg</p>
              <a href="mailto:sales@acme.com.sg">sales@acme.com.sg</a>
              <a href="mailto:info@acme.com.sg">info@acme.com.sg</a>"""
    assert extract_emails(html, COMPANY) == [
        hit("sales@acme.com.sg", "role", True, "mailto"),
        hit("info@acme.com.sg", "role", True, "mailto"),
    ]


@pytest.mark.parametrize(
    ("company_domain", "on_company_domain"),
    [
        ("acme.com.sg", True),
        ("https://www.acme.com.sg/", True),
        ("WWW.ACME.COM.SG", True),
        ("acme.com", False),
        ("acme.com.sg.evil.com", False),
        (None, False),
    ],
)
def test_extract_emails_company_domain_forms(company_domain: str | None, on_company_domain: bool) -> None:
    [found] = extract_emails("<p>info@acme.com.sg</p>", company_domain)
    assert found.on_company_domain is on_company_domain


@pytest.mark.parametrize(
    ("local_part", "kind"),
    [
        ("info", "role"), ("sales", "role"), ("hello", "role"), ("admin", "role"),
        ("contact", "role"), ("enquiries", "role"), ("support", "role"), ("hr", "role"),
        ("careers", "role"), ("marketing", "role"), ("office", "role"), ("accounts", "role"),
        ("info.sg", "role"), ("sales-apac", "role"), ("customer.service", "role"),
        ("john.tan", "personal"), ("t.nguyen", "personal"), ("salesman", "personal"),
        ("weiming", "personal"),
    ],
)
def test_extract_emails_role_or_personal(local_part: str, kind: str) -> None:
    [found] = extract_emails(f"<p>{local_part}@acme.com.sg</p>", COMPANY)
    assert found.kind == kind


def test_cloudflare_decode_matches_reference_vector() -> None:
    # Worked example: key 0x42; "a" ^ 0x42 = 0x23, "@" ^ 0x42 = 0x02, "b" ^ 0x42 = 0x20.
    assert cloudflare_decode("42230220") == "a@b"
    assert cloudflare_decode("4") is None


@pytest.mark.parametrize("key", [0x00, 0x13, 0x5A, 0x80, 0xFF])
def test_cloudflare_decode_reads_utf8_bytes_under_any_key(key: int) -> None:
    address = "ren\u00e9e.tan@acme.com.sg"
    encoded = f"{key:02x}" + "".join(f"{byte ^ key:02x}" for byte in address.encode())
    assert cloudflare_decode(encoded) == address
    assert cloudflare_decode(encoded.upper()) == address


@pytest.mark.parametrize("garbage", [
    pytest.param("", id="empty"), pytest.param("zz", id="not-hex"), pytest.param("5a", id="key-only"),
    pytest.param("5a1", id="odd-length"), pytest.param("5ag1", id="bad-digit"),
    pytest.param("5a" + "5a" * 4, id="nul-bytes"), pytest.param("5a" + "7a" * 3, id="spaces"),
    pytest.param("00ff", id="not-utf8"),
    pytest.param("41" + "".join(f"{b ^ 0x41:02x}" for b in b"a@b\n.sg"), id="newline"),
])
def test_cloudflare_decode_rejects_garbage(garbage: str) -> None:
    assert cloudflare_decode(garbage) is None


# --- phones -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Call +65 6123 4567 now", ["+6561234567"], id="international"),
        pytest.param("Tel: 6123-4567", ["+6561234567"], id="local-hyphen"),
        pytest.param("Mobile (65) 9123 4567", ["+6591234567"], id="country-code-in-parentheses"),
        pytest.param("WhatsApp +65-8123-4567", ["+6581234567"], id="mobile-hyphens"),
        pytest.param("Hotline 1800 123 4567", ["+6518001234567"], id="toll-free"),
        pytest.param("US office +1 415-555-2671", ["+14155552671"], id="foreign"),
        pytest.param("Tel/Fax: 6123 4567", ["+6561234567"], id="tel-fax-line"),
        pytest.param("Tel 6123 4567 | Fax: 6123 4568", ["+6561234567"], id="fax-left-out"),
        pytest.param("Call 6123 4567 or +65 6123 4567", ["+6561234567"], id="deduplicated"),
        pytest.param("1 Raffles Place, Singapore 048616", [], id="postal-code"),
        pytest.param("UEN 201912345K", [], id="uen-nine-digits"),
        pytest.param("UEN: 61234567K", [], id="uen-eight-digits"),
        pytest.param("Founded 31/12/2019, updated 2023-12-31", [], id="dates"),
        pytest.param("Invoice date 31122023", [], id="bare-date"),
        pytest.param("Order 6123456789012", [], id="long-digit-run"),
    ],
)
def test_extract_phones_from_text(text: str, expected: list[str]) -> None:
    assert extract_phones(text) == expected


def test_extract_phones_from_html_reads_tel_links_and_footer() -> None:
    html = """<html><body><header><a href="tel:+65%206789%200000">Call us</a></header>
      <main><p>Sales: 9123 4567</p><script>var v = "6111 2222";</script></main>
      <footer>Fax: 6789 0001 &middot; Tel: <a href="tel:67890000">6789 0000</a></footer></body></html>"""
    assert extract_phones(html) == ["+6567890000", "+6591234567"]


# --- social links -------------------------------------------------------------------------

def test_extract_social_links_prefers_profiles_and_skips_share_buttons() -> None:
    html = """
      <a href="https://www.linkedin.com/in/founder-name">Founder</a>
      <a href="https://www.linkedin.com/company/acme-sg/?trk=footer">LinkedIn</a>
      <a href="https://www.facebook.com/sharer/sharer.php?u=https://acme.com.sg">Share</a>
      <a href="https://facebook.com/acmesg/">Facebook</a>
      <a href="https://instagram.com/p/Cx1/">A post</a><a href="https://www.instagram.com/acme.sg">IG</a>
      <a href="https://twitter.com/intent/tweet?text=hi">Tweet</a><a href="https://x.com/acme_sg">X</a>
      <a href="https://www.youtube.com/watch?v=abc">Video</a><a href="https://www.youtube.com/@acmesg">YT</a>
      <a href="https://www.tiktok.com/@acme.sg?lang=en">TikTok</a>
      <a href="https://example.com/acme">Other</a>"""
    assert extract_social_links("https://acme.com.sg/", html) == {
        "linkedin": "https://www.linkedin.com/company/acme-sg",
        "facebook": "https://facebook.com/acmesg",
        "instagram": "https://www.instagram.com/acme.sg",
        "twitter": "https://x.com/acme_sg",
        "youtube": "https://www.youtube.com/@acmesg",
        "tiktok": "https://www.tiktok.com/@acme.sg",
    }


# --- tech ---------------------------------------------------------------------------------

def test_fingerprint_file_is_complete_and_compiles() -> None:
    fingerprints = load_fingerprints()
    names = {fingerprint.name for fingerprint in fingerprints}
    assert len(fingerprints) >= 40
    assert {fingerprint.category for fingerprint in fingerprints} == TECH_CATEGORIES
    for fingerprint in fingerprints:
        patterns = (fingerprint.headers, fingerprint.meta, fingerprint.script_src, fingerprint.cookies, fingerprint.html)
        assert any(patterns), fingerprint.name
        assert set(fingerprint.implies) <= names, fingerprint.name


@pytest.mark.parametrize(
    ("html", "headers", "name", "evidence"),
    [
        pytest.param("<p>x</p>", {"Server": "nginx/1.25.3"}, "Nginx", "header server: nginx/1.25.3", id="header"),
        pytest.param("<p>x</p>", {"CF-RAY": "8a1b-SIN"}, "Cloudflare", "header cf-ray: 8a1b-SIN", id="header-presence"),
        pytest.param("<p>x</p>", {"x-amz-cf-id": "abc"}, "AWS CloudFront", "header x-amz-cf-id: abc", id="cloudfront"),
        pytest.param("<p>x</p>", {"x-vercel-id": "sin1::abc"}, "Vercel", "header x-vercel-id: sin1::abc", id="vercel"),
        pytest.param('<meta name="generator" content="WordPress 6.5.2">', {}, "WordPress",
                     "meta generator: WordPress 6.5.2", id="meta-generator"),
        pytest.param('<meta name="Generator" content="Drupal 10 (https://www.drupal.org)">', {}, "Drupal",
                     "meta generator: Drupal 10 (https://www.drupal.org)", id="meta-case"),
        pytest.param('<script src="//js.hs-scripts.com/123.js" async></script>', {}, "HubSpot",
                     "script src: //js.hs-scripts.com/123.js", id="script-src"),
        pytest.param('<script src="https://embed.tawk.to/abc/default"></script>', {}, "Tawk.to",
                     "script src: https://embed.tawk.to/abc/default", id="live-chat"),
        pytest.param('<script src="https://js.stripe.com/v3/"></script>', {}, "Stripe",
                     "script src: https://js.stripe.com/v3/", id="payments"),
        pytest.param("<p>x</p>", {"Set-Cookie": "_shopify_y=abc; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT"},
                     "Shopify", "cookie _shopify_y", id="cookie"),
        pytest.param("<script>Shopify.theme = {id: 1};</script>", {}, "Shopify", "html: Shopify.theme =", id="html"),
        pytest.param('<div id="__next"></div><script id="__NEXT_DATA__" type="application/json">{}</script>', {},
                     "Next.js", "html: id=\"__NEXT_DATA__\"", id="next"),
        pytest.param('<script src="/wp-content/plugins/woocommerce/assets/js/frontend/cart.min.js"></script>', {},
                     "WordPress", "script src: /wp-content/plugins/woocommerce/assets/js/frontend/cart.min.js",
                     id="wordpress-path"),
    ],
)
def test_extract_tech_sources(html: str, headers: dict[str, str], name: str, evidence: str) -> None:
    found = {tech.name: tech for tech in extract_tech(html, headers)}
    assert found[name].evidence == evidence


def test_extract_tech_implies_and_categorises() -> None:
    html = '<body class="woocommerce-page"><script src="/_next/static/chunks/main.js"></script></body>'
    found = {tech.name: (tech.category, tech.evidence) for tech in extract_tech(html, {})}
    assert found["WooCommerce"][0] == "e-commerce"
    assert found["WordPress"] == ("cms", "implied by WooCommerce")
    assert found["React"] == ("js framework", "implied by Next.js")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(CIMultiDict([("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "__hstc=abc; Path=/")]), id="aiohttp"),
        pytest.param(httpx.Headers([("set-cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT"),
                                    ("set-cookie", "__hstc=abc; Path=/")]), id="httpx"),
    ],
)
def test_extract_tech_reads_repeated_set_cookie_headers(headers: object) -> None:
    assert [tech.name for tech in extract_tech("<p>x</p>", headers)] == ["HubSpot"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("html", "headers"),
    [
        pytest.param("<p>Plain page about reactors and angular momentum.</p>", {}, id="plain-words"),
        pytest.param("<p>x</p>", {"Server": "Apache-Coyote/1.1"}, id="tomcat-is-not-apache"),
        pytest.param("<p>x</p>", {"Set-Cookie": "session=1; Path=/"}, id="generic-cookie"),
    ],
)
def test_extract_tech_ignores_lookalikes(html: str, headers: dict[str, str]) -> None:
    assert extract_tech(html, headers) == []


# --- JSON-LD ------------------------------------------------------------------------------

def ld(*blocks: str) -> str:
    return "".join(f'<script type="application/ld+json">{block}</script>' for block in blocks)


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param(
            ld('{"@context":"https://schema.org","@type":"Organization","name":"Acme Pte Ltd",'
               '"url":"https://acme.com.sg","email":"mailto:Info@Acme.com.sg","telephone":"+65 6123 4567",'
               '"foundingDate":"2015-03-01","sameAs":["https://www.linkedin.com/company/acme","not a url"],'
               '"numberOfEmployees":42,'
               '"address":{"@type":"PostalAddress","streetAddress":"1 Raffles Place #20-01",'
               '"addressLocality":"Singapore","postalCode":"048616","addressCountry":"SG"}}'),
            {"name": "Acme Pte Ltd", "url": "https://acme.com.sg", "email": "info@acme.com.sg",
             "telephone": "+65 6123 4567", "foundingDate": "2015-03-01",
             "sameAs": ["https://www.linkedin.com/company/acme"], "numberOfEmployees": 42,
             "address": "1 Raffles Place #20-01, Singapore, 048616, SG", "postalCode": "048616"},
            id="organization"),
        pytest.param(
            ld('{"@context":"https://schema.org","@graph":[{"@type":"WebSite","name":"Acme site"},'
               '{"@type":"Organization","name":"Acme","numberOfEmployees":{"@type":"QuantitativeValue","value":"120"}}]}'),
            {"name": "Acme", "numberOfEmployees": 120}, id="graph-quantitative-value"),
        pytest.param(
            ld('[{"@type":"BreadcrumbList"},{"@type":["Organization","Corporation"],"name":"Acme",'
               '"numberOfEmployees":{"@type":"QuantitativeValue","minValue":11,"maxValue":50}}]'),
            {"name": "Acme", "numberOfEmployees": 11, "numberOfEmployeesMax": 50}, id="list-and-range"),
        pytest.param(
            ld('{"@type":"ProfessionalService","name":"Acme Advisory","address":"8 Marina View, Singapore 018960",'
               '"numberOfEmployees":"1,200 employees","sameAs":"https://facebook.com/acme"}'),
            {"name": "Acme Advisory", "address": "8 Marina View, Singapore 018960", "postalCode": "018960",
             "numberOfEmployees": 1200, "sameAs": ["https://facebook.com/acme"]},
            id="local-business-subtype-string-address"),
        pytest.param(
            ld('{"@type":"WebPage","publisher":{"@type":"schema:Organization","name":"Nested Acme"}}'),
            {"name": "Nested Acme"}, id="nested-prefixed-type"),
        pytest.param(
            ld('<!-- {"@type":"Organization","name":"Commented",} -->'),
            {"name": "Commented"}, id="comment-and-trailing-comma"),
        pytest.param(
            ld('{"@type":"Organization","name":"Line\nBreak Pte Ltd"}'),
            {"name": "Line Break Pte Ltd"}, id="raw-newline-in-string"),
        pytest.param(
            ld('{"@type":"Organization","name":', '{"@type":"Organization","name":"Second block"}'),
            {"name": "Second block"}, id="broken-block-skipped"),
        pytest.param(
            ld('{"@type":"Organization","name":"Thin"}',
               '{"@type":"LocalBusiness","name":"Rich","telephone":"61234567","url":"https://acme.com.sg"}'),
            {"name": "Rich", "telephone": "61234567", "url": "https://acme.com.sg"}, id="richest-wins"),
        pytest.param(ld('{"@type":"Service","name":"Freight forwarding"}'), {}, id="service-is-not-an-org"),
        pytest.param("<p>no structured data</p>", {}, id="none"),
    ],
)
def test_extract_jsonld_organization(html: str, expected: dict[str, object]) -> None:
    assert extract_jsonld_organization(html) == expected


# --- meta, text, encodings ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param('<html lang="en-SG"><head><title> Acme \n Logistics </title>'
                     '<meta name="description" content="Freight  forwarding"></head></html>',
                     PageMeta("Acme Logistics", "Freight forwarding", "en-SG"), id="standard"),
        pytest.param('<head><meta property="og:title" content="OG Acme">'
                     '<meta property="og:description" content="OG desc"><meta property="og:locale" content="zh_SG"></head>',
                     PageMeta("OG Acme", "OG desc", "zh-SG"), id="open-graph-fallback"),
        pytest.param('<head><meta http-equiv="Content-Language" content="ms, en"></head>',
                     PageMeta(None, None, "ms"), id="content-language"),
        pytest.param("<p>bare", PageMeta(None, None, None), id="nothing"),
    ],
)
def test_extract_page_meta(html: str, expected: PageMeta) -> None:
    assert extract_page_meta(html) == expected


def test_main_text_keeps_content_blocks_and_drops_boilerplate() -> None:
    html = """<html><head><style>.x{}</style><script>var secret = 1;</script></head><body>
      <header>Site header</header><nav><a href="/">Home</a></nav>
      <main><h1>Freight   forwarding</h1><p>We move <b>cargo</b>
      across Asia.</p><ul><li>Sea freight</li><li>Air <em>freight</em></li></ul>
      <noscript>Enable JS</noscript><svg><text>logo</text></svg></main>
      <footer>© Acme</footer></body></html>"""
    assert main_text(html) == "Freight forwarding\nWe move cargo across Asia.\nSea freight\nAir freight"


def test_main_text_handles_broken_html() -> None:
    html = "<div><h2>Services<p>Customs clearance<li>Warehousing</div></span><p>Trucking"
    assert main_text(html).split("\n") == ["Services", "Customs clearance", "Warehousing", "Trucking"]


def test_main_text_truncates_huge_documents() -> None:
    filler = "<p>filler</p>" * (MAX_PARSE_CHARS // len("<p>filler</p>") + 10)
    text = main_text(filler + "<p>beyond the cut</p>")
    assert "beyond the cut" not in text
    assert text.startswith("filler\nfiller")


CP1252_PAGE = "<html><body><p>“Quotes” and café — 5 €</p></body></html>"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param(CP1252_PAGE.encode("cp1252"), "text/html", CP1252_PAGE, id="cp1252-undeclared"),
        pytest.param(CP1252_PAGE.encode("cp1252"), None, CP1252_PAGE, id="cp1252-no-header"),
        pytest.param(CP1252_PAGE.encode("utf-8"), "text/html", CP1252_PAGE, id="utf8-undeclared"),
        pytest.param(CP1252_PAGE.encode("utf-8"), "text/html; charset=UTF-8", CP1252_PAGE, id="utf8-header"),
        pytest.param(CP1252_PAGE.encode("cp1252"), 'text/html; charset="iso-8859-1"', CP1252_PAGE,
                     id="latin1-label-means-cp1252"),
        pytest.param(b'<meta charset="windows-1252">' + "“é”".encode("cp1252"), None, '<meta charset="windows-1252">“é”',
                     id="meta-charset"),
        pytest.param(b'<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">' + "会社".encode("shift_jis"),
                     None, '<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">会社',
                     id="meta-http-equiv"),
        pytest.param(b'<meta charset="utf-8">' + "é".encode("cp1252"), "text/html; charset=windows-1252",
                     '<meta charset="utf-8">é', id="header-beats-meta"),
        pytest.param(b"\xef\xbb\xbf<p>caf\xc3\xa9</p>", "text/html; charset=iso-8859-1", "<p>café</p>", id="utf8-bom"),
        pytest.param("\ufeff<p>会社</p>".encode("utf-16-le"), None, "<p>会社</p>", id="utf16-bom"),
        pytest.param(b'<meta charset="utf-16">caf\xc3\xa9', None, '<meta charset="utf-16">café', id="meta-utf16-is-utf8"),
        pytest.param("café".encode("utf-8"), "text/html; charset=no-such-codec", "café", id="unknown-label"),
    ],
)
def test_decode_html(body: bytes, content_type: str | None, expected: str) -> None:
    assert decode_html(body, content_type) == expected


# --- careers, pricing, case studies -------------------------------------------------------

JOB_POSTING = '{"@type":"JobPosting","title":"%s","url":"https://acme.com.sg/jobs/%d"}'


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param(ld("[" + ",".join(JOB_POSTING % (title, i) for i, title in enumerate(["Driver", "Clerk"])) + "]"),
                     CareersSignals(True, 2), id="json-ld-postings"),
        pytest.param("<h2>Open positions</h2><ul><li>Driver</li><li>Clerk</li><li>Planner</li></ul>"
                     "<h2>Benefits</h2><ul><li>Leave</li></ul>",
                     CareersSignals(True, 3), id="list-under-heading"),
        pytest.param("<h2>Current openings</h2>"
                     "<div><h3>Operations Executive</h3><ul><li>Full time</li><li>Jurong</li></ul></div>"
                     "<div><h3>Account Manager</h3><ul><li>Full time</li></ul></div>",
                     CareersSignals(True, 2), id="job-cards-with-details"),
        pytest.param('<div class="title"><h2>Job Vacancies</h2></div><ul><li><a href="/j/1">Driver</a></li></ul>',
                     CareersSignals(True, 1), id="heading-in-wrapper"),
        pytest.param("<h1>Join our team</h1><h2>Why Acme</h2><p>Great people.</p><h2>Open roles</h2>"
                     "<h3>Driver</h3><h3>Clerk</h3>",
                     CareersSignals(True, 2), id="nested-sections"),
        pytest.param("<title>Careers | Acme</title><h1>Careers</h1><p>No openings right now.</p>",
                     CareersSignals(True, 0), id="careers-without-roles"),
        pytest.param("<h1>Freight forwarding</h1><ul><li>Sea</li><li>Air</li></ul>",
                     CareersSignals(False, 0), id="not-careers"),
    ],
)
def test_careers_signals(html: str, expected: CareersSignals) -> None:
    assert careers_signals(html) == expected


@pytest.mark.parametrize(
    ("html", "url", "expected"),
    [
        pytest.param("<p>Talk to us.</p>", "https://acme.com.sg/pricing", True, id="pricing-url"),
        pytest.param("<h2>Plans and pricing</h2>", "https://acme.com.sg/", True, id="heading"),
        pytest.param("<p>Starter S$49/month, Team $15 per user</p>", "https://acme.com.sg/", True, id="price-per-period"),
        pytest.param('<section class="Pricing-Table"><p>Call</p></section>', "https://acme.com.sg/", True, id="block"),
        pytest.param("<p>We raised $5 million in 2023.</p>", "https://acme.com.sg/news", False, id="money-not-price"),
        pytest.param("<p>About us</p>", "https://acme.com.sg/about", False, id="none"),
    ],
)
def test_has_pricing(html: str, url: str, expected: bool) -> None:
    assert has_pricing(html, url) is expected


@pytest.mark.parametrize(
    ("html", "url", "expected"),
    [
        pytest.param("<p>x</p>", "https://acme.com.sg/case-studies/port", True, id="url"),
        pytest.param("<h2>Our clients</h2><img alt='DHL'>", "https://acme.com.sg/", True, id="heading"),
        pytest.param("<h3>Success stories</h3>", "https://acme.com.sg/", True, id="success-stories"),
        pytest.param('<div class="testimonial-slider"><blockquote>Great</blockquote></div>', "https://acme.com.sg/",
                     True, id="testimonial-block"),
        pytest.param("<h2>Our services</h2>", "https://acme.com.sg/services", False, id="none"),
    ],
)
def test_has_case_studies(html: str, url: str, expected: bool) -> None:
    assert has_case_studies(html, url) is expected


# --- page and site ------------------------------------------------------------------------

HOME_HTML = """<html lang="en"><head><title>Acme Logistics</title>
<meta name="generator" content="WordPress 6.5">
<script type="application/ld+json">{"@type":"Organization","name":"Acme","telephone":"+65 6555 0000",
 "numberOfEmployees":30}</script></head>
<body><nav><a href="/careers">Careers</a></nav><main><h1>Freight forwarding</h1>
<p>Contact sales@acme.com.sg</p><a href="https://www.linkedin.com/company/acme">LinkedIn</a></main>
<footer>Tel: 6123 4567</footer></body></html>"""

CONTACT_HTML = """<html><head><title>Contact</title><meta name="description" content="Reach Acme"></head>
<body><main><h1>Contact us</h1><a href="mailto:sales@acme.com.sg">Sales</a> <a href="mailto:jane@acme.com.sg">Jane</a>
<a href="tel:+6561234567">6123 4567</a><p>Starter plan S$99/month</p></main></body></html>"""

CAREERS_HTML = """<html><head><title>Careers</title></head><body><main><h2>Open positions</h2>
<ul><li>Driver</li><li>Clerk</li></ul></main></body></html>"""


def test_page_signals_runs_every_extractor() -> None:
    signals = page_signals("https://www.acme.com.sg/", HOME_HTML, {"Server": "nginx"}, COMPANY)
    assert signals.kind == "home"
    assert signals.meta == PageMeta("Acme Logistics", None, "en")
    assert signals.organization == {"name": "Acme", "telephone": "+65 6555 0000", "numberOfEmployees": 30}
    assert signals.emails == (hit("sales@acme.com.sg", "role", True, "text"),)
    assert signals.phones == ("+6565550000", "+6561234567")
    assert signals.social == {"linkedin": "https://www.linkedin.com/company/acme"}
    assert [tech.name for tech in signals.tech] == ["Nginx", "WordPress"]
    assert signals.careers == CareersSignals(False, 0)
    assert signals.text == "Freight forwarding\nContact sales@acme.com.sg\nLinkedIn"
    assert signals.is_thin


def test_page_signals_marks_careers_page_by_url() -> None:
    signals = page_signals("https://acme.com.sg/careers", "<p>Send your CV.</p>", {}, COMPANY)
    assert signals.careers == CareersSignals(True, 0)


def test_merge_site_signals_folds_pages() -> None:
    pages = [
        page_signals("https://www.acme.com.sg/", HOME_HTML, {"Server": "nginx"}, COMPANY),
        page_signals("https://www.acme.com.sg/contact", CONTACT_HTML, {"Set-Cookie": "__hstc=1"}, COMPANY),
        page_signals("https://www.acme.com.sg/careers", CAREERS_HTML, {}, COMPANY),
        page_signals("https://www.acme.com.sg/careers/", CAREERS_HTML, {}, COMPANY),
    ]
    site = merge_site_signals(pages)
    assert site.emails == (hit("sales@acme.com.sg", "role", True, "mailto"), hit("jane@acme.com.sg", "personal", True, "mailto"))
    assert site.phones == ("+6565550000", "+6561234567")
    assert [tech.name for tech in site.tech] == ["Nginx", "WordPress", "HubSpot"]
    assert site.meta == PageMeta("Acme Logistics", "Reach Acme", "en")
    assert (site.has_careers, site.open_roles, site.has_pricing, site.has_case_studies) == (True, 2, True, False)
    assert site.organization["numberOfEmployees"] == 30
    assert [page.kind for page in site.pages] == ["home", "contact", "careers", "careers"]
    headers = re.findall(r"^### .*$", site.corpus, flags=re.MULTILINE)
    assert headers == ["### home: Acme Logistics", "### contact: Contact", "### careers: Careers"]
    assert "URL: https://www.acme.com.sg/contact\nContact us\nSales Jane" in site.corpus


def test_merge_site_signals_limits_corpus_and_handles_no_pages() -> None:
    page = page_signals("https://www.acme.com.sg/", HOME_HTML, {}, COMPANY)
    assert len(merge_site_signals([page], corpus_char_limit=40).corpus) == 40
    empty = merge_site_signals([])
    assert (empty.corpus, empty.open_roles, empty.is_thin) == ("", 0, True)


def test_signals_serialise_to_json() -> None:
    pages = [
        page_signals("https://www.acme.com.sg/", HOME_HTML, {"Server": "nginx"}, COMPANY),
        page_signals("https://www.acme.com.sg/contact", CONTACT_HTML, {}, COMPANY),
    ]
    site = merge_site_signals(pages).to_dict()
    assert json.loads(json.dumps(site)) == site
    assert site["emails"][0] == {"email": "sales@acme.com.sg", "kind": "role", "on_company_domain": True,
                                 "free_mail": False, "source": "mailto"}
    page = pages[1].to_dict()
    assert json.loads(json.dumps(page)) == page
    assert page["text_chars"] == len(pages[1].text)
