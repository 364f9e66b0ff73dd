"""Each stage of a tenant's night (``enrichment_run_stages``), the night's live status and worker, and
the alerts sent about it (``night_alerts``), in the tenant's transaction (``Database.tenant``)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import psycopg
from psycopg.types.json import Jsonb


@dataclasses.dataclass(frozen=True)
class StageRecord:
    stage: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    counters: dict
    error: str | None
    attempts: int


def start_stage(conn: psycopg.Connection, run_id: uuid.UUID, stage: str, *, dagster_run_id: str | None,
                worker: str) -> None:
    """The stage began (again): the night runs, in this worker, with no outcome yet."""
    conn.execute("""
        INSERT INTO enrichment_run_stages (run_id, stage) VALUES (%s, %s)
        ON CONFLICT (tenant_id, run_id, stage) DO UPDATE
        SET started_at = now(), finished_at = NULL, status = 'running', error = NULL,
            attempts = enrichment_run_stages.attempts + 1""", (run_id, stage))
    mark_running(conn, run_id, dagster_run_id=dagster_run_id, worker=worker)


def mark_running(conn: psycopg.Connection, run_id: uuid.UUID, *, dagster_run_id: str | None, worker: str) -> None:
    conn.execute("""UPDATE enrichment_runs
                    SET status = 'running', finished_at = NULL, error_summary = NULL, worker = %s,
                        dagster_run_id = coalesce(%s, dagster_run_id)
                    WHERE tenant_id = current_tenant_id() AND run_id = %s""", (worker, dagster_run_id, run_id))


def end_stage(conn: psycopg.Connection, run_id: uuid.UUID, stage: str, status: str, counters: dict | None,
              error: str | None) -> None:
    conn.execute("""UPDATE enrichment_run_stages
                    SET finished_at = now(), status = %s, counters = coalesce(%s, counters), error = %s
                    WHERE tenant_id = current_tenant_id() AND run_id = %s AND stage = %s""",
                 (status, Jsonb(counters) if counters is not None else None, error, run_id, stage))


def fail_open_stages(conn: psycopg.Connection, run_id: uuid.UUID, error: str) -> list[str]:
    """End every stage still marked running as failed (its worker is gone); the stages named."""
    rows = conn.execute("""UPDATE enrichment_run_stages SET finished_at = now(), status = 'failed', error = %s
                           WHERE tenant_id = current_tenant_id() AND run_id = %s AND status = 'running'
                           RETURNING stage""", (error, run_id)).fetchall()
    return [r["stage"] for r in rows]


def stages(conn: psycopg.Connection, run_id: uuid.UUID) -> list[StageRecord]:
    rows = conn.execute("""SELECT stage, started_at, finished_at, status, counters, error, attempts
                           FROM enrichment_run_stages
                           WHERE tenant_id = current_tenant_id() AND run_id = %s
                           ORDER BY started_at, stage""", (run_id,)).fetchall()
    return [StageRecord(**r) for r in rows]


def running_stage(conn: psycopg.Connection, run_id: uuid.UUID) -> str | None:
    row = conn.execute("""SELECT stage FROM enrichment_run_stages
                          WHERE tenant_id = current_tenant_id() AND run_id = %s AND status = 'running'
                          ORDER BY started_at DESC LIMIT 1""", (run_id,)).fetchone()
    return row["stage"] if row else None


@dataclasses.dataclass(frozen=True)
class LiveNight:
    run_id: uuid.UUID
    run_date: dt.date
    status: str
    dagster_run_id: str | None
    worker: str | None
    error_summary: str | None
    finished_at: dt.datetime | None


def night_state(conn: psycopg.Connection, run_date: dt.date) -> LiveNight | None:
    row = conn.execute("""SELECT run_id, run_date, status, dagster_run_id, worker, error_summary, finished_at
                          FROM enrichment_runs WHERE tenant_id = current_tenant_id() AND run_date = %s""",
                       (run_date,)).fetchone()
    return LiveNight(**row) if row else None


def nights_by_dagster_run(conn: psycopg.Connection, dagster_run_id: str) -> list[LiveNight]:
    rows = conn.execute("""SELECT run_id, run_date, status, dagster_run_id, worker, error_summary, finished_at
                           FROM enrichment_runs
                           WHERE tenant_id = current_tenant_id() AND dagster_run_id = %s""",
                        (dagster_run_id,)).fetchall()
    return [LiveNight(**r) for r in rows]


def unfinished_nights(conn: psycopg.Connection) -> list[LiveNight]:
    rows = conn.execute("""SELECT run_id, run_date, status, dagster_run_id, worker, error_summary, finished_at
                           FROM enrichment_runs
                           WHERE tenant_id = current_tenant_id() AND status IN ('selected', 'running')
                           ORDER BY run_date""").fetchall()
    return [LiveNight(**r) for r in rows]


def finished_nights_since(conn: psycopg.Connection, since: dt.date) -> list[LiveNight]:
    rows = conn.execute("""SELECT run_id, run_date, status, dagster_run_id, worker, error_summary, finished_at
                           FROM enrichment_runs
                           WHERE tenant_id = current_tenant_id() AND run_date >= %s
                             AND status IN ('failed', 'partial') ORDER BY run_date""", (since,)).fetchall()
    return [LiveNight(**r) for r in rows]


def fail_night(conn: psycopg.Connection, run_id: uuid.UUID, error_summary: str, *,
               only_if_unfinished: bool = True) -> bool:
    """Mark the night failed (an unfinished one only, unless told otherwise); whether it changed."""
    row = conn.execute("""UPDATE enrichment_runs SET status = 'failed', error_summary = %s, finished_at = now()
                          WHERE tenant_id = current_tenant_id() AND run_id = %s
                            AND (NOT %s OR status IN ('selected', 'running'))
                          RETURNING run_id""", (error_summary, run_id, only_if_unfinished)).fetchone()
    return row is not None


def claim_alert(conn: psycopg.Connection, run_date: dt.date, outcome: str) -> bool:
    """Take the right to send this night's alert for ``outcome``; False when it is taken already."""
    row = conn.execute("""INSERT INTO night_alerts (run_date, outcome) VALUES (%s, %s)
                          ON CONFLICT (tenant_id, run_date, outcome) DO NOTHING RETURNING outcome""",
                       (run_date, outcome)).fetchone()
    return row is not None


