-- ltx-serve PostgreSQL schema: the operator's HTTP API (admin tokens) and suspended accounts.
-- Admin tokens are stored like worker tokens: the id and a SHA-256 of the secret, never the secret.
CREATE TABLE admin_tokens (
    id          uuid PRIMARY KEY,
    secret_hash text NOT NULL,
    label       text,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);
-- A suspended account's API keys are refused (403 `account_suspended`); its data is kept.
ALTER TABLE accounts ADD COLUMN suspended boolean NOT NULL DEFAULT false;
-- Listing accounts newest first pages by creation time.
CREATE INDEX accounts_by_creation ON accounts (created_at, id);
