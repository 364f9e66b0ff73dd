-- The admin API's own records: bearer tokens, the audit trail and the submission rate ledger.
-- None of them is tenant data: a token is looked up before any tenant is known, and the audit
-- trail names tenants that may not exist (a refused request for tenant 999). So no tenant_id column
-- and no row-level security here; a tenant-bound token reads tenant data only through that
-- tenant's scoped transactions, under the same policies as the pipeline.

CREATE TABLE api_tokens (
    token_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    role             text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    bound_tenant_id  int REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    -- Only the SHA-256 of the token: it has 256 bits of entropy, so a plain digest cannot be reversed.
    token_sha256     text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    -- An administrator manages every token, so it cannot be confined to one tenant.
    CHECK (role <> 'admin' OR bound_tenant_id IS NULL)
);
-- A revoked name may be issued again (rotating a runbook's token keeps its name).
CREATE UNIQUE INDEX api_tokens_active_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;

-- Append-only for the runtime role: it may add and read entries, never change or remove them.
CREATE TABLE api_audit (
    audit_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    token_id     bigint,
    token_name   text,
    role         text,
    action       text NOT NULL,
    tenant       int,
    outcome      text NOT NULL,
    http_status  int,
    detail       text NOT NULL DEFAULT '',
    client       text
);
CREATE INDEX api_audit_at_idx ON api_audit (at DESC);

-- One row per accepted run submission, counted per token over a sliding minute; in the database so
-- the limit holds across API processes and hosts.
CREATE TABLE api_submissions (
    submission_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id       bigint NOT NULL REFERENCES api_tokens (token_id) ON DELETE CASCADE,
    submitted_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX api_submissions_token_idx ON api_submissions (token_id, submitted_at);

GRANT SELECT, INSERT, UPDATE ON api_tokens TO {app_role};
GRANT SELECT, INSERT ON api_audit TO {app_role};
GRANT SELECT, INSERT, DELETE ON api_submissions TO {app_role};
