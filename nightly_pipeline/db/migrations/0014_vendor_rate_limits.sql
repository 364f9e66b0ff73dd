-- Vendor rate limits are per API key, not per tenant: every process using a key counts its calls
-- here, so three tenant runs together keep the key's limit instead of each keeping it alone.
-- A key is stored only as the SHA-256 of its vendor and its value (never the key itself), and no
-- tenant or run is recorded: this is account-wide bookkeeping, so no row-level security.

-- One row per admitted call (weight: 1 for a request, the tokens for a token limit), counted over
-- each rolling window of the limit.
CREATE TABLE vendor_rate_calls (
    key_sha256  bytea NOT NULL CHECK (length(key_sha256) = 32),
    bucket      text NOT NULL CHECK (bucket ~ '^[a-z0-9_.-]{1,64}$'),
    called_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    weight      bigint NOT NULL DEFAULT 1 CHECK (weight > 0)
);
CREATE INDEX vendor_rate_calls_window_idx ON vendor_rate_calls (key_sha256, bucket, called_at);

-- A vendor's block of a key (ZeroBounce blocks a key that exceeds its batch limit): until it lifts
-- no process calls that bucket.
CREATE TABLE vendor_key_blocks (
    key_sha256     bytea NOT NULL CHECK (length(key_sha256) = 32),
    bucket         text NOT NULL CHECK (bucket ~ '^[a-z0-9_.-]{1,64}$'),
    blocked_until  timestamptz NOT NULL,
    reason         text NOT NULL DEFAULT '',
    PRIMARY KEY (key_sha256, bucket)
);

GRANT SELECT, INSERT, DELETE ON vendor_rate_calls TO {app_role};
GRANT SELECT, INSERT, UPDATE, DELETE ON vendor_key_blocks TO {app_role};
