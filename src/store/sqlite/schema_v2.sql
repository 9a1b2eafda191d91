-- ltx-serve SQLite schema, version 2: remote workers.
-- The LoRA set of each job (sorted style ids with strengths), so a worker that has it resident
-- can be preferred.
ALTER TABLE jobs ADD COLUMN style_key TEXT NOT NULL DEFAULT '';

CREATE TABLE worker_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE workers (
    name      TEXT PRIMARY KEY,
    info      TEXT NOT NULL,
    last_seen INTEGER NOT NULL
);
