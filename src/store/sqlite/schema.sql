-- ltx-serve SQLite schema, version 1. Times are microseconds since the Unix epoch (UTC);
-- money is integer micro-dollars.
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    balance        INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    held           INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    max_concurrent INTEGER NOT NULL CHECK (max_concurrent >= 1),
    max_backlog    INTEGER NOT NULL CHECK (max_backlog >= 0),
    -- jobs holding a slot (queued … intermediate-complete) and jobs backlogged: kept by every
    -- transition so a submit checks its limits without counting rows
    active_jobs    INTEGER NOT NULL DEFAULT 0 CHECK (active_jobs >= 0),
    backlogged_jobs INTEGER NOT NULL DEFAULT 0 CHECK (backlogged_jobs >= 0),
    -- Standard Webhooks signing secret (`whsec_…`)
    webhook_secret TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    secret_hash TEXT NOT NULL,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Every movement of money: balance = Σcredit − Σcharge; held = Σhold − Σcharge − Σrelease.
CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    kind       TEXT NOT NULL CHECK (kind IN ('credit', 'hold', 'charge', 'release')),
    amount     INTEGER NOT NULL,
    job_id     TEXT,
    note       TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX ledger_account ON ledger(account_id, id);

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts(id),
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    -- when the job last entered `queued`: the global FIFO order of the work queue
    queued_at        INTEGER,
    started_at       INTEGER,
    completed_at     INTEGER,
    request          TEXT NOT NULL,
    seed             INTEGER NOT NULL,
    width            INTEGER NOT NULL,
    height           INTEGER NOT NULL,
    price            INTEGER NOT NULL,
    price_tier       INTEGER NOT NULL,
    -- the part of `price` still reserved (0 once charged or released)
    hold             INTEGER NOT NULL,
    progress         REAL NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    engine           TEXT,
    worker           TEXT,
    lease_id         TEXT,
    lease_expires_at INTEGER,
    result           TEXT,
    error_code       TEXT,
    error_message    TEXT,
    webhook_url      TEXT
);
CREATE INDEX jobs_account_created ON jobs(account_id, created_at);
CREATE INDEX jobs_account_status ON jobs(account_id, status, created_at);
CREATE INDEX jobs_queue ON jobs(status, queued_at);

-- The webhook outbox: written in the transaction that makes a job terminal, so no crash loses
-- a delivery. `id` is the Standard Webhooks message id (stable across retries).
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL REFERENCES jobs(id),
    account_id      TEXT NOT NULL REFERENCES accounts(id),
    url             TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries(job_id);

-- Idempotency-Key of submits: a key maps to the job it created, for a window.
CREATE TABLE idempotency_keys (
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE TABLE styles (
    id         TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts(id),
    title      TEXT,
    public     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
