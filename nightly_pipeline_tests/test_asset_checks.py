"""The verdicts of the night's asset checks (the checks against a real night are in stages/)."""
import dagster as dg

from nightly_pipeline.asset_checks import spend_result, sync_failures_result


def test_odoo_failures_warn_on_some_and_error_on_all():
    assert sync_failures_result(4, 0).passed
    some = sync_failures_result(4, 1)
    assert (some.passed, some.severity) == (False, dg.AssetCheckSeverity.WARN)
    every = sync_failures_result(4, 4)
    assert (every.passed, every.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert sync_failures_result(0, 0).passed


def test_spend_over_a_cap_is_an_error_and_an_uncapped_vendor_is_not():
    assert spend_result({"tavily": 5, "lusha": 2}, {"tavily": 5, "lusha": None}).passed
    over = spend_result({"tavily": 6, "openai": 10}, {"tavily": 5, "openai": 100})
    assert (over.passed, over.severity, over.description) == (False, dg.AssetCheckSeverity.ERROR, "tavily 6 > cap 5")
