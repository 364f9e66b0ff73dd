"""Vendor budgets hold under concurrency: reservations never add up past the cap."""
import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from nightly_pipeline.db import tenants as tenants_db
from nightly_pipeline.db.budget import BudgetExhausted, Scope, VendorBudget
from nightly_pipeline.db.targets import create_manifest

pytestmark = pytest.mark.database
DAY = dt.date(2026, 6, 1)


@pytest.fixture
def budget(db):
    with db.shared() as conn:
        tenant = tenants_db.register_tenant(conn, "acme", None)
    with db.tenant(tenant) as conn:
        manifest = create_manifest(conn, DAY, [], caps={}, budget_snapshot={}, dagster_run_id=None)
    return VendorBudget(db, tenant, manifest.run_id)


def test_32_concurrent_workers_never_overspend(budget):
    def attempt(_):
        try:
            reservation = budget.reserve("tavily", "/extract", 1, cap=10)
        except BudgetExhausted:
            return False
        budget.settle(reservation, charged=1, status="ok")
        return True

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(attempt, range(64)))
    assert sum(outcomes) == 10
    assert budget.usage()["tavily"] == {"calls": 10, "charged": 10, "reserved": 10}
    assert budget.remaining("tavily", cap=10) == 0


def test_open_reservations_count_and_settling_low_frees_budget(budget):
    first = budget.reserve("openai", "chat", 600, cap=1000, scope=Scope.DAY)
    with pytest.raises(BudgetExhausted) as err:
        budget.reserve("openai", "chat", 600, cap=1000, scope=Scope.DAY)
    assert (err.value.remaining, err.value.cap) == (400, 1000)
    budget.settle(first, charged=150, status="ok")
    assert budget.remaining("openai", cap=1000, scope=Scope.DAY) == 850
    budget.reserve("openai", "chat", 600, cap=1000, scope=Scope.DAY)


def test_caps_are_per_run_for_run_scope_and_per_day_for_day_scope(budget, db):
    budget.settle(budget.reserve("lusha", "enrich", 5, cap=5), charged=5, status="ok")
    budget.settle(budget.reserve("openai", "chat", 900, cap=1000, scope=Scope.DAY), charged=900, status="ok")
    with db.tenant(budget.tenant_id) as conn:
        other = create_manifest(conn, DAY + dt.timedelta(days=1), [], caps={},
                                budget_snapshot={}, dagster_run_id=None)
    next_run = VendorBudget(db, budget.tenant_id, other.run_id)
    assert next_run.remaining("lusha", cap=5) == 5
    assert next_run.remaining("openai", cap=1000, scope=Scope.DAY) == 100


def test_budgets_are_per_tenant(budget, db):
    with db.shared() as conn:
        other_tenant = tenants_db.register_tenant(conn, "globex", None)
    budget.settle(budget.reserve("zerobounce", "validatebatch", 3, cap=3), charged=3, status="ok")
    other = VendorBudget(db, other_tenant, uuid.uuid4())
    assert other.remaining("zerobounce", cap=3) == 3
