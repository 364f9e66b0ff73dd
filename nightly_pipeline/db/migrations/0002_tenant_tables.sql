-- Tenant data. Every table is keyed by tenant_id first; 0003 enables and forces row-level security.

CREATE TABLE tenants (
    tenant_id   int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    daily_cap   int CHECK (daily_cap > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE odoo_connections (
    tenant_id     int PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    url           text NOT NULL,
    db_name       text NOT NULL,
    username      text NOT NULL,
    -- The secret itself never enters the database: this names the environment variable holding it.
    password_env  text NOT NULL CHECK (password_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE icp_rules (
    tenant_id   int PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    payload     jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE icp_candidate_companies (
    tenant_id     int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    company_id    bigint NOT NULL REFERENCES companies (company_id),
    match_score   real NOT NULL,
    reasons       jsonb NOT NULL,
    refreshed_on  date NOT NULL,
    refreshed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, company_id)
);

CREATE TABLE enrichment_runs (
    tenant_id             int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    run_id                uuid NOT NULL,
    run_date              date NOT NULL,
    dagster_run_id        text,
    status                text NOT NULL DEFAULT 'selected'
                          CHECK (status IN ('selected', 'running', 'succeeded', 'failed', 'partial')),
    selected_company_ids  bigint[] NOT NULL,
    target_reasons        jsonb NOT NULL DEFAULT '{}'::jsonb,
    caps                  jsonb NOT NULL,
    budget_snapshot       jsonb NOT NULL,
    step_counters         jsonb NOT NULL DEFAULT '{}'::jsonb,
    degradations          jsonb NOT NULL DEFAULT '[]'::jsonb,
    error_summary         text,
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    PRIMARY KEY (tenant_id, run_id),
    UNIQUE (tenant_id, run_date)
);

CREATE TABLE company_enrichment_runs (
    tenant_id    int NOT NULL,
    run_id       uuid NOT NULL,
    company_id   bigint NOT NULL REFERENCES companies (company_id),
    outcome      text NOT NULL,
    degraded     boolean NOT NULL DEFAULT false,
    reasons      jsonb NOT NULL DEFAULT '[]'::jsonb,
    signals      jsonb NOT NULL DEFAULT '{}'::jsonb,
    extraction   jsonb NOT NULL DEFAULT '{}'::jsonb,
    corpus_hash  text,
    corpus       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_id, company_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES enrichment_runs (tenant_id, run_id) ON DELETE CASCADE
);

CREATE TABLE contacts (
    tenant_id        int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    company_id       bigint NOT NULL REFERENCES companies (company_id),
    email            text NOT NULL CHECK (email = lower(email)),
    full_name        text,
    title            text,
    email_kind       text CHECK (email_kind IN ('personal', 'role')),
    on_company_domain boolean,
    phone            text,
    source           text NOT NULL,
    vendor_ref       jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_primary       boolean NOT NULL DEFAULT false,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, company_id, email)
);

CREATE TABLE email_verification_cache (
    tenant_id    int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    email        text NOT NULL CHECK (email = lower(email)),
    status       text NOT NULL,
    sub_status   text,
    verified_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, email)
);

CREATE TABLE lead_features (
    tenant_id     int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    company_id    bigint NOT NULL REFERENCES companies (company_id),
    feature_date  date NOT NULL,
    features      jsonb NOT NULL,
    feature_hash  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, company_id, feature_date)
);

CREATE TABLE lead_scores (
    tenant_id         int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    company_id        bigint NOT NULL REFERENCES companies (company_id),
    score_date        date NOT NULL,
    score             numeric(6, 5) NOT NULL CHECK (score >= 0 AND score <= 1),
    bucket            text NOT NULL CHECK (bucket IN ('High', 'Medium', 'Low')),
    reasons           jsonb NOT NULL,
    rationale         text NOT NULL,
    rationale_source  text NOT NULL,
    shortlisted       boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, company_id, score_date)
);

CREATE TABLE vendor_usage (
    tenant_id       int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    usage_id        bigint GENERATED ALWAYS AS IDENTITY,
    run_id          uuid,
    vendor          text NOT NULL,
    endpoint        text NOT NULL,
    units_reserved  int NOT NULL DEFAULT 0 CHECK (units_reserved >= 0),
    units_charged   int CHECK (units_charged >= 0),
    status          text NOT NULL,
    latency_ms      int,
    created_at      timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz,
    PRIMARY KEY (tenant_id, usage_id)
);
CREATE INDEX vendor_usage_run_idx ON vendor_usage (tenant_id, run_id, vendor);

CREATE TABLE odoo_sync_log (
    tenant_id            int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    log_id               bigint GENERATED ALWAYS AS IDENTITY,
    run_id               uuid,
    company_id           bigint NOT NULL REFERENCES companies (company_id),
    partner_id           int,
    contact_partner_ids  int[] NOT NULL DEFAULT '{}',
    lead_id              int,
    operation            text NOT NULL,
    merge_decisions      jsonb NOT NULL DEFAULT '[]'::jsonb,
    error                text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, log_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON
    tenants, odoo_connections, icp_rules, icp_candidate_companies, enrichment_runs,
    company_enrichment_runs, contacts, email_verification_cache, lead_features, lead_scores,
    vendor_usage, odoo_sync_log
TO {app_role};
