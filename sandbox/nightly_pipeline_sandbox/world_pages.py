"""HTML pages, sitemap and binary assets of the simulated company websites.

Contact details are written in the forms real sites use (platform-notes §4.7): plain text, ``mailto:``
links with a query string, ``[at]``/``[dot]`` spelling, HTML entities, Cloudflare email protection, JSON-LD,
and Singapore phone formats including ``tel:`` links.
"""
from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nightly_pipeline_sandbox.people import Person
    from nightly_pipeline_sandbox.world_model import Site

EMAIL_FORMS: tuple[str, ...] = ("plain", "mailto", "mailto_query", "at_dot", "entity", "cf_span", "cf_href")
JSON_LD_FORM = "json_ld"
PHONE_FORMS: tuple[str, ...] = ("intl_spaced", "intl_dash", "local_dash", "local_spaced", "paren", "tel_link")
# How team pages lay out names and titles, as real sites do.
TEAM_MARKUPS: tuple[str, ...] = ("cards", "headings", "definition_list", "name_title_lines", "json_ld", "table")
# Where a site states its headcount: JSON-LD and the about text, one of them, or neither.
HEADCOUNT_FORMS: tuple[str, ...] = ("both", "text", "structured", "none")

FOOTER = "*"  # a mention on every page (the footer), not on one path
CALENDAR_FIRST_MONTH = "2025-01"
BROCHURE_PATH = "/assets/brochure.pdf"
LOGO_PATH = "/img/logo.png"
COPYRIGHT_YEAR = 2025
# Typographic quotes, an em dash and an accented name: the characters that tell cp1252 from UTF-8.
TESTIMONIAL = ("\u201cGreat service and a very professional team.\u201d \u2014 Ren\u00e9e Tan, "
               "Operations Director")

_ITEM_PATH = re.compile(r"/products/item-(\d+)")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclasses.dataclass(frozen=True)
class Page:
    path: str    # with the query string for generated pages, e.g. "/calendar?month=2025-03"
    title: str
    html: str


@dataclasses.dataclass(frozen=True)
class Asset:
    content_type: str
    body: bytes
    text: str    # what a document extractor reads from it; empty for images and scripts


# -- contact details ---------------------------------------------------------------------------------------
def cf_encode(email: str) -> str:
    """Cloudflare's email obfuscation: a one-byte XOR key, then the key-XORed address, all in hex."""
    key = 0x20 + zlib.crc32(email.encode()) % 0xC0
    return f"{key:02x}" + "".join(f"{ord(ch) ^ key:02x}" for ch in email)


def render_email(email: str, form: str) -> str:
    local, _, domain = email.partition("@")
    variant = zlib.crc32(email.encode()) % 2
    if form == "plain":
        return f'<span class="email">{html.escape(email)}</span>'
    if form == "mailto":
        return f'<a href="mailto:{html.escape(email)}">{html.escape(email)}</a>'
    if form == "mailto_query":
        return f'<a href="mailto:{html.escape(email)}?subject=Website%20enquiry&amp;body=Hello">Email us</a>'
    if form == "at_dot":
        at, dot = (" [at] ", " [dot] ") if variant else (" (at) ", " (dot) ")
        return html.escape(local + at + dot.join(domain.split(".")))
    if form == "entity":
        dot = "&#46;" if variant else "."
        return f"{html.escape(local)}&#64;{dot.join(html.escape(part) for part in domain.split('.'))}"
    if form == "cf_span":
        return f'<span class="__cf_email__" data-cfemail="{cf_encode(email)}">[email&#160;protected]</span>'
    if form == "cf_href":
        return f'<a href="/cdn-cgi/l/email-protection#{cf_encode(email)}">Email our team</a>'
    raise ValueError(f"unknown email form {form!r}")


