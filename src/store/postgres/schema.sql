-- ltx-serve PostgreSQL schema, version 1: the SQLite schema's tables with native types where
-- they help (uuid), times as microseconds since the Unix epoch from the database's own clock
-- (one clock for every replica and worker), money as integer micro-dollars.
CREATE FUNCTION ltx_now_us() RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint $$;

CREATE TABLE accounts (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    balance         bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    held            bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    max_concurrent  integer NOT NULL CHECK (max_concurrent >= 1),
    max_backlog     integer NOT NULL CHECK (max_backlog >= 0),
    active_jobs     integer NOT NULL DEFAULT 0 CHECK (active_jobs >= 0),
    backlogged_jobs integer NOT NULL DEFAULT 0 CHECK (backlogged_jobs >= 0),
    webhook_secret  text NOT NULL,
    created_at      bigint NOT NULL
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts(id),
    secret_hash text NOT NULL,
    label       text,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);

CREATE TABLE ledger (
    id         bigserial PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts(id),
    kind       text NOT NULL CHECK (kind IN ('credit', 'hold', 'charge', 'release')),
    amount     bigint NOT NULL,
    job_id     uuid,
    note       text,
    created_at bigint NOT NULL
);
CREATE INDEX ledger_account ON ledger(account_id, id);

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts(id),
    kind             text NOT NULL,
    status           text NOT NULL,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    queued_at        bigint,
    started_at       bigint,
    completed_at     bigint,
    request          text NOT NULL,
    -- sorted style ids of the request (the LoRA set a worker must have resident)
    style_key        text NOT NULL DEFAULT '',
    seed             bigint NOT NULL,
    width            integer NOT NULL,
    height           integer NOT NULL,
    price            bigint NOT NULL,
    price_tier       integer NOT NULL,
    hold             bigint NOT NULL,
    progress         double precision NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    engine           text,
    worker           text,
    lease_id         uuid,
    lease_expires_at bigint,
    result           text,
    error_code       text,
    error_message    text,
    webhook_url      text
);
CREATE INDEX jobs_account_created ON jobs(account_id, created_at);
CREATE INDEX jobs_account_status ON jobs(account_id, status, created_at);
-- the work queue and the leased set stay small however many jobs have finished
CREATE INDEX jobs_queue ON jobs(queued_at) WHERE status = 'queued';
CREATE INDEX jobs_leased ON jobs(lease_expires_at)
    WHERE status IN ('scheduled', 'processing', 'sampling', 'intermediate-complete');

CREATE TABLE webhook_deliveries (
    id              text PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES jobs(id),
    account_id      uuid NOT NULL REFERENCES accounts(id),
    url             text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    last_status     integer,
    last_error      text,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_job ON webhook_deliveries(job_id);

CREATE TABLE idempotency_keys (
    account_id  uuid NOT NULL REFERENCES accounts(id),
    key         text NOT NULL,
    fingerprint text NOT NULL,
    job_id      uuid NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (account_id, key)
);

CREATE TABLE styles (
    id         text PRIMARY KEY,
    account_id uuid REFERENCES accounts(id),
    title      text,
    public     boolean NOT NULL DEFAULT false,
    created_at bigint NOT NULL
);

-- Remote workers: tokens (hashed like API keys) and the registry of live workers.
CREATE TABLE worker_tokens (
    id          uuid PRIMARY KEY,
    secret_hash text NOT NULL,
    label       text,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);

CREATE TABLE workers (
    name       text PRIMARY KEY,
    info       text NOT NULL,
    last_seen  bigint NOT NULL
);
