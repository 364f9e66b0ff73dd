-- The tenant registry spans tenants by nature (the scheduler lists them, an operator adds one before
-- it has an id). Instead of giving the runtime role any way around row-level security, these few
-- SECURITY DEFINER functions run as the schema owner, for which a dedicated policy opens the two
-- registry tables; everything else stays tenant-scoped.

CREATE POLICY registry_owner ON tenants TO {owner_role} USING (true) WITH CHECK (true);
CREATE POLICY registry_owner ON odoo_connections TO {owner_role} USING (true) WITH CHECK (true);

CREATE FUNCTION register_tenant(p_name text, p_daily_cap int)
RETURNS int
LANGUAGE sql SECURITY DEFINER SET search_path = {schema}, pg_temp
AS $$
    INSERT INTO tenants (name, daily_cap) VALUES (p_name, p_daily_cap) RETURNING tenant_id;
$$;

CREATE FUNCTION set_tenant_status(p_tenant_id int, p_status text)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = {schema}, pg_temp
AS $$
    UPDATE tenants SET status = p_status, updated_at = now() WHERE tenant_id = p_tenant_id RETURNING true;
$$;

CREATE FUNCTION tenant_directory()
RETURNS TABLE (tenant_id int, name text, status text, daily_cap int, odoo_active boolean, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema}, pg_temp
AS $$
    SELECT t.tenant_id, t.name, t.status, t.daily_cap, coalesce(o.active, false), t.created_at
    FROM tenants t LEFT JOIN odoo_connections o ON o.tenant_id = t.tenant_id
    ORDER BY t.tenant_id;
$$;

REVOKE ALL ON FUNCTION register_tenant(text, int), set_tenant_status(int, text), tenant_directory() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION register_tenant(text, int), set_tenant_status(int, text), tenant_directory() TO {app_role};
