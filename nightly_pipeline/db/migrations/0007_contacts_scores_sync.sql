-- Contacts stage (Lusha lookups cached per company domain), scoring (rationales cached by feature
-- hash) and the Odoo sync. All tenant data: RLS enabled, forced, with the NULLIF policy.

ALTER TABLE contacts
    ADD COLUMN seniority  int,
    ADD COLUMN linkedin   text;

ALTER TABLE email_verification_cache
    ADD COLUMN policy  text NOT NULL DEFAULT 'risky' CHECK (policy IN ('deliverable', 'risky', 'suppressed'));

CREATE TABLE lusha_lookups (
    tenant_id      int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    domain         text NOT NULL,
    looked_up_at   timestamptz NOT NULL DEFAULT now(),
    request_id     text,
    contacts       jsonb NOT NULL DEFAULT '[]'::jsonb,
    credits        int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, domain)
);

CREATE TABLE rationale_cache (
    tenant_id     int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    feature_hash  text NOT NULL,
    rationale     text NOT NULL,
    source        text NOT NULL,
    tokens_used   int NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, feature_hash)
);

ALTER TABLE lead_scores
    ADD COLUMN features_hash  text,
    ADD COLUMN odoo_partner_id int,
    ADD COLUMN odoo_lead_id    int;

SELECT enable_tenant_isolation('lusha_lookups');
SELECT enable_tenant_isolation('rationale_cache');

GRANT SELECT, INSERT, UPDATE, DELETE ON lusha_lookups, rationale_cache TO {app_role};
