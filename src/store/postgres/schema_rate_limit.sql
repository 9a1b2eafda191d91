-- ltx-serve PostgreSQL schema: per-account request rate limits.
-- The account's own limit of API requests per key and minute; NULL follows the operator's
-- default (--rate-limit-per-minute), 0 is no limit. Read with the key (api_keys join accounts),
-- so the key cache answers it on every request.
ALTER TABLE accounts ADD COLUMN rate_limit_per_minute bigint CHECK (rate_limit_per_minute >= 0);
-- The API replicas sharing this database: each says every few seconds that it is alive and
-- counts the others, to enforce its share of the rate limits (api/rate_limit.rs).
CREATE TABLE api_replicas (
    id      uuid PRIMARY KEY,
    seen_at bigint NOT NULL
);
