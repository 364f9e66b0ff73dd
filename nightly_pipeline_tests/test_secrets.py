"""Credentials never show in the settings' repr or str, and an Odoo connection cannot send a
tenant's password (or any other secret of the process) to an arbitrary server."""
from __future__ import annotations

import pytest

from nightly_pipeline.cli import main
from nightly_pipeline.domain.odoo_connection import (
    OdooConnectionRejected,
    check_odoo_connection,
    check_odoo_url,
    check_password_env,
)
from nightly_pipeline.settings import load_settings, redact_url


def test_settings_never_show_credentials_held_in_urls():
    settings = load_settings({
        "CRAWLER_PROXY": "http://crawler:proxy-pw-1@proxy.internal:3128",
        "OPENAI_BASE_URL": "https://svc:openai-pw-2@llm.internal/v1",
        "DATABASE_URL": "postgresql://nightly_app:db-pw-3@db.internal/leads",
        "TAVILY_API_KEY": "tvly-key-4",
    })
    assert settings.crawler_proxy == "http://crawler:proxy-pw-1@proxy.internal:3128"  # still usable as is
    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        for secret in ("proxy-pw-1", "openai-pw-2", "db-pw-3", "tvly-key-4"):
            assert secret not in text, (secret, text)
        assert "proxy.internal:3128" in text


@pytest.mark.parametrize("url, shown", [
    ("http://user:pw@proxy:3128", "http://user:***@proxy:3128"),
    ("http://user@proxy:3128", "http://user@proxy:3128"),
    ("socks5://u:p%40ss@[::1]:1080/x", "socks5://u:***@[::1]:1080/x"),
    ("https://api.example.com/v2", "https://api.example.com/v2"),
    ("not a url", "not a url"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("name", ["ODOO_PASSWORD", "ODOO_PASSWORD_ACME", "ODOO_PASSWORD_TENANT_7",
                                  "SANDBOX_ODOO_PASSWORD", "ACME_ODOO_PASSWORD", "TEST_ODOO_PASSWORD"])
def test_password_variables_that_are_accepted(name):
    assert check_password_env(name) == name


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "DATABASE_URL", "DATABASE_ADMIN_URL", "TAVILY_API_KEY",
                                  "AWS_SECRET_ACCESS_KEY", "PW", "ODOO_PW", "odoo_password_acme",
                                  "ODOO_PASSWORDX", "XODOO_PASSWORD", "ODOO_PASSWORD_", "_ODOO_PASSWORD",
                                  "ODOO_PASSWORD ACME", "", "ODOO_PASSWORD\n"])
def test_password_variables_that_are_refused(name):
    with pytest.raises(OdooConnectionRejected) as refused:
        check_password_env(name)
    assert refused.value.field == "password_env"


@pytest.mark.parametrize("url", ["https://crm.acme.sg", "https://crm.acme.sg:8443/", "http://127.0.0.1:8069",
                                 "http://localhost:8069", "http://[::1]:8069", "http://127.5.6.7"])
def test_odoo_urls_that_are_accepted(url):
    assert check_odoo_url(url) == url


@pytest.mark.parametrize("url, reason", [
    ("http://crm.acme.sg", "must use https"),
    ("http://10.0.0.5:8069", "must use https"),
    ("http://127.0.0.1.evil.example", "must use https"),
    ("http://localhost.evil.example", "must use https"),
    ("https://admin:pw@crm.acme.sg", "must not carry credentials"),
    ("https://crm.acme.sg/web/login", "must not have a path"),
    ("https://crm.acme.sg?db=x", "must not have a path"),
    ("ftp://crm.acme.sg", "must look like https://"),
    ("crm.acme.sg", "must look like https://"),
    ("https://crm.acme.sg:port", "is not a valid URL"),
])
def test_odoo_urls_that_are_refused(url, reason):
    with pytest.raises(OdooConnectionRejected) as refused:
        check_odoo_url(url)
    assert reason in str(refused.value) and refused.value.field == "url"


def test_a_stored_connection_is_checked_as_a_whole():
    check_odoo_connection("https://crm.acme.sg", "ODOO_PASSWORD_ACME")
    with pytest.raises(OdooConnectionRejected):
        check_odoo_connection("https://crm.acme.sg", "OPENAI_API_KEY")
    with pytest.raises(OdooConnectionRejected):
        check_odoo_connection("http://crm.acme.sg", "ODOO_PASSWORD_ACME")


@pytest.mark.database
@pytest.mark.parametrize("flag, value, message", [
    ("--odoo-password-env", "OPENAI_API_KEY", "--odoo-password-env must name an environment variable with "
                                              "ODOO_PASSWORD as a word"),
    ("--odoo-password-env", "DATABASE_URL", "--odoo-password-env must name an environment variable"),
    ("--odoo-url", "http://crm.tenant-controlled.example", "--odoo-url must use https"),
    ("--odoo-url", "https://admin:pw@crm.acme.sg", "--odoo-url must not carry credentials"),
])
def test_tenant_add_refuses_a_connection_that_could_leak_a_secret(db_env, admin, capsys, flag, value, message):
    args = {"--odoo-url": "https://crm.acme.sg", "--odoo-password-env": "ODOO_PASSWORD_ACME", flag: value}
    code = main(["tenant", "add", "--name", "Acme", "--odoo-db", "acme", "--odoo-user", "admin",
                 *[part for pair in args.items() for part in pair]])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "admin:pw" not in err
    assert admin.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0
