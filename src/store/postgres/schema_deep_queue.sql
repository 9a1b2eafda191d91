-- ltx-serve PostgreSQL schema: listing an account's jobs by type stays a short index walk
-- however many jobs of other types the account has (jobs.rs `list` walks it once per type and
-- merges).
CREATE INDEX jobs_account_kind ON jobs(account_id, kind, created_at);
