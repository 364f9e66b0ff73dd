-- Whose turn it is to send a request to each registrable domain, shared by every crawling process and
-- host that uses this database: tenant runs started by the schedule, a backfill or run_nightly.py all
-- space their requests to one site through these rows. Times are this server's clock
-- (clock_timestamp()), never a crawling host's. Neither tenant nor run is recorded: a site's turn is
-- the same for everyone.
--
-- A holder sends at most one request per turn and ends the turn when the request has ended. Its lease
-- covers the wait for its start and the longest a request may take; a holder that died keeps the
-- domain only until the lease expires, and the next request then counts its interval from the expiry
-- (the dead holder's request may have reached the site just before it).
--
-- UNLOGGED: a row matters for seconds, so it is not worth a WAL write per request; a server crash
-- empties the table, which at worst lets one request per domain start early after the restart.
CREATE UNLOGGED TABLE domain_politeness (
    domain            text PRIMARY KEY,
    last_end          timestamptz,
    last_interval_s   double precision NOT NULL DEFAULT 0 CHECK (last_interval_s >= 0),
    holder            text,
    lease_expires_at  timestamptz,
    lease_s           double precision CHECK (lease_s > 0),
    CHECK ((holder IS NULL) = (lease_expires_at IS NULL) AND (holder IS NULL) = (lease_s IS NULL))
);

COMMENT ON COLUMN domain_politeness.last_end IS 'when the last request to the domain ended (server clock)';
COMMENT ON COLUMN domain_politeness.last_interval_s IS 'the spacing that request asked for after its end';
COMMENT ON COLUMN domain_politeness.holder IS 'the crawling process whose turn it is (host/pid/random), if any';
COMMENT ON COLUMN domain_politeness.lease_expires_at IS 'until then only the holder may send to the domain';
COMMENT ON COLUMN domain_politeness.lease_s IS 'the length of the holder''s lease, counted from its turn''s start';

GRANT SELECT, INSERT, UPDATE, DELETE ON domain_politeness TO {app_role};