def alert_sent(conn: psycopg.Connection, run_date: dt.date, outcome: str) -> None:
    conn.execute("""UPDATE night_alerts SET sent_at = now()
                    WHERE tenant_id = current_tenant_id() AND run_date = %s AND outcome = %s""",
                 (run_date, outcome))


def release_alert(conn: psycopg.Connection, run_date: dt.date, outcome: str) -> None:
    """The alert could not be delivered: a later tick may try again."""
    conn.execute("""DELETE FROM night_alerts
                    WHERE tenant_id = current_tenant_id() AND run_date = %s AND outcome = %s AND sent_at IS NULL""",
                 (run_date, outcome))


def alerts(conn: psycopg.Connection, run_date: dt.date) -> dict[str, dt.datetime | None]:
    rows = conn.execute("""SELECT outcome, sent_at FROM night_alerts
                           WHERE tenant_id = current_tenant_id() AND run_date = %s""", (run_date,)).fetchall()
    return {r["outcome"]: r["sent_at"] for r in rows}


@dataclasses.dataclass(frozen=True)
class NightOutcome:
    """What decides a finished night's status: degradations and per-company or per-record failures."""
    degradations: int
    crawl_errors: int
    odoo_errors: int
    failed_stages: tuple[str, ...]


def night_outcome(conn: psycopg.Connection, run_id: uuid.UUID) -> NightOutcome:
    row = conn.execute("""
        SELECT jsonb_array_length(r.degradations) AS degradations,
               (SELECT count(*) FROM company_enrichment_runs c
                 WHERE c.tenant_id = r.tenant_id AND c.run_id = r.run_id AND c.outcome = 'error') AS crawl_errors,
               (SELECT count(*) FROM (SELECT DISTINCT ON (company_id) error FROM odoo_sync_log l
                                      WHERE l.tenant_id = r.tenant_id AND l.run_id = r.run_id
                                      ORDER BY company_id, log_id DESC) last_try
                 WHERE error IS NOT NULL) AS odoo_errors,
               (SELECT coalesce(array_agg(s.stage ORDER BY s.started_at), '{}') FROM enrichment_run_stages s
                 WHERE s.tenant_id = r.tenant_id AND s.run_id = r.run_id AND s.status = 'failed') AS failed_stages
        FROM enrichment_runs r WHERE r.tenant_id = current_tenant_id() AND r.run_id = %s""", (run_id,)).fetchone()
    return NightOutcome(row["degradations"], row["crawl_errors"], row["odoo_errors"], tuple(row["failed_stages"]))


def end_stage_counters(conn: psycopg.Connection, run_id: uuid.UUID, stage: str, counters: dict) -> None:
    """The stage's counters (a stage run outside ``TenantNight.stage`` has no row to update)."""
    conn.execute("""UPDATE enrichment_run_stages SET counters = %s
                    WHERE tenant_id = current_tenant_id() AND run_id = %s AND stage = %s""",
                 (Jsonb(counters), run_id, stage))
