-- Public facts: what the web says about a company or an address, fetched once for the whole fleet.
-- A website found from public pages, a site's crawl, the model's reading of a corpus and an address's
-- verification verdict are the same whichever tenant asks, so every tenant run within the freshness
-- window reuses them. Like `companies`, these tables have no row-level security and no column that
-- names a tenant or a run: nothing here says who asked. Who paid and who reused is in vendor_usage
-- and in each run's stage record, under RLS.

-- The website the public checks found for a company without one in the registry (domain NULL: the
-- checks found none). A site confirmed only by a search engine's snippet is a tenant's judgement and
-- never lands here.
CREATE TABLE public_websites (
    company_id  bigint PRIMARY KEY REFERENCES companies (company_id),
    domain      text,
    source      text,
    confidence  real,
    evidence    text,
    checked_at  timestamptz NOT NULL DEFAULT now()
);

-- One crawl of a site: how it ended, its summary (robots, coverage, requests) and the decoded pages
-- the signals are read from, so a reuse reads the same signals without a request.
CREATE TABLE public_site_crawls (
    domain      text PRIMARY KEY,
    outcome     text NOT NULL,
    reason      text NOT NULL,
    summary     jsonb NOT NULL,
    pages       jsonb NOT NULL,
    crawled_at  timestamptz NOT NULL DEFAULT now()
);

-- The model's profile of a corpus; the key hashes the schema, the prompt, the model and the text.
CREATE TABLE public_extractions (
    corpus_hash   text NOT NULL,
    model         text NOT NULL,
    profile       jsonb NOT NULL,
    tokens_used   int NOT NULL DEFAULT 0,
    extracted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (corpus_hash, model)
);

-- An address's verdict, valid until expires_at (set by the verdict's policy).
CREATE TABLE public_email_verifications (
    email        text PRIMARY KEY CHECK (email = lower(email)),
    status       text NOT NULL,
    sub_status   text,
    policy       text NOT NULL CHECK (policy IN ('deliverable', 'risky', 'suppressed')),
    verified_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

-- Who is fetching a fact right now, so a second run waits for the first instead of fetching again.
-- A claim names the fact only; a claimer that dies leaves a claim that expires.
CREATE TABLE public_fact_claims (
    kind        text NOT NULL CHECK (kind IN ('website', 'crawl', 'extraction', 'verification')),
    fact_key    text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, fact_key)
);

-- What the tenants' caches held becomes the fleet's: the newest profile per corpus and model, the
-- newest verdict per address. The tenant tables of verdicts stay as each tenant's view of its own
-- addresses; the per-tenant extraction cache goes.
INSERT INTO public_extractions (corpus_hash, model, profile, tokens_used, extracted_at)
SELECT DISTINCT ON (corpus_hash, model) corpus_hash, model, profile, tokens_used, created_at
FROM extraction_cache ORDER BY corpus_hash, model, created_at DESC;
DROP TABLE extraction_cache;

INSERT INTO public_email_verifications (email, status, sub_status, policy, verified_at, expires_at)
SELECT DISTINCT ON (email) email, status, sub_status, policy, verified_at, expires_at
FROM email_verification_cache ORDER BY email, verified_at DESC;

-- Shared provenance says where a value came from and when, never which tenant or run enriched it.
UPDATE companies SET field_provenance = (
    SELECT coalesce(jsonb_object_agg(field, CASE WHEN jsonb_typeof(entry) = 'object'
                                                 THEN entry - 'tenant_id' - 'run_id' ELSE entry END), '{}'::jsonb)
    FROM jsonb_each(field_provenance) AS f(field, entry))
WHERE field_provenance::text LIKE '%tenant_id%' OR field_provenance::text LIKE '%run_id%';

GRANT SELECT, INSERT, UPDATE, DELETE ON public_websites, public_site_crawls, public_extractions,
    public_email_verifications, public_fact_claims TO {app_role};
