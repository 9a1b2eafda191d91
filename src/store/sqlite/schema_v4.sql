-- ltx-serve SQLite schema, version 4: per-account storage quotas for uploads.
-- Running totals of what an account's assets and styles take, changed by the same transaction
-- that inserts or deletes one of those rows: the quota check reads one row instead of summing
-- the account's uploads, and that row is what concurrent uploads of one account serialise on.
ALTER TABLE accounts ADD COLUMN storage_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN storage_files INTEGER NOT NULL DEFAULT 0;
-- The account's own quota; NULL follows the operator's default, 0 is no limit.
ALTER TABLE accounts ADD COLUMN storage_bytes_quota INTEGER;
ALTER TABLE accounts ADD COLUMN storage_files_quota INTEGER;
UPDATE accounts SET
    storage_bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM assets WHERE account_id = accounts.id)
                  + (SELECT COALESCE(SUM(size_bytes), 0) FROM styles WHERE account_id = accounts.id),
    storage_files = (SELECT COUNT(*) FROM assets WHERE account_id = accounts.id)
                  + (SELECT COUNT(*) FROM styles WHERE account_id = accounts.id);
