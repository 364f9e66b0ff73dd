-- A tenant's status and export policy are an operator's decisions, made on the administrator's
-- connection (`tenant disable`, `tenant export-unverified`). The runtime role only reads the
-- registry: no tenant's transaction may switch another tenant (or itself) off, raise its own cap, or
-- turn on the export of unverified addresses. New tenants still arrive through register_tenant().

REVOKE EXECUTE ON FUNCTION set_tenant_status(int, text), set_tenant_export_unverified(int, boolean) FROM {app_role};
REVOKE INSERT, UPDATE, DELETE ON tenants FROM {app_role};
