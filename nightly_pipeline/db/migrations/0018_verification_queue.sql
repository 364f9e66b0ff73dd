-- Addresses waiting for a ZeroBounce batch, pooled across every tenant run of the night: ZeroBounce
-- allows 5 `validatebatch` calls a minute per key, so a run that sends only its own few addresses
-- spends a whole call on them. A run queues the addresses it pays for; whichever run gets the key's
-- next batch slot takes up to 200 of the oldest queued addresses (its own or not), sends them, and
-- marks each row with how it ended; the run that queued an address reads and deletes its row.
-- Like the other public-fact tables there is no row-level security and no column that names a tenant
-- or a run: who queued an address is known only to that run's process, and who paid is in its
-- vendor_usage rows, under RLS.
--
-- state: 'queued' waits for a taker; 'taken' is in a batch until lease_until (a taker that dies
-- leaves rows a later taker takes again); 'verified' has a verdict in public_email_verifications;
-- 'delayed' (an outage) and 'refused' (ZeroBounce refused the address) stay unverified tonight.
-- charged: ZeroBounce billed the address (every result but `unknown`, and a call that may have been
-- processed when its answer was lost).
CREATE TABLE public_verification_queue (
    email        text PRIMARY KEY CHECK (email = lower(email)),
    queued_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    state        text NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'taken', 'verified', 'delayed', 'refused')),
    lease_until  timestamptz,
    attempts     int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    charged      boolean NOT NULL DEFAULT false,
    reason       text,
    ended_at     timestamptz,
    CHECK ((state = 'taken') = (lease_until IS NOT NULL)),
    CHECK ((state IN ('queued', 'taken')) = (ended_at IS NULL))
);
-- Takers read the oldest waiting rows.
CREATE INDEX public_verification_queue_waiting_idx ON public_verification_queue (queued_at, email)
    WHERE state IN ('queued', 'taken');

GRANT SELECT, INSERT, UPDATE, DELETE ON public_verification_queue TO {app_role};
