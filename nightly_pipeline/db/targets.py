"""ICP candidates and the nightly run manifests in ``enrichment_runs``, in the tenant's transaction
(``Database.tenant``), which names the tenant."""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import psycopg
from psycopg.types.json import Jsonb

from nightly_pipeline.domain.icp import IcpMatch
from nightly_pipeline.domain.targets import Candidate, Target


@dataclasses.dataclass(frozen=True)
class CandidateCounts:
    current: int
    added: int
    removed: int


def replace_icp_candidates(conn: psycopg.Connection, matches: list[IcpMatch], refreshed_on: dt.date) -> CandidateCounts:
    """Make the tenant's candidate set exactly ``matches`` (with their reasons)."""
    ids = [m.company_id for m in matches]
    removed = conn.execute("""DELETE FROM icp_candidate_companies
                              WHERE tenant_id = current_tenant_id() AND NOT (company_id = ANY(%s))""",
                           (ids,)).rowcount
    added = 0
    if matches:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO icp_candidate_companies (company_id, match_score, reasons, refreshed_on)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (tenant_id, company_id) DO UPDATE SET match_score = excluded.match_score,
                       reasons = excluded.reasons, refreshed_on = excluded.refreshed_on, refreshed_at = now()
                   RETURNING (xmax = 0) AS inserted""",
                [(m.company_id, m.score, Jsonb(list(m.reasons)), refreshed_on) for m in matches],
                returning=True)
            while True:
                row = cur.fetchone()
                added += bool(row and row["inserted"])
                if not cur.nextset():
                    break
    return CandidateCounts(current=len(matches), added=added, removed=removed)


def candidates_with_history(conn: psycopg.Connection, run_date: dt.date) -> list[Candidate]:
    """Candidates with the last date an earlier manifest of this tenant selected them, and what
    that visit left: whether its crawl failed or was degraded, whether a contact was found, and
    whether the primary contact's address has a verdict."""
    rows = conn.execute("""
        WITH history AS (
            SELECT unnest(selected_company_ids) AS company_id, max(run_date) AS last_targeted_on
            FROM enrichment_runs WHERE tenant_id = current_tenant_id() AND run_date < %(d)s GROUP BY 1),
        last_crawl AS (
            SELECT DISTINCT ON (r.company_id) r.company_id, (r.outcome = 'error' OR r.degraded) AS incomplete
            FROM company_enrichment_runs r JOIN enrichment_runs e USING (tenant_id, run_id)
            WHERE r.tenant_id = current_tenant_id() AND e.run_date < %(d)s
            ORDER BY r.company_id, e.run_date DESC)
        SELECT c.company_id, c.match_score, h.last_targeted_on,
               coalesce(lc.incomplete, h.company_id IS NOT NULL) AS crawl_incomplete,
               EXISTS (SELECT 1 FROM contacts ct WHERE ct.tenant_id = current_tenant_id()
                       AND ct.company_id = c.company_id) AS has_contact,
               EXISTS (SELECT 1 FROM contacts ct JOIN email_verification_cache v
                              ON v.tenant_id = ct.tenant_id AND v.email = ct.email
                       WHERE ct.tenant_id = current_tenant_id() AND ct.company_id = c.company_id
                         AND ct.is_primary) AS primary_verified
        FROM icp_candidate_companies c LEFT JOIN history h USING (company_id)
        LEFT JOIN last_crawl lc USING (company_id)
        WHERE c.tenant_id = current_tenant_id() ORDER BY c.company_id""", {"d": run_date}).fetchall()
    return [Candidate(r["company_id"], float(r["match_score"]), r["last_targeted_on"],
                      crawl_incomplete=r["crawl_incomplete"], has_contact=r["has_contact"],
                      primary_verified=r["primary_verified"]) for r in rows]


@dataclasses.dataclass(frozen=True)
class Manifest:
    tenant_id: int
    run_id: uuid.UUID
    run_date: dt.date
    selected_company_ids: list[int]
    target_reasons: dict[str, str]
    caps: dict
    budget_snapshot: dict
    dagster_run_id: str | None
    status: str
    created: bool = False

    @property
    def company_ids_to_process(self) -> list[int]:
        """The targets the current run works on: all, or the first ``run_limit`` of them."""
        limit = self.caps.get("run_limit")
        return list(self.selected_company_ids if limit is None else self.selected_company_ids[:int(limit)])


