-- ltx-serve SQLite schema: per-account request rate limits.
-- The account's own limit of API requests per key and minute; NULL follows the operator's
-- default (--rate-limit-per-minute), 0 is no limit. Read with the key (api_keys join accounts),
-- so the key cache answers it on every request.
ALTER TABLE accounts ADD COLUMN rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute >= 0);