def render_phone(e164: str, form: str) -> str:
    digits = e164.removeprefix("+65")
    head, tail = digits[:4], digits[4:]
    texts = {
        "intl_spaced": f"+65 {head} {tail}", "intl_dash": f"+65-{head}-{tail}", "local_dash": f"{head}-{tail}",
        "local_spaced": f"{head} {tail}", "paren": f"(65) {head} {tail}",
    }
    if form == "tel_link":
        return f'<a href="tel:{e164}">+65 {head} {tail}</a>'
    return texts[form]


def display_phone(e164: str) -> str:
    return render_phone(e164, "intl_spaced")


# -- layout ------------------------------------------------------------------------------------------------
def _nav_links(site: Site) -> list[tuple[str, str]]:
    links = [("/", "Home"), ("/about", "About"), ("/products", "Products")]
    if site.plans:
        links.append(("/pricing", "Pricing"))
    if site.people:
        links.append(("/team", "Our Team"))
    if site.customers:
        links.append(("/case-studies", "Customers"))
    if site.open_roles is not None:
        links.append(("/careers", "Careers"))
    links += [("/blog", "Blog"), ("/contact", "Contact")]
    return links


def _head(site: Site, title: str, *, json_ld: bool) -> str:
    parts = [] if site.encoding == "cp1252" else ['<meta charset="utf-8">']
    parts += [f"<title>{html.escape(title)}</title>",
              '<meta name="viewport" content="width=device-width, initial-scale=1">',
              f'<meta name="description" content="{html.escape(site.description)}">',
              f'<meta name="keywords" content="{html.escape(", ".join(site.keywords))}">']
    if site.tech.generator:
        parts.append(f'<meta name="generator" content="{html.escape(site.tech.generator)}">')
    parts += [f'<link rel="stylesheet" href="{html.escape(href)}">' for href in site.tech.stylesheets]
    parts += [f'<script async src="{html.escape(src)}"></script>' for src in site.tech.scripts]
    if json_ld:
        parts.append(f'<script type="application/ld+json">{_organization_json_ld(site)}</script>')
    return "\n".join(parts)


def _organization_json_ld(site: Site) -> str:
    data = {
        "@context": "https://schema.org", "@type": "Organization", "name": site.display_name,
        "legalName": site.entity_name, "url": f"https://{site.domain}/", "logo": f"https://{site.domain}{LOGO_PATH}",
        "address": {"@type": "PostalAddress", "streetAddress": site.address, "addressCountry": "SG"},
        "numberOfEmployees": {"@type": "QuantitativeValue", "value": site.employee_count},
        "telephone": display_phone(site.primary_phone), "email": site.primary_email,
        "foundingDate": str(site.founded),
    }
    if site.employees_published not in ("both", "structured"):
        del data["numberOfEmployees"]
    if site.hard_case == "hostile_json_ld":
        # What careless CMS plugins publish: a NUL inside the name (jsonb refuses it) and a headcount
        # no integer column holds.
        data["name"] = f"{site.display_name}\u0000\u0007"
        data["numberOfEmployees"] = {"@type": "QuantitativeValue", "value": 10**13}
    # "</" inside a script element would end it early.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def _header(site: Site) -> str:
    nav = "".join(f'<a href="{href}">{html.escape(label)}</a>' for href, label in _nav_links(site))
    return (f'<header><a href="/" class="brand"><img src="{LOGO_PATH}" alt="{html.escape(site.display_name)} logo">'
            f"{html.escape(site.display_name)}</a><nav>{nav}</nav></header>")


def _footer(site: Site) -> str:
    phones = " ".join(render_phone(m.e164, m.form) for m in site.phones_on(FOOTER))
    return (f'<footer><p class="address">{html.escape(site.address)}</p>'
            + (f'<p class="phone">Tel: {phones}</p>' if phones else "")
            + f'<p class="legal">&copy; {COPYRIGHT_YEAR} {html.escape(site.entity_name)} &middot; UEN: {site.uen}</p>'
            f'<p><a href="/privacy">Privacy Policy</a> | <a href="/terms">Terms of Use</a> | '
            f'<a href="/calendar?month={CALENDAR_FIRST_MONTH}">Events</a> | <a href="/sitemap.xml">Sitemap</a></p>'
            "</footer>")


