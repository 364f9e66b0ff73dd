"""Link discovery, URL filters and key-page selection on fetched home pages."""
from __future__ import annotations

import pytest

from nightly_pipeline.crawl.pages import (
    Link,
    discover_links,
    is_html_content_type,
    is_probably_binary_url,
    is_trap_url,
    page_kind,
    select_key_pages,
    site_key,
    sniff_html,
)

BASE = "https://www.acme.com.sg/"

HOME_PAGE = """<!doctype html><html><head><title>Acme</title></head><body>
<nav>
  <a href="/">Home</a>
  <a href="/zh/about-us">关于我们 About</a>
  <a href="/about-us">About Us</a>
  <a href="/contact#form">Contact</a>
  <a href="/our-team/">Our Team</a>
  <a href="/pricing">Pricing</a>
  <a href="https://jobs.acme.com.sg/careers">Careers</a>
  <a href="/case-studies">Case Studies</a>
  <a href="/services/freight">Freight</a>
  <a href="/services">Services</a>
  <a href="/blog">Blog</a>
  <a href="/blog/page/2">Older posts</a>
</nav>
<main>
  <a href="/files/company-profile.pdf">Company profile (PDF)</a>
  <a href="/images/team.PNG">Team photo</a>
  <a href="/events/calendar/2024-05">Events calendar</a>
  <a href="/blog/tag/logistics">#logistics</a>
  <a href="/blog/2023/05/">May 2023</a>
  <a href="/my-account/login">Client login</a>
  <a href="/cart">Cart</a>
  <a href="/products?page=3">More products</a>
  <a href="https://www.linkedin.com/company/acme">LinkedIn</a>
  <a href="https://acme.com.sg.evil.com/about">About (phish)</a>
  <a href="mailto:info@acme.com.sg">Email us</a>
  <a href="tel:+6561234567">Call</a>
  <a href="javascript:void(0)">Menu</a>
  <a href="#top">Top</a>
</main>
</body></html>"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://www.acme.com.sg/about", "acme.com.sg"),
        ("acme.com.sg", "acme.com.sg"),
        ("ACME.COM.SG/contact", "acme.com.sg"),
        ("https://shop.acme.co.uk:8443/x", "acme.co.uk"),
        ("https://acme.com.sg.evil.com/", "evil.com"),
        ("http://127.0.0.1:8080/", "127.0.0.1"),
        ("http://localhost:3000/about", "localhost"),
        ("", None),
    ],
)
def test_site_key_is_the_registrable_domain_or_else_the_host(value: str, expected: str | None) -> None:
    assert site_key(value) == expected


def test_links_between_ip_hosts_are_not_one_site() -> None:
    html = '<a href="http://127.0.0.1:8080/about">Same</a><a href="http://10.0.0.7/about">Other</a>'
    assert [link.url for link in discover_links("http://127.0.0.1:8080/", html)] == ["http://127.0.0.1:8080/about"]


def test_discover_links_resolves_strips_fragments_dedupes_and_keeps_order() -> None:
    html = """
      <a href="/about">About</a>
      <a href="/about/#team">About again</a>
      <a href="contact.html">Contact</a>
      <a href="//acme.com.sg/products">Products</a>
      <a href="https://blog.acme.com.sg/post?id=1#comments">Post</a>
      <a href="https://other.example/">Partner</a>
      <a href="mailto:x@acme.com.sg">Mail</a><a href="tel:61234567">Tel</a>
      <a href="javascript:alert(1)">JS</a><a href="data:text/html,hi">Data</a><a href="#x">Anchor</a>
    """
    links = discover_links("https://www.acme.com.sg/en/index.html", html)
    assert links == [
        Link("https://www.acme.com.sg/about", "About"),
        Link("https://www.acme.com.sg/en/contact.html", "Contact"),
        Link("https://acme.com.sg/products", "Products"),
        Link("https://blog.acme.com.sg/post?id=1", "Post"),
    ]


def test_discover_links_can_include_other_sites() -> None:
    html = '<a href="/a">A</a><a href="https://Other.Example/b#c">B</a>'
    assert discover_links(BASE, html, same_site=False) == [
        Link("https://www.acme.com.sg/a", "A"),
        Link("https://other.example/b", "B"),
    ]


def test_discover_links_honours_base_element_and_fallback_text() -> None:
    html = """<head><base href="https://www.acme.com.sg/sg/"></head>
      <a href="team"><img src="t.jpg" alt="Our  team"></a>
      <a href="clients" aria-label="Clients"></a>
      <a href="news"></a><a href="news">Latest news</a>"""
    assert discover_links(BASE, html) == [
        Link("https://www.acme.com.sg/sg/team", "Our team"),
        Link("https://www.acme.com.sg/sg/clients", "Clients"),
        Link("https://www.acme.com.sg/sg/news", "Latest news"),
    ]


def test_discover_links_skips_malformed_urls() -> None:
    html = """<base href="http://[broken"><a href="http://[::1">v6</a><a href="http://acme.com.sg:99999/">port</a>
              <a href="https://user:secret@www.acme.com.sg:443/about">About</a>"""
    assert discover_links(BASE, html) == [Link("https://www.acme.com.sg/about", "About")]


def test_discover_links_survives_broken_html() -> None:
    html = '<div><a href="/about">About <b>us</a><p><a href="/contact">Contact</div></p><a href="/x'
    urls = [link.url for link in discover_links(BASE, html)]
    assert urls[:2] == ["https://www.acme.com.sg/about", "https://www.acme.com.sg/contact"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.sg/files/profile.pdf", True),
        ("https://acme.sg/img/Logo.PNG", True),
        ("https://acme.sg/photo.jpeg?w=200", True),
        ("https://acme.sg/deck.pptx", True),
        ("https://acme.sg/report.docx", True),
        ("https://acme.sg/archive.tar.gz", True),
        ("https://acme.sg/video.mp4", True),
        ("https://acme.sg/sitemap.xml", True),
        ("https://acme.sg/about", False),
        ("https://acme.sg/about.html", False),
        ("https://acme.sg/index.php?id=3", False),
        ("https://acme.sg/", False),
        ("https://acme.sg/v1.2/", False),
    ],
)
def test_is_probably_binary_url(url: str, expected: bool) -> None:
    assert is_probably_binary_url(url) is expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html", True),
        ("text/html; charset=UTF-8", True),
        ("TEXT/HTML;charset=iso-8859-1", True),
        ("application/xhtml+xml", True),
        ("application/pdf", False),
        ("text/plain", False),
        ("image/png", False),
        ("application/json", False),
        ("", False),
        (None, False),
    ],
)
def test_is_html_content_type(content_type: str | None, expected: bool) -> None:
    assert is_html_content_type(content_type) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<!DOCTYPE html><html>", True),
        (b"\xef\xbb\xbf\n  <html lang='en'>", True),
        (b"<!-- comment --><html>", True),
        (b"%PDF-1.7\n", False),
        (b"\x89PNG\r\n", False),
        (b'{"a": 1}', False),
    ],
)
def test_sniff_html(body: bytes, expected: bool) -> None:
    assert sniff_html(body) is expected


@pytest.mark.parametrize(
    ("url", "text", "expected"),
    [
        ("https://acme.sg/about-us", "", "about"),
        ("https://acme.sg/company/who-we-are", "", "about"),
        ("https://acme.sg/contact-us.html", "", "contact"),
        ("https://acme.sg/page-12", "Get in touch", "contact"),
        ("https://acme.sg/our-team", "", "team"),
        ("https://acme.sg/p/7", "Meet the Team", "team"),
        ("https://acme.sg/about/leadership", "", "team"),
        ("https://acme.sg/pricing", "", "pricing"),
        ("https://acme.sg/services/pricing", "", "pricing"),
        ("https://acme.sg/plans", "", "pricing"),
        ("https://acme.sg/careers", "", "careers"),
        ("https://acme.sg/x", "Jobs", "careers"),
        ("https://acme.sg/case-studies", "", "case_studies"),
        ("https://acme.sg/clients", "", "case_studies"),
        ("https://acme.sg/services/freight", "", "products"),
        ("https://acme.sg/solutions", "", "products"),
        ("https://acme.sg/blog", "", "news"),
        ("https://acme.sg/newsroom", "", "news"),
        ("https://acme.sg/", "", "home"),
        ("https://acme.sg/terms", "Terms of use", None),
        ("https://acme.sg/aboutface", "", None),
        ("http://[::1/about", "", None),
    ],
)
def test_page_kind(url: str, text: str, expected: str | None) -> None:
    assert page_kind(url, text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.sg/blog/page/2", True),
        ("https://acme.sg/blog/tag/freight", True),
        ("https://acme.sg/events/calendar/", True),
        ("https://acme.sg/2023/05/hello", True),
        ("https://acme.sg/wp-login.php", True),
        ("https://acme.sg/my-account/", True),
        ("https://acme.sg/cart", True),
        ("https://acme.sg/products?page=3", True),
        ("https://acme.sg/?s=freight", True),
        ("https://acme.sg/shop?add-to-cart=12", True),
        ("https://acme.sg/about", False),
        ("https://acme.sg/blog/our-2023-results", False),
        ("https://acme.sg/products?id=3", False),
    ],
)
def test_is_trap_url(url: str, expected: bool) -> None:
    assert is_trap_url(url) is expected


def test_select_key_pages_takes_best_of_each_kind_in_priority_order() -> None:
    # One page per key kind and nothing else: not the second "about" (/zh/about-us), not a
    # service detail page (/services/freight), not the blog.
    assert select_key_pages(BASE, HOME_PAGE, max_pages=20) == [
        "https://www.acme.com.sg/about-us",
        "https://www.acme.com.sg/contact",
        "https://www.acme.com.sg/our-team/",
        "https://www.acme.com.sg/pricing",
        "https://jobs.acme.com.sg/careers",
        "https://www.acme.com.sg/case-studies",
        "https://www.acme.com.sg/services",
    ]


def test_a_site_with_few_key_pages_gets_no_other_pages_to_fill_the_budget() -> None:
    products = "".join(f'<a href="/products/item-{n}">Widget {n}</a>' for n in range(1, 30))
    posts = "".join(f'<a href="/blog/post-{n}">Post {n}</a>' for n in range(1, 10))
    html = f'''<a href="/about">About</a><a href="/contact">Contact</a><a href="/blog">Blog</a>
              <a href="/shop">Shop</a><a href="/gallery">Gallery</a>{products}{posts}'''
    assert select_key_pages(BASE, html, max_pages=6) == [
        "https://www.acme.com.sg/about",
        "https://www.acme.com.sg/contact",
    ]


@pytest.mark.parametrize("max_pages", [0, 1, 3, 6])
def test_select_key_pages_respects_max_pages(max_pages: int) -> None:
    pages = select_key_pages(BASE, HOME_PAGE, max_pages=max_pages)
    assert pages == select_key_pages(BASE, HOME_PAGE, max_pages=20)[:max_pages]
    assert len(pages) == max_pages


@pytest.mark.parametrize(
    "unwanted",
    [
        "/files/company-profile.pdf",
        "/images/team.PNG",
        "/events/calendar/2024-05",
        "/blog/tag/logistics",
        "/blog/page/2",
        "/blog/2023/05/",
        "/my-account/login",
        "/cart",
        "/products?page=3",
        "linkedin.com",
        "evil.com",
        "mailto:",
        "tel:",
        "javascript:",
        "#top",
    ],
)
def test_select_key_pages_never_picks_traps_media_or_other_sites(unwanted: str) -> None:
    assert not any(unwanted in url for url in select_key_pages(BASE, HOME_PAGE, max_pages=50))


def test_select_key_pages_prefers_link_text_and_shallow_paths() -> None:
    html = """<a href="/company/about/history/founding">History</a>
              <a href="/who">Who we are</a>
              <a href="/contact-us?ref=footer">Contact</a>
              <a href="/contact-us/">Contact us</a>"""
    assert select_key_pages(BASE, html, max_pages=2) == [
        "https://www.acme.com.sg/who",
        "https://www.acme.com.sg/contact-us/",
    ]


def test_select_key_pages_without_matching_links_is_empty() -> None:
    html = '<a href="/">Home</a><a href="/terms">Terms</a><a href="https://facebook.com/acme">About us</a>'
    assert select_key_pages(BASE, html, max_pages=5) == []
