"""What the API answers when what it stands on is gone: 503, and nothing about why beyond that."""
import dagster as dg
import pytest
from fastapi.testclient import TestClient

from nightly_pipeline.api.app import ApiServices, create_app
from nightly_pipeline.db import Database
from nightly_pipeline.settings import load_settings

pytestmark = pytest.mark.database


class UnloadedCodeLocation:
    """A launcher whose code location failed to load (the real one needs a code server process)."""

    def code_location_loaded(self) -> bool:
        return False


def test_healthz_and_every_route_answer_503_without_details_when_the_database_is_gone(db_target):
    database = Database(db_target, max_size=1)
    database.close()
    with dg.instance_for_test() as instance:
        app = create_app(ApiServices(settings=load_settings({}), db=database, instance=instance,
                                     launcher=UnloadedCodeLocation()))
        with TestClient(app) as client:
            health = client.get("/healthz")
            assert health.status_code == 503
            assert health.json() == {"status": "unavailable", "database": "unreachable", "dagster_instance": "ok",
                                     "code_location": "unavailable"}
            runs = client.get("/admin/runs", headers={"Authorization": "Bearer npa_anything"})
            assert runs.status_code == 503
            assert runs.json() == {"detail": "the database is unavailable; try again later"}
    assert db_target.app_url not in health.text + runs.text