def _layout(site: Site, path: str, title: str, body: str) -> Page:
    document = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n" + _head(site, title, json_ld=path == "/")
                + "\n</head>\n<body>\n" + _header(site) + "\n<main>\n" + body + "\n</main>\n" + _footer(site)
                + "\n</body>\n</html>\n")
    if site.broken_markup:
        document = _break_markup(document)
    return Page(path=path, title=title, html=document)


def _break_markup(document: str) -> str:
    """The faults of hand-edited sites: unclosed paragraphs and items, stray closers, nested forms."""
    document = document.replace("</p>", "").replace("</li>", "").replace("</h2>", "")
    document = document.replace("<main>", '<div class=wrapper><form action=/search><div class="col">'
                                          '<form action="/subscribe" method=post><table><tr><td>', 1)
    return document.replace("</main>", "</div></div></div></span></form>", 1)


def _contact_lines(site: Site, path: str) -> str:
    return "".join(f"<p>Email: {render_email(m.email, m.form)}</p>" for m in site.mentions_on(path))


def _phone_lines(site: Site, path: str) -> str:
    return "".join(f"<p>Phone: {render_phone(m.e164, m.form)}</p>" for m in site.phones_on(path))


# -- static pages ------------------------------------------------------------------------------------------
def render_static_pages(site: Site) -> dict[str, Page]:
    pages = [_home(site), _about(site), _contact(site), _products(site), _blog_index(site), _privacy(site),
             _terms(site)]
    pages += [_blog_post(site, index) for index in range(len(site.blog_posts))]
    if site.people:
        pages.append(_team(site))
    if site.plans:
        pages.append(_pricing(site))
    if site.open_roles is not None:
        pages.append(_careers(site))
    if site.customers:
        pages.append(_case_studies(site))
    return {page.path: page for page in pages}


def _home(site: Site) -> Page:
    industry = site.industry
    offerings = "".join(f'<li><a href="/products/item-{i + 1}">{html.escape(name)}</a></li>'
                        for i, name in enumerate(industry.offerings))
    body = (f"<section class=\"hero\"><h1>{html.escape(industry.tagline)}</h1>"
            f"<p>{html.escape(industry.pitch[0])}</p><p><a class=\"cta\" href=\"/contact\">Talk to us</a></p></section>"
            f"<section><h2>About {html.escape(site.display_name)}</h2>"
            f"<p>{html.escape(site.display_name)} is {html.escape(industry.phrase)} based in Singapore. "
            f"{html.escape(industry.pitch[1])}</p></section>"
            f"<section><h2>What we do</h2><ul>{offerings}</ul></section>"
            f"<blockquote>{html.escape(TESTIMONIAL, quote=False)}</blockquote>"
            + _contact_lines(site, "/")
            + f'<p><a href="{BROCHURE_PATH}">Download our company brochure (PDF)</a></p>')
    return _layout(site, "/", f"{site.display_name} | {industry.tagline}", body)


def _about(site: Site) -> Page:
    industry = site.industry
    team = (f"a team of {site.employee_count} people" if site.employees_published in ("both", "text")
            else "a small, growing team")
    body = (f"<h1>About {html.escape(site.display_name)}</h1>"
            f"<p>Founded in {site.founded}, {html.escape(site.display_name)} is {html.escape(industry.phrase)} "
            f"with {team}.</p>"
            + "".join(f"<p>{html.escape(sentence)}</p>" for sentence in industry.pitch)
            + f"<p>Registered in Singapore as {html.escape(site.entity_name)} (UEN {site.uen}).</p>"
            + f'<p>Press kit: <a href="{LOGO_PATH}">download our logo</a></p>')
    return _layout(site, "/about", f"About us | {site.display_name}", body)


