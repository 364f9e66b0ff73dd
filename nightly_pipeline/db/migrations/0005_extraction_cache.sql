-- AI extraction results cached by corpus hash and model, per tenant (tokens are billed per tenant),
-- so re-running a night or meeting an unchanged site again spends no tokens.

CREATE TABLE extraction_cache (
    tenant_id    int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    corpus_hash  text NOT NULL,
    model        text NOT NULL,
    profile      jsonb NOT NULL,
    tokens_used  int NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, corpus_hash, model)
);

SELECT enable_tenant_isolation('extraction_cache');

GRANT SELECT, INSERT, UPDATE, DELETE ON extraction_cache TO {app_role};
