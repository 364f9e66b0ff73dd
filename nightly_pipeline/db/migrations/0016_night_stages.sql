-- Each stage of a tenant's night as the product recorded it: when it started and ended, how it ended,
-- its counters and the error that ended it. The Dagster event log holds the same times, but it is
-- pruned, lives in another database and knows nothing of tenants; operators read this table.
CREATE TABLE enrichment_run_stages (
    tenant_id    int NOT NULL,
    run_id       uuid NOT NULL,
    stage        text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    counters     jsonb NOT NULL DEFAULT '{}'::jsonb,
    error        text,
    attempts     int NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, run_id, stage),
    FOREIGN KEY (tenant_id, run_id) REFERENCES enrichment_runs (tenant_id, run_id) ON DELETE CASCADE
);
SELECT enable_tenant_isolation('enrichment_run_stages');
GRANT SELECT, INSERT, UPDATE, DELETE ON enrichment_run_stages TO {app_role};

-- The process running the night now (host:pid), so the next run of the tenant can tell a night whose
-- worker was killed from one still in flight.
ALTER TABLE enrichment_runs ADD COLUMN worker text;

-- One alert per night and outcome: a sensor tick, the failure sensor and the stage that finished the
-- night may all see the same outcome; the first to insert the row sends it.
CREATE TABLE night_alerts (
    tenant_id  int NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    run_date   date NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('failed', 'partial', 'sla_missed')),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    PRIMARY KEY (tenant_id, run_date, outcome)
);
SELECT enable_tenant_isolation('night_alerts');
GRANT SELECT, INSERT, UPDATE, DELETE ON night_alerts TO {app_role};