def _contact(site: Site) -> Page:
    body = (f"<h1>Contact {html.escape(site.display_name)}</h1>"
            f"<address>{html.escape(site.address)}</address>"
            + _phone_lines(site, "/contact") + _contact_lines(site, "/contact")
            + "<p>Office hours: Monday to Friday, 9am to 6pm.</p>"
            '<form action="/contact" method="post"><label>Name <input name="name"></label>'
            '<label>Email <input name="email" type="email"></label><label>Message <textarea name="message">'
            '</textarea></label><button type="submit">Send</button></form>')
    return _layout(site, "/contact", f"Contact us | {site.display_name}", body)


def _team(site: Site) -> Page:
    body = f"<h1>Meet the team</h1>{_TEAM_RENDERERS[site.team_markup](site)}"
    return _layout(site, "/team", f"Our team | {site.display_name}", body)


def _person_email(site: Site, person: Person) -> str:
    mention = {m.email: m for m in site.mentions_on("/team")}.get(person.email)
    return render_email(mention.email, mention.form) if mention else ""


def _team_cards(site: Site) -> str:
    cards = []
    for person in site.people:
        email = _person_email(site, person)
        cards.append(f'<div class="person"><h3>{html.escape(person.full_name)}</h3>'
                     f'<p class="title">{html.escape(person.title)}</p>{f"<p>{email}</p>" if email else ""}'
                     f'<a href="{html.escape(person.linkedin_url)}">LinkedIn</a></div>')
    return f"<div class=\"team\">{''.join(cards)}</div>"


def _team_headings(site: Site) -> str:
    """Name headings each followed by a title paragraph, no card around them."""
    parts = []
    for person in site.people:
        email = _person_email(site, person)
        parts.append(f"<h3>{html.escape(person.full_name)}</h3><p>{html.escape(person.title)}</p>"
                     + (f"<p>Email: {email}</p>" if email else ""))
    return f"<section class=\"leadership\">{''.join(parts)}</section>"


def _team_directory(site: Site) -> str:
    """The addresses of the listed people, below a layout that has no place for them."""
    lines = [f"<li>{email}</li>" for person in site.people if (email := _person_email(site, person))]
    return f"<h2>Write to us directly</h2><ul class=\"directory\">{''.join(lines)}</ul>" if lines else ""


def _team_definition_list(site: Site) -> str:
    items = "".join(f"<dt>{html.escape(p.full_name)}</dt><dd>{html.escape(p.title)}</dd>" for p in site.people)
    return f"<dl class=\"team\">{items}</dl>{_team_directory(site)}"


def _team_lines(site: Site) -> str:
    items = "".join(f"<li>{html.escape(p.full_name)}, {html.escape(p.title)}</li>" for p in site.people)
    return f"<h2>Leadership</h2><ul class=\"leaders\">{items}</ul>{_team_directory(site)}"


def _team_json_ld(site: Site) -> str:
    """Names on the page, titles only in the page's schema.org data."""
    people = [{"@type": "Person", "name": p.full_name, "jobTitle": p.title} for p in site.people]
    data = json.dumps({"@context": "https://schema.org", "@type": "Organization", "name": site.display_name,
                       "employee": people}, ensure_ascii=False).replace("</", "<\\/")
    names = "".join(f"<li>{html.escape(p.full_name)}</li>" for p in site.people)
    return (f'<script type="application/ld+json">{data}</script><ul class="people">{names}</ul>'
            f"{_team_directory(site)}")


def _team_table(site: Site) -> str:
    rows = "".join(f"<tr><td>{html.escape(p.full_name)}</td><td>{html.escape(p.title)}</td>"
                   f"<td>{_person_email(site, p)}</td></tr>" for p in site.people)
    return (f'<table class="team"><tr><th>Name</th><th>Role</th><th>Email</th></tr>{rows}</table>')


_TEAM_RENDERERS = {
    "cards": _team_cards, "headings": _team_headings, "definition_list": _team_definition_list,
    "name_title_lines": _team_lines, "json_ld": _team_json_ld, "table": _team_table,
}


