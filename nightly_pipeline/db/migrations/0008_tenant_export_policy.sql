-- Whether a tenant's Odoo export may include addresses that are not verified deliverable
-- (never verified, catch-all or unknown). Suppressed addresses are never exported either way.
ALTER TABLE tenants ADD COLUMN export_unverified boolean NOT NULL DEFAULT false;

CREATE FUNCTION set_tenant_export_unverified(p_tenant_id int, p_allowed boolean)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = {schema}, pg_temp
AS $$
    UPDATE tenants SET export_unverified = p_allowed, updated_at = now() WHERE tenant_id = p_tenant_id
    RETURNING true;
$$;
REVOKE ALL ON FUNCTION set_tenant_export_unverified(int, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_tenant_export_unverified(int, boolean) TO {app_role};
