-- A lease every tenant run holds while it works, whoever started it (schedule, backfill, admin API,
-- run_nightly.py, `dagster asset materialize`): at most SCHED_TENANT_CONCURRENCY rows at once and
-- one per tenant (the primary key). A holder renews heartbeat_at while its process lives; a lease
-- whose heartbeat is older than its ttl belongs to a dead process and is taken over.
-- The table is read across tenants (counting every holder), so no row-level security: it holds
-- only which tenant is being run by which run, never tenant data. Like api_audit, it names the
-- tenant in a ``tenant`` column: ``tenant_id`` marks the tables row-level security scopes.
CREATE TABLE tenant_run_leases (
    tenant        int PRIMARY KEY DEFAULT current_tenant_id() REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    holder        text NOT NULL UNIQUE CHECK (length(holder) BETWEEN 1 AND 200),
    pid           int,
    host          text,
    acquired_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    ttl_s         double precision NOT NULL CHECK (ttl_s > 0)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_run_leases TO {app_role};
