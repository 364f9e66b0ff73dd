import pytest

from nightly_pipeline.settings import SettingsError, load_settings


def test_defaults_follow_the_requirements():
    s = load_settings({})
    assert s.sched_enabled is True
    assert s.sched_start_cron == "0 1 * * *"
    assert (s.sched_tenant_concurrency, s.sched_company_concurrency) == (3, 8)
    assert s.daily_cap == 20
    assert s.score_min_export == 0.66
    assert (s.openai_daily_tokens_cap, s.tavily_max_queries, s.lusha_max_contact_lookups,
            s.zerobounce_max_verifications) == (150_000, 800, 500, 1_000)
    assert s.crawler_schemes == ["https", "http"]
    assert s.crawler_domain_min_interval_s == 0.5
    assert s.crawler_allow_private_networks is False
    assert s.database_url is None
    assert s.dagster_home.name == ".nightly_pipeline"


def test_shortlist_cap_is_an_alias_that_wins():
    assert load_settings({"SCHED_DAILY_CAP_PER_TENANT": "15"}).daily_cap == 15
    assert load_settings({"SHORTLIST_DAILY_CAP": "7", "SCHED_DAILY_CAP_PER_TENANT": "15"}).daily_cap == 7


def test_lists_are_comma_separated():
    s = load_settings({"SCHED_TENANT_INCLUDE": "3, 1", "LUSHA_PREFERRED_TITLES": "CEO, Head of Sales",
                       "CRAWLER_SCHEMES": "HTTP"})
    assert s.sched_tenant_include == [3, 1]
    assert s.lusha_preferred_titles == ["CEO", "Head of Sales"]
    assert s.crawler_schemes == ["http"]


@pytest.mark.parametrize("env, expected", [
    ({"SCHED_TENANT_CONCURRENCY": "three"}, "SCHED_TENANT_CONCURRENCY: expected an integer, got 'three'"),
    ({"SCHED_TENANT_CONCURRENCY": "0"}, "SCHED_TENANT_CONCURRENCY: expected a number >= 1"),
    ({"TAVILY_MAX_QUERIES": "lots"}, "TAVILY_MAX_QUERIES: expected an integer"),
    ({"SCHED_START_CRON": "0 25 * * *"}, "SCHED_START_CRON: expected a five-field cron expression"),
    ({"CRAWLER_SCHEMES": "https,ftp"}, "CRAWLER_SCHEMES: expected a comma-separated list of http/https"),
    ({"SCHED_ENABLED": "sometimes"}, "SCHED_ENABLED: expected true or false"),
    ({"SCORE_MIN_EXPORT": "1.5"}, "SCORE_MIN_EXPORT: expected a number <= 1.0"),
    ({"CRAWLER_DOMAIN_MIN_INTERVAL_S": "0.2"}, "CRAWLER_DOMAIN_MIN_INTERVAL_S: expected a number of seconds >= 0.5"),
    ({"SCHED_TENANT_EXCLUDE": "1,acme"}, "SCHED_TENANT_EXCLUDE: expected a comma-separated list of positive tenant ids"),
    ({"SCHED_TENANT_INCLUDE": "2", "SCHED_TENANT_EXCLUDE": "2"}, "SCHED_TENANT_INCLUDE and SCHED_TENANT_EXCLUDE"),
    ({"CRAWLER_TIMEOUT_S": "soon"}, "CRAWLER_TIMEOUT_S: expected a number"),
])
def test_malformed_values_stop_with_one_line_naming_the_variable(env, expected):
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    message = str(err.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_secrets_never_print():
    s = load_settings({"OPENAI_API_KEY": "sk-very-secret", "DATABASE_URL": "postgresql://u:pw-secret@h/db"})
    assert s.secret("openai_api_key") == "sk-very-secret"
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "sk-very-secret" not in text and "pw-secret" not in text


def test_bad_database_url_value_is_not_echoed():
    with pytest.raises(SettingsError) as err:
        load_settings({"DATABASE_URL": "postgresql://u:pw-secret@h/db", "DATABASE_APP_ROLE": "Not A Role"})
    assert "pw-secret" not in str(err.value)


def test_skip_steps_and_staleness():
    settings = load_settings({"SKIP_STEPS": " Tavily,odoo_sync,tavily ", "STALE_AFTER_DAYS": "7"})
    assert settings.skip_steps == ["tavily", "odoo_sync"]
    assert settings.skips("tavily") and not settings.skips("lusha")
    assert settings.stale_after_days == 7
    defaults = load_settings({})
    assert defaults.skip_steps == [] and defaults.stale_after_days == 30
    with pytest.raises(ValueError, match="not a step SKIP_STEPS can name"):
        defaults.skips("crawl")


@pytest.mark.parametrize(("env", "message"), [
    ({"SKIP_STEPS": "lusha,crawl"}, "SKIP_STEPS: expected a comma-separated list of tavily, lusha, zerobounce, "
                                    "extraction, odoo_sync, got unknown 'crawl'"),
    ({"STALE_AFTER_DAYS": "-1"}, "STALE_AFTER_DAYS: expected a number >= 0"),
])
def test_bad_controls_are_refused_naming_the_variable(env, message):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(message)