def _pricing(site: Site) -> Page:
    rows = "".join(
        f"<tr><td>{html.escape(plan.name)}</td><td>S${plan.monthly_sgd:,} / month</td>"
        f"<td>{html.escape(', '.join(plan.features))}</td></tr>" for plan in site.plans)
    body = (f"<h1>Pricing</h1><p>Simple plans for every stage. Prices exclude GST.</p>"
            f"<table class=\"pricing\"><tr><th>Plan</th><th>Price</th><th>Includes</th></tr>{rows}</table>"
            '<p><a href="/contact">Contact sales</a> for an enterprise quote.</p>')
    return _layout(site, "/pricing", f"Pricing | {site.display_name}", body)


def _careers(site: Site) -> Page:
    roles = site.open_roles or ()
    if roles:
        items = "".join(f'<li class="job">{html.escape(role)} \u2013 Full-time, Singapore</li>' for role in roles)
        listing = f"<p>We are hiring for {len(roles)} open positions.</p><ul class=\"jobs\">{items}</ul>"
    else:
        listing = "<p>We have no open positions right now, but we are always happy to hear from you.</p>"
    body = f"<h1>Careers at {html.escape(site.display_name)}</h1>{listing}" + _contact_lines(site, "/careers")
    return _layout(site, "/careers", f"Careers | {site.display_name}", body)


def _case_studies(site: Site) -> Page:
    items = "".join(
        f"<li><h3>{html.escape(customer)}</h3><p>How {html.escape(customer)} works with "
        f"{html.escape(site.display_name)} on {html.escape(site.industry.offerings[i % len(site.industry.offerings)])}."
        "</p></li>" for i, customer in enumerate(site.customers))
    body = f"<h1>Customers and case studies</h1><p>Trusted by teams across Singapore.</p><ul>{items}</ul>"
    return _layout(site, "/case-studies", f"Case studies | {site.display_name}", body)


def _products(site: Site) -> Page:
    items = "".join(f'<li><a href="/products/item-{n}">{html.escape(_product_name(site, n))}</a></li>'
                    for n in range(1, site.product_count + 1))
    body = f"<h1>Products and services</h1><ul class=\"products\">{items}</ul>"
    return _layout(site, "/products", f"Products | {site.display_name}", body)


def _blog_index(site: Site) -> Page:
    items = "".join(f'<li><a href="/blog/{post.slug}">{html.escape(post.title)}</a> <time>{post.published}</time></li>'
                    for post in site.blog_posts)
    return _layout(site, "/blog", f"Blog | {site.display_name}", f"<h1>News and insights</h1><ul>{items}</ul>")


def _blog_post(site: Site, index: int) -> Page:
    post = site.blog_posts[index]
    body = (f"<article><h1>{html.escape(post.title)}</h1><time>{post.published}</time>"
            f"<p>{html.escape(post.summary)}</p><p>{html.escape(site.industry.pitch[2])}</p></article>"
            '<p><a href="/blog">Back to the blog</a></p>')
    return _layout(site, f"/blog/{post.slug}", f"{post.title} | {site.display_name}", body)


def _privacy(site: Site) -> Page:
    body = ("<h1>Privacy Policy</h1><p>We collect and use personal data in line with the Personal Data "
            "Protection Act 2012 (PDPA).</p><p>We use cookies to understand how visitors use this site.</p>"
            + "".join(f"<p>Data Protection Officer: {render_email(m.email, m.form)}</p>"
                      for m in site.mentions_on("/privacy")))
    return _layout(site, "/privacy", f"Privacy Policy | {site.display_name}", body)


def _terms(site: Site) -> Page:
    body = ("<h1>Terms of Use</h1><p>By using this website you agree to these terms. Content is provided "
            "for general information only and may change without notice.</p>"
            "<p>These terms are governed by the laws of Singapore.</p>")
    return _layout(site, "/terms", f"Terms of Use | {site.display_name}", body)


def render_not_found(site: Site, path: str) -> Page:
    body = '<h1>Page not found</h1><p>Sorry, that page does not exist. <a href="/">Go to the home page</a>.</p>'
    return _layout(site, path, f"Page not found | {site.display_name}", body)


