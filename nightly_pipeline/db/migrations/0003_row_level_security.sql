-- Row-level security, enabled AND forced, on every table that has a tenant_id column.
-- NULLIF(current_setting(..., true), '') makes a connection without a tenant see nothing instead of
-- raising, also on pooled connections where an earlier transaction left the setting as ''.
-- Later migrations call enable_tenant_isolation() for each tenant table they add.

CREATE FUNCTION enable_tenant_isolation(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s '
        'USING (tenant_id = NULLIF(current_setting(''request.tenant_id'', true), '''')::int) '
        'WITH CHECK (tenant_id = NULLIF(current_setting(''request.tenant_id'', true), '''')::int)',
        tbl);
END
$$;
REVOKE ALL ON FUNCTION enable_tenant_isolation(regclass) FROM PUBLIC;

SELECT enable_tenant_isolation(c.oid::regclass)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p');
