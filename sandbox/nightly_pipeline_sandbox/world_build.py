"""Seeded generation of one company website: people, contact details, tech stack and page inventory.

Every choice is drawn from a ``random.Random`` seeded with the world seed and the domain, so a site does
not change when other companies are added to or removed from the sample.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
import re

from nightly_pipeline_sandbox.people import Person, people_for
from nightly_pipeline_sandbox.world_industries import Industry
from nightly_pipeline_sandbox.world_model import (
    BlogPost,
    EmailMention,
    PhoneMention,
    Plan,
    Site,
    TechStack,
)
from nightly_pipeline_sandbox.world_pages import (
    EMAIL_FORMS,
    FOOTER,
    PHONE_FORMS,
    TEAM_MARKUPS,
    render_static_pages,
)

_UPPER_WORDS = {"AI", "IT", "F&B", "HR"}
_LEGAL_SUFFIX = re.compile(r"\s+(PTE\.?\s*LTD\.?|PRIVATE\s+LIMITED|LIMITED|LTD\.?|LLP)\s*$", re.IGNORECASE)
_FREE_MAIL_INDUSTRIES = {"food", "education", "general"}
_ROLE_LOCAL_PARTS = ("info", "hello", "enquiries", "contact", "admin")
_CUSTOMER_FIRST = ("Harbourfront", "Tiong Bahru", "Eastpoint", "Keppel Bay", "Orchard", "Lakeside", "Bugis",
                   "Northshore", "Sunrise", "Kent Ridge", "Paya Lebar", "Bayfront")
_CUSTOMER_SECOND = ("Retail", "Clinics", "Logistics", "Foods", "Hotels", "Manufacturing", "Properties", "Schools",
                    "Insurance", "Engineering")
_PLAN_NAMES = (("Starter", 1), ("Growth", 3), ("Business", 7), ("Enterprise", 15))
_BLOG_TITLES = ("How {word} helps Singapore SMEs grow", "Our {year} guide to {word}",
                "Five questions to ask before choosing a {word} partner", "{display} welcomes new customers in {year}",
                "What we learned from a year of {word}")


@dataclasses.dataclass(frozen=True)
class CompanyFacts:
    """What the registry (or a look-alike's invention) says about the company behind a site."""

    uen: str
    entity_name: str
    industry: Industry
    address: str
    founded: int


@dataclasses.dataclass(frozen=True)
class SiteOptions:
    hard_case: str | None = None
    redirect_target: str | None = None
    force_team_page: bool = False      # the "robots.txt disallows /team" case needs a team page to hide


def strip_legal_suffix(entity_name: str) -> str:
    """``"ACME ROBOTICS PTE. LTD."`` → ``"ACME ROBOTICS"``."""
    return _LEGAL_SUFFIX.sub("", entity_name.strip())


def display_name(entity_name: str) -> str:
    """The brand a site shows: ``"NOVENA AI PRIVATE LIMITED"`` → ``"Novena AI"``."""
    return " ".join(word if word in _UPPER_WORDS else word.capitalize()
                    for word in strip_legal_suffix(entity_name).split())


def build_site(facts: CompanyFacts, domain: str, *, seed: int, index: int,
               options: SiteOptions = SiteOptions()) -> Site:
    """The site of ``facts`` at ``domain``; ``index`` spreads contact forms evenly over the world's sites."""
    rng = random.Random(f"site:{seed}:{domain}")
    industry = facts.industry
    name = display_name(facts.entity_name)
    team, personal_emails = _team(rng, domain, name, seed, options.force_team_page)
    contact_email, role_emails = _role_emails(rng, domain, industry)
    open_roles = _open_roles(rng, industry)
    mentions = _email_mentions(rng, index, contact_email, role_emails, team if personal_emails else (),
                               open_roles is not None)
    primary_phone, phones = _phones(rng, index)
    uses_cloudflare = any(m.form.startswith("cf_") for m in mentions)
    tech = _tech_stack(rng, industry, domain, uses_cloudflare)
    site = Site(
        domain=domain, uen=facts.uen, entity_name=facts.entity_name, display_name=name, industry=industry,
        address=facts.address, founded=facts.founded,
        description=f"{name} is {industry.phrase} in Singapore. {industry.pitch[0]}",
        keywords=tuple(rng.sample(industry.keywords, k=min(len(industry.keywords), rng.randint(3, 5)))),
        people=team, personal_emails_shown=personal_emails, email_mentions=mentions, phone_mentions=phones,
        primary_email=contact_email, primary_phone=primary_phone, tech=tech, open_roles=open_roles,
        plans=_plans(rng, industry), customers=_customers(rng),
        blog_posts=_blog_posts(rng, industry, name), product_count=rng.randint(12, 60),
        employee_count=_employee_count(rng, industry),
        robots_txt=robots_txt(domain, options.hard_case, "WordPress" in tech.names),
        hard_case=options.hard_case, redirect_target=options.redirect_target,
        team_markup=_team_markup(seed, domain, index), employees_published=_headcount_form(seed, domain))
    site.pages.update(render_static_pages(site))
    return site


# Drawn from streams of their own, so adding them left every earlier choice of a site as it was.
def _team_markup(seed: int, domain: str, index: int) -> str:
    """How the team page is laid out; the world's sites cycle through every markup."""
    del seed, domain
    return TEAM_MARKUPS[index % len(TEAM_MARKUPS)]


def _headcount_form(seed: int, domain: str) -> str:
    """Where the site states its headcount: both places, its text, its structured data, or nowhere."""
    roll = random.Random(f"headcount-form:{seed}:{domain}").random()
    return "both" if roll < 0.4 else "text" if roll < 0.6 else "structured" if roll < 0.75 else "none"


def robots_txt(domain: str, hard_case: str | None, wordpress: bool) -> str:
    if hard_case == "robots_disallow_all":
        return "User-agent: *\nDisallow: /\n"
    if hard_case == "robots_disallow_path":
        return "User-agent: *\nDisallow: /team\n"
    lines = ["User-agent: *", "Disallow: /cart"]
    if wordpress:
        lines += ["Disallow: /wp-admin/", "Allow: /wp-admin/admin-ajax.php"]
    if hard_case == "crawl_delay":
        lines.append("Crawl-delay: 2")
    lines += ["", f"Sitemap: http://{domain}/sitemap.xml"]
    return "\n".join(lines) + "\n"


def _team(rng: random.Random, domain: str, name: str, seed: int,
          force: bool) -> tuple[tuple[Person, ...], bool]:
    """(people listed on /team, whether their own addresses are printed); about half the sites print them."""
    roll = rng.random()
    if roll >= 0.75 and not force:
        return (), False
    staff = people_for(domain, name, seed)
    senior = [person for person in staff if person.seniority >= 3][:6]
    listed = tuple(senior if len(senior) >= 2 else staff[:3])
    return listed, roll < 0.5


def _role_emails(rng: random.Random, domain: str, industry: Industry) -> tuple[str, dict[str, str]]:
    """(the main contact address, {purpose: address}) for the role mailboxes a site shows."""
    if industry.key in _FREE_MAIL_INDUSTRIES and rng.random() < 0.4:
        # Small shops often run on a free mailbox named after the business.
        contact = f"{domain.split('.')[0].replace('-', '')}@gmail.com"
    else:
        contact = f"{rng.choice(_ROLE_LOCAL_PARTS)}@{domain}"
    roles = {}
    if rng.random() < 0.6:
        roles["sales"] = f"sales@{domain}"
    roles["careers"] = f"{rng.choice(('careers', 'hr', 'jobs'))}@{domain}"
    if rng.random() < 0.5:
        roles["dpo"] = f"{rng.choice(('dpo', 'privacy'))}@{domain}"
    return contact, roles


def _email_mentions(rng: random.Random, index: int, contact: str, roles: dict[str, str],
                    team: tuple[Person, ...], has_careers: bool) -> tuple[EmailMention, ...]:
    def form() -> str:
        return rng.choice(EMAIL_FORMS)

    # The contact page's main address cycles through every form, so each form occurs in the world.
    mentions = [EmailMention("/contact", contact, EMAIL_FORMS[index % len(EMAIL_FORMS)])]
    if "sales" in roles:
        mentions.append(EmailMention("/contact", roles["sales"], form()))
    if rng.random() < 0.4:
        mentions.append(EmailMention("/", contact, form()))
    mentions += [EmailMention("/team", person.email, form()) for person in team]
    if has_careers:
        mentions.append(EmailMention("/careers", roles["careers"], form()))
    if "dpo" in roles:
        mentions.append(EmailMention("/privacy", roles["dpo"], form()))
    return tuple(mentions)


def _phones(rng: random.Random, index: int) -> tuple[str, tuple[PhoneMention, ...]]:
    # Singapore numbering plan: fixed lines 6[0-578]xxxxxx, mobiles 8[1-9]xxxxxx and 9[0-8]xxxxxx.
    office = f"+656{rng.choice('1234578')}{rng.randrange(10**6):06d}"
    mentions = [PhoneMention(FOOTER, office, rng.choice(PHONE_FORMS)),
                PhoneMention("/contact", office, PHONE_FORMS[index % len(PHONE_FORMS)])]
    if rng.random() < 0.4:
        mobile = f"+65{rng.choice(('8', '9'))}{rng.randint(1, 7)}{rng.randrange(10**6):06d}"
        mentions.append(PhoneMention("/contact", mobile, rng.choice(PHONE_FORMS)))
    return office, tuple(mentions)


def _open_roles(rng: random.Random, industry: Industry) -> tuple[str, ...] | None:
    if rng.random() >= 0.55:
        return None
    return tuple(rng.sample(industry.roles, k=rng.randint(0, min(6, len(industry.roles)))))


def _plans(rng: random.Random, industry: Industry) -> tuple[Plan, ...]:
    if rng.random() >= (0.6 if industry.sells_online else 0.15):
        return ()
    base = rng.choice((29, 49, 99, 199))
    features = industry.offerings
    return tuple(Plan(plan, base * factor, features[:i + 1]) for i, (plan, factor) in
                 enumerate(_PLAN_NAMES[:rng.randint(2, len(_PLAN_NAMES))]))


def _customers(rng: random.Random) -> tuple[str, ...]:
    if rng.random() >= 0.4:
        return ()
    names = {f"{rng.choice(_CUSTOMER_FIRST)} {rng.choice(_CUSTOMER_SECOND)} Pte Ltd" for _ in range(rng.randint(3, 6))}
    return tuple(sorted(names))


def _blog_posts(rng: random.Random, industry: Industry, name: str) -> tuple[BlogPost, ...]:
    posts = []
    for title_template in rng.sample(_BLOG_TITLES, k=rng.randint(2, 4)):
        year = rng.choice((2023, 2024, 2025))
        title = title_template.format(word=rng.choice(industry.words), year=year, display=name)
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        published = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        posts.append(BlogPost(slug, title, published, f"{rng.choice(industry.pitch)} {industry.pitch[1]}"))
    return tuple(posts)


def _employee_count(rng: random.Random, industry: Industry) -> int:
    low, high = industry.employees
    # Log-uniform: most companies are small, a few are large.
    return int(round(low * (high / low) ** rng.random()))


# -- tech fingerprints -------------------------------------------------------------------------------------
_TRACKERS: dict[str, str] = {
    "Google Tag Manager": "https://www.googletagmanager.com/gtm.js?id=GTM-{code}",
    "Google Analytics": "https://www.googletagmanager.com/gtag/js?id=G-{code}",
    "Hotjar": "https://static.hotjar.com/c/hotjar-{number}.js?sv=6",
    "HubSpot": "https://js.hs-scripts.com/{number}.js",
    "Intercom": "https://widget.intercom.io/widget/{code}",
    "Tawk.to": "https://embed.tawk.to/{code}/default",
    "Microsoft Clarity": "https://www.clarity.ms/tag/{code}",
    "Facebook Pixel": "https://connect.facebook.net/en_US/fbevents.js",
    "Zoho SalesIQ": "https://salesiq.zohopublic.com/widget?wc={code}",
    "Stripe": "https://js.stripe.com/v3/",
}
_SERVERS = (("Nginx", "nginx/1.24.0"), ("Apache", "Apache/2.4.58 (Ubuntu)"), ("LiteSpeed", "LiteSpeed"))


@dataclasses.dataclass
class _StackDraft:
    names: set[str] = dataclasses.field(default_factory=set)
    scripts: list[str] = dataclasses.field(default_factory=list)
    stylesheets: list[str] = dataclasses.field(default_factory=list)
    generator: str | None = None
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    self_hosted: bool = True           # the server software shows in the Server header

    def cookie(self, name: str, value: str) -> None:
        self.headers.append(("Set-Cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Lax"))


def _tech_stack(rng: random.Random, industry: Industry, domain: str, uses_cloudflare: bool) -> TechStack:
    token = hashlib.sha256(f"{domain}:tech".encode()).hexdigest()
    draft = _StackDraft()
    _add_platform(draft, rng.choice(industry.platforms), token)
    for tracker in rng.sample(sorted(_TRACKERS), k=rng.randint(0, 4)):
        draft.names.add(tracker)
        draft.scripts.append(_TRACKERS[tracker].format(code=token[:10].upper(), number=int(token[:6], 16)))
    if uses_cloudflare:
        # Cloudflare's email obfuscation only exists on sites served through Cloudflare.
        draft.names.add("Cloudflare")
        draft.headers += [("Server", "cloudflare"), ("CF-RAY", f"{token[:16]}-SIN")]
        draft.cookie("__cf_bm", token[:32])
    elif draft.self_hosted:
        name, header = rng.choice(_SERVERS)
        draft.names.add(name)
        draft.headers.append(("Server", header))
    return TechStack(names=frozenset(draft.names), scripts=tuple(draft.scripts),
                     stylesheets=tuple(draft.stylesheets), generator=draft.generator, headers=tuple(draft.headers))


def _add_platform(draft: _StackDraft, platform: str, token: str) -> None:
    if platform in ("WordPress", "WooCommerce"):
        draft.names |= {"WordPress", "PHP", "jQuery"}
        draft.generator = "WordPress 6.5.3"
        draft.stylesheets.append(f"/wp-content/themes/theme-{token[:6]}/style.css")
        draft.scripts.append("/wp-includes/js/jquery/jquery.min.js?ver=3.7.1")
        draft.headers += [("X-Powered-By", "PHP/8.2.18"), ("Link", '</wp-json/>; rel="https://api.w.org/"')]
        draft.cookie("PHPSESSID", token[:26])
        if platform == "WooCommerce":
            draft.names.add("WooCommerce")
            draft.scripts.append("/wp-content/plugins/woocommerce/assets/js/frontend/woocommerce.min.js?ver=8.9.1")
            draft.cookie("woocommerce_cart_hash", token[26:58])
    elif platform == "Shopify":
        draft.names.add("Shopify")
        draft.self_hosted = False
        draft.scripts.append(f"https://cdn.shopify.com/s/files/1/0{int(token[:6], 16)}/t/3/assets/theme.js")
        draft.headers += [("X-ShopId", str(int(token[:8], 16))), ("X-Shopify-Stage", "production")]
        draft.cookie("_shopify_y", token[:36])
    elif platform == "Wix":
        draft.names.add("Wix")
        draft.self_hosted = False
        draft.generator = "Wix.com Website Builder"
        draft.headers.append(("X-Wix-Request-Id", token[:40]))
    elif platform == "Squarespace":
        draft.names.add("Squarespace")
        draft.self_hosted = False
        draft.scripts.append(f"https://static1.squarespace.com/static/vta/{token[:24]}/scripts/site-bundle.js")
        draft.cookie("crumb", token[:32])
    elif platform == "Webflow":
        draft.names.add("Webflow")
        draft.self_hosted = False
        draft.generator = "Webflow"
        draft.scripts.append(f"https://assets-global.website-files.com/{token[:24]}/js/webflow.js")
    elif platform == "Next.js":
        draft.names |= {"Next.js", "React"}
        draft.scripts.append(f"/_next/static/chunks/main-{token[:16]}.js")
        draft.headers.append(("X-Powered-By", "Next.js"))
    else:
        raise ValueError(f"unknown platform {platform!r}")