# -- generated pages: product listings and the endless calendar ------------------------------------------
def render_dynamic_page(site: Site, path: str, query: dict[str, str]) -> Page | None:
    item = _ITEM_PATH.fullmatch(path)
    if item is not None:
        number = int(item.group(1))
        return _product(site, number) if 1 <= number <= site.product_count else None
    if path == "/calendar":
        return _calendar(site, query.get("month", CALENDAR_FIRST_MONTH))
    return None


def _product_name(site: Site, number: int) -> str:
    offerings = site.industry.offerings
    return f"{offerings[(number - 1) % len(offerings)]} {chr(ord('A') + (number - 1) // len(offerings) % 26)}{number}"


def _product(site: Site, number: int) -> Page:
    name = _product_name(site, number)
    price = 40 + zlib.crc32(f"{site.domain}:{number}".encode()) % 4000
    related = f'<p><a href="/products/item-{number % site.product_count + 1}">Related product</a></p>'
    body = (f"<h1>{html.escape(name)}</h1><p>From S${price} (excl. GST).</p>"
            f"<p>{html.escape(site.industry.pitch[number % len(site.industry.pitch)])}</p>"
            f'{related}<p><a href="/products">All products</a></p>')
    return _layout(site, f"/products/item-{number}", f"{name} | {site.display_name}", body)


def _calendar(site: Site, month: str) -> Page | None:
    match = _MONTH.fullmatch(month)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    year, number = int(match.group(1)), int(match.group(2))
    following = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
    previous = f"{year - (number == 1):04d}-{(number - 2) % 12 + 1:02d}"
    topic = site.industry.offerings[zlib.crc32(f"{site.domain}:{month}".encode()) % len(site.industry.offerings)]
    body = (f"<h1>Events in {month}</h1><ul><li>{html.escape(topic)} briefing, {month}-15</li>"
            f"<li>Customer meetup, {month}-22</li></ul>"
            f'<p><a href="/calendar?month={previous}">Previous month</a> | '
            f'<a href="/calendar?month={following}">Next month</a></p>')
    return _layout(site, f"/calendar?month={month}", f"Events {month} | {site.display_name}", body)


# -- robots, sitemap and assets ----------------------------------------------------------------------------
def render_asset(site: Site, path: str) -> Asset | None:
    if path == BROCHURE_PATH:
        return brochure(site)
    if path == LOGO_PATH:
        return Asset("image/png", _one_pixel_png(), "")
    if path == js_bundle_path(site) and site.js_only:
        return Asset("application/javascript",
                     b'(()=>{const root=document.getElementById("root");root.dataset.hydrated="1";})();', "")
    if path == "/sitemap.xml":
        return Asset("application/xml", _sitemap(site).encode(), "")
    return None


def brochure(site: Site) -> Asset:
    lines = [f"{site.display_name} - company profile", site.industry.pitch[0], site.industry.pitch[1],
             f"UEN {site.uen}. {site.address}."]
    return Asset("application/pdf", _pdf_document(lines), "\n".join(lines))


def _sitemap(site: Site) -> str:
    urls = "".join(f"<url><loc>http://{site.domain}{path}</loc></url>" for path in sorted(site.pages))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>\n')


def js_bundle_path(site: Site) -> str:
    return f"/static/js/main.{hashlib.sha256(site.domain.encode()).hexdigest()[:8]}.js"


def js_shell(site: Site) -> str:
    """What a single-page app serves before its JavaScript runs: nothing a crawler can use."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(site.display_name)}</title>\n"
            f'<script defer src="{js_bundle_path(site)}"></script>\n</head>\n<body>\n'
            "<noscript>You need to enable JavaScript to run this app.</noscript>\n<div id=\"root\"></div>\n"
            "</body>\n</html>\n")


def _pdf_document(lines: list[str]) -> bytes:
    """A one-page PDF with ``lines`` as text, built by hand so the sandbox needs no PDF library."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    text_ops = " T* ".join(f"({escape(line)}) Tj" for line in lines)
    stream = f"BT /F1 11 Tf 14 TL 56 780 Td {text_ops} ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def _one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x1f\x5f\xaf")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
