-- ltx-serve SQLite schema: the operator's HTTP API (admin tokens) and suspended accounts.
-- Admin tokens are stored like worker tokens: the id and a SHA-256 of the secret, never the secret.
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
-- A suspended account's API keys are refused (403 `account_suspended`); its data is kept.
ALTER TABLE accounts ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
-- Listing accounts newest first pages by creation time.
CREATE INDEX accounts_by_creation ON accounts (created_at, id);
