-- Shared registry data: the same for every tenant, so no tenant_id and no row-level security.

CREATE TABLE staging_acra_companies (
    uen                              text PRIMARY KEY,
    entity_name                      text NOT NULL,
    entity_type_description          text,
    entity_status_description        text,
    registration_incorporation_date  date,
    primary_ssic_code                text,
    primary_ssic_description         text,
    postal_code                      text,
    street_name                      text,
    website                          text,
    extra                            jsonb NOT NULL DEFAULT '{}'::jsonb,
    row_hash                         text NOT NULL,
    first_loaded_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staging_acra_companies_updated_at_idx ON staging_acra_companies (updated_at);

CREATE TABLE companies (
    company_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uen                 text NOT NULL UNIQUE,
    name                text NOT NULL,
    legal_name          text NOT NULL,
    entity_type         text,
    entity_status       text,
    is_live             boolean NOT NULL,
    ssic_code           char(5),
    ssic_description    text,
    incorporation_date  date,
    incorporation_year  int,
    postal_code         text,
    street_name         text,
    website_domain      text,
    website_source      text,
    website_confidence  real,
    field_provenance    jsonb NOT NULL DEFAULT '{}'::jsonb,
    source_row_hash     text NOT NULL,
    source_updated_at   timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX companies_ssic_code_idx ON companies (ssic_code);
CREATE INDEX companies_website_domain_idx ON companies (website_domain);

-- Watermarks of incremental jobs (for example the last ACRA staging refresh).
CREATE TABLE pipeline_watermarks (
    name        text PRIMARY KEY,
    value       timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON staging_acra_companies, companies, pipeline_watermarks TO {app_role};
