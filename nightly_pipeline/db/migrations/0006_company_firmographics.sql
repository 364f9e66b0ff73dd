-- Firmographics found by the crawl stage, with the provenance of each field in field_provenance
-- ({"industry": {"source": "llm", "confidence": 0.8, "tenant_id": 3, "run_id": "…", "at": "…"}, …}).

ALTER TABLE companies
    ADD COLUMN industry            text,
    ADD COLUMN employees_estimate  int CHECK (employees_estimate >= 0),
    ADD COLUMN revenue_bucket      text,
    ADD COLUMN hq                  text,
    ADD COLUMN products_services   jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN business_model      text,
    ADD COLUMN about               text,
    ADD COLUMN last_crawled_at     timestamptz;

-- Look-ups of a tenant's per-company results by run and by company.
CREATE INDEX company_enrichment_runs_company_idx ON company_enrichment_runs (tenant_id, company_id, created_at DESC);
