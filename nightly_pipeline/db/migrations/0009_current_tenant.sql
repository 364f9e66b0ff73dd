-- The tenant a transaction serves, as Database.tenant() set it (NULL outside one). The database
-- layer reads the tenant from here instead of taking it as a second argument that could disagree
-- with the transaction's scope. STABLE, so a query may compare an indexed tenant_id against it.
CREATE FUNCTION current_tenant_id() RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('request.tenant_id', true), '')::int $$;
REVOKE ALL ON FUNCTION current_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION current_tenant_id() TO {app_role};

-- A row written in a tenant transaction belongs to that tenant without naming it; outside one the
-- default is NULL, which row-level security (and NOT NULL) refuses.
DO $$
DECLARE
    tbl regclass;
BEGIN
    FOR tbl IN
        SELECT c.oid::regclass FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attidentity = ''
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN tenant_id SET DEFAULT current_tenant_id()', tbl);
    END LOOP;
END
$$;

-- Tenant tables added by later migrations get the same default with their row-level security.
CREATE OR REPLACE FUNCTION enable_tenant_isolation(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s '
        'USING (tenant_id = NULLIF(current_setting(''request.tenant_id'', true), '''')::int) '
        'WITH CHECK (tenant_id = NULLIF(current_setting(''request.tenant_id'', true), '''')::int)',
        tbl);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN tenant_id SET DEFAULT current_tenant_id()', tbl);
END
$$;
REVOKE ALL ON FUNCTION enable_tenant_isolation(regclass) FROM PUBLIC;
