"""Rows shaped like what the pipeline stores, and database arrangements shared by the scoring tests."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from nightly_pipeline.db import Database
from nightly_pipeline.db import enrichment as enrichment_db
from nightly_pipeline.db.targets import create_manifest
from nightly_pipeline.domain.icp import Icp, parse_icp
from nightly_pipeline.domain.targets import Target, Tier

SOFTWARE_ICP: Icp = parse_icp({
    "ssic_codes": ["62011", "620"], "industries": ["software"], "incorporation_year": {"min": 2005, "max": 2024},
    "employee_range": {"min": 10, "max": 500}, "preferred_titles": ["CEO", "Founder", "CTO"],
    "keywords": ["saas", "platform", "cloud", "stripe"]})


def company_row(company_id: int = 1, **changes: Any) -> dict[str, Any]:
    row = {"company_id": company_id, "uen": f"2019{company_id:05d}K", "name": f"Nimbus Apps {company_id}",
           "legal_name": f"NIMBUS APPS {company_id} PTE. LTD.", "entity_status": "Live Company", "is_live": True,
           "ssic_code": "62011", "ssic_description": "DEVELOPMENT OF SOFTWARE AND APPLICATIONS",
           "incorporation_year": 2016, "employees_estimate": 80, "employees_source": "structured",
           "website_domain": "nimbus.sg",
           "street_name": "ANSON ROAD", "postal_code": "079903", "industry": "software"}
    row.update(changes)
    return row


def signals(**changes: Any) -> dict[str, Any]:
    """``CompanyCrawl.signals_dict()`` of a healthy crawl."""
    data = {
        "pages": [{"url": "http://nimbus.sg/", "kind": "home", "title": "Nimbus - payroll SaaS", "text_chars": 900},
                  {"url": "http://nimbus.sg/about", "kind": "about", "title": "About", "text_chars": 700},
                  {"url": "http://nimbus.sg/contact", "kind": "contact", "title": "Contact", "text_chars": 300},
                  {"url": "http://nimbus.sg/products", "kind": "products", "title": "Platform", "text_chars": 800}],
        "meta": {"title": "Nimbus", "description": "Cloud payroll platform for SMEs", "language": "en"},
        "organization": {"name": "Nimbus Apps"}, "emails": [], "phones": ["+6561234567"], "social": {},
        "tech": [{"name": "Stripe", "category": "payments", "evidence": "js.stripe.com"},
                 {"name": "React", "category": "js framework", "evidence": "react"}],
        "has_careers": True, "open_roles": 3, "has_pricing": True, "has_case_studies": True,
        "text_chars": 2700, "is_thin": False,
        "domain": {"value": "nimbus.sg", "source": "acra", "confidence": 1.0},
        "crawl": {"domain": "nimbus.sg", "outcome": "ok", "reason": None, "pages_fetched": 4},
    }
    data.update(changes)
    return data


def profile(confidence: float = 0.8, **changes: Any) -> dict[str, Any]:
    data = {"industry": "payroll software", "employees_estimate": 80, "revenue_bucket": "10M-50M", "hq": None,
            "products_services": ["payroll platform"], "business_model": "B2B", "about": "Nimbus builds payroll SaaS."}
    data.update({f"{field}_confidence": confidence for field in
                 ("industry", "employees_estimate", "revenue_bucket", "hq", "products_services", "business_model",
                  "about")})
    data.update(changes)
    return data


def crawl_row(*, degraded_reasons: list[str] | None = None, corpus: str | None = None,
              signals_data: dict[str, Any] | None = None, profile_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``company_enrichment_runs`` row."""
    reasons = degraded_reasons or []
    return {"outcome": "crawled", "degraded": bool(reasons), "reasons": reasons,
            "signals": signals() if signals_data is None else signals_data,
            "extraction": {"profile": profile() if profile_data is None else profile_data, "source": "llm"},
            "corpus": corpus}


CEO = {"email": "mei@nimbus.sg", "full_name": "Tan Mei", "title": "CEO", "email_kind": "personal",
       "phone": None, "is_primary": True}
INFO = {"email": "info@nimbus.sg", "full_name": None, "title": None, "email_kind": "role", "phone": None,
        "is_primary": False}


# -- database arrangements -------------------------------------------------------------------------
def insert_company(db: Database, row: dict[str, Any]) -> int:
    """A ``companies`` row (shared registry data); returns its generated id."""
    columns = ["uen", "name", "legal_name", "entity_status", "is_live", "ssic_code", "ssic_description",
               "incorporation_year", "employees_estimate", "employees_source", "website_domain", "street_name",
               "postal_code", "industry"]
    with db.shared() as conn:
        return conn.execute(
            f"""INSERT INTO companies ({', '.join(columns)}, source_row_hash, source_updated_at)
                VALUES ({', '.join(['%s'] * len(columns))}, 'hash', now()) RETURNING company_id""",
            [row.get(c) for c in columns]).fetchone()["company_id"]


def create_run(db: Database, tenant_id: int, company_ids: list[int], run_date: dt.date) -> uuid.UUID:
    targets = [Target(company_id=cid, tier=Tier.NEVER_SEEN, match_score=1.0, last_targeted_on=None)
               for cid in company_ids]
    with db.tenant(tenant_id) as conn:
        return create_manifest(conn, run_date, targets, caps={}, budget_snapshot={},
                               dagster_run_id=None).run_id


def save_crawl(db: Database, tenant_id: int, run_id: uuid.UUID, company_id: int, crawl: dict[str, Any]) -> None:
    record = enrichment_db.CompanyRunRecord(
        company_id=company_id, outcome=crawl["outcome"], degraded=crawl["degraded"], reasons=crawl["reasons"],
        signals=crawl["signals"], extraction=crawl["extraction"], corpus_hash=None, corpus=crawl["corpus"])
    with db.tenant(tenant_id) as conn:
        enrichment_db.save_company_run(conn, run_id, record)


def insert_contact(db: Database, tenant_id: int, company_id: int, contact: dict[str, Any]) -> None:
    with db.tenant(tenant_id) as conn:
        conn.execute(
            """INSERT INTO contacts (tenant_id, company_id, email, full_name, title, email_kind, phone, source,
                                     is_primary)
               VALUES (%s, %s, %s, %s, %s, %s, %s, 'test', %s)""",
            (tenant_id, company_id, contact["email"], contact.get("full_name"), contact.get("title"),
             contact.get("email_kind"), contact.get("phone"), contact.get("is_primary", False)))


def insert_verification(db: Database, tenant_id: int, email: str, policy: str, *, expired: bool = False) -> None:
    expires = "now() - interval '1 day'" if expired else "now() + interval '30 days'"
    with db.tenant(tenant_id) as conn:
        conn.execute(
            f"""INSERT INTO email_verification_cache (tenant_id, email, status, verified_at, expires_at, policy)
                VALUES (%s, %s, 'valid', now(), {expires}, %s)""", (tenant_id, email, policy))