def get_manifest(conn: psycopg.Connection, run_date: dt.date) -> Manifest | None:
    row = conn.execute("""SELECT tenant_id, run_id, run_date, selected_company_ids, target_reasons, caps,
                                 budget_snapshot, dagster_run_id, status
                          FROM enrichment_runs WHERE tenant_id = current_tenant_id() AND run_date = %s""",
                       (run_date,)).fetchone()
    return Manifest(**row) if row else None


def get_manifest_by_run_id(conn: psycopg.Connection, run_id: uuid.UUID) -> Manifest | None:
    row = conn.execute("""SELECT tenant_id, run_id, run_date, selected_company_ids, target_reasons, caps,
                                 budget_snapshot, dagster_run_id, status
                          FROM enrichment_runs WHERE tenant_id = current_tenant_id() AND run_id = %s""",
                       (run_id,)).fetchone()
    return Manifest(**row) if row else None


def create_manifest(conn: psycopg.Connection, run_date: dt.date, targets: list[Target], caps: dict,
                    budget_snapshot: dict, dagster_run_id: str | None) -> Manifest:
    """Record tonight's choice, or return the one already recorded for this tenant and date."""
    run_id = uuid.uuid4()
    reasons = {str(t.company_id): t.reason for t in targets}
    row = conn.execute("""
        INSERT INTO enrichment_runs (run_id, run_date, selected_company_ids, target_reasons, caps, budget_snapshot,
                                     dagster_run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (tenant_id, run_date) DO NOTHING
        RETURNING run_id""",
        (run_id, run_date, [t.company_id for t in targets], Jsonb(reasons), Jsonb(caps),
         Jsonb(budget_snapshot), dagster_run_id)).fetchone()
    manifest = get_manifest(conn, run_date)
    assert manifest is not None
    return dataclasses.replace(manifest, created=row is not None)


def set_run_limit(conn: psycopg.Connection, run_id: uuid.UUID, limit: int | None) -> None:
    """How many of the manifest's targets (in their order) the current run processes; ``None``: all.
    The manifest's own choice is kept, so a later run without a limit processes all of it."""
    conn.execute("""UPDATE enrichment_runs SET caps = CASE WHEN %(limit)s::int IS NULL THEN caps - 'run_limit'
                                                     ELSE caps || jsonb_build_object('run_limit', %(limit)s::int) END
                    WHERE tenant_id = current_tenant_id() AND run_id = %(run_id)s""",
                 {"limit": limit, "run_id": run_id})


def record_step(conn: psycopg.Connection, run_id: uuid.UUID, step: str, counters: dict,
                status: str | None = None) -> None:
    conn.execute("""UPDATE enrichment_runs
                    SET step_counters = step_counters || jsonb_build_object(%s::text, %s::jsonb),
                        status = coalesce(%s, status)
                    WHERE tenant_id = current_tenant_id() AND run_id = %s""",
                 (step, Jsonb(counters), status, run_id))


def record_degradations(conn: psycopg.Connection, run_id: uuid.UUID, step: str, causes: list[str]) -> None:
    """Name every degradation of a step in the run's record (replacing that step's earlier ones)."""
    conn.execute("""UPDATE enrichment_runs
                    SET degradations = (SELECT coalesce(jsonb_agg(d), '[]'::jsonb)
                                        FROM jsonb_array_elements(degradations) d
                                        WHERE d ->> 'step' IS DISTINCT FROM %s)
                                       || %s::jsonb
                    WHERE tenant_id = current_tenant_id() AND run_id = %s""",
                 (step, Jsonb([{"step": step, "cause": c} for c in causes]), run_id))


def finish_run(conn: psycopg.Connection, run_id: uuid.UUID, status: str, error_summary: str | None = None) -> None:
    conn.execute("""UPDATE enrichment_runs SET status = %s, error_summary = %s, finished_at = now()
                    WHERE tenant_id = current_tenant_id() AND run_id = %s""", (status, error_summary, run_id))
