-- Every change to a job a client can see — its row, or its webhook's deliveries — is announced on
-- `ltx_jobs` when its transaction commits, so each replica's job cache (job_cache.rs) drops it.
-- Triggers rather than calls in the code: a change made by any path (a replica, a worker's
-- report, the sweeper, the admin CLI in another process) cannot forget to announce itself.
-- Statement-level, so a batch of submits sends one notification: the changed ids separated by
-- commas, each followed by `q` when the job may have entered, left or moved in a queue (other
-- jobs' places in line then change), or `*` when a statement changed too many rows to name
-- within NOTIFY's 8000-byte payload.
CREATE FUNCTION ltx_announce_jobs(payload text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('ltx_jobs', payload) WHERE payload IS NOT NULL AND payload <> ''
$$;

CREATE FUNCTION ltx_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM new_rows) > 150 THEN
        PERFORM ltx_announce_jobs('*');
    ELSE
        PERFORM ltx_announce_jobs((SELECT string_agg(id::text || 'q', ',') FROM new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ltx_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text[];
BEGIN
    SELECT array_agg(n.id::text || CASE WHEN o.status IS DISTINCT FROM n.status
                                           OR o.queued_at IS DISTINCT FROM n.queued_at
                                         THEN 'q' ELSE '' END)
      INTO changed
      FROM new_rows n JOIN old_rows o ON o.id = n.id
     -- what a client sees (rows.rs JOB_COLUMNS, and queued_at for places in line): a heartbeat
     -- that only extends a lease, or a sweeper's claim, announces nothing
     WHERE (o.status, o.queued_at, o.started_at, o.completed_at, o.progress, o.attempts, o.engine,
            o.result, o.error_code, o.error_message, o.results_expired_at, o.request, o.webhook_url,
            o.price, o.price_tier, o.seed, o.width, o.height, o.kind, o.created_at, o.account_id)
        IS DISTINCT FROM
           (n.status, n.queued_at, n.started_at, n.completed_at, n.progress, n.attempts, n.engine,
            n.result, n.error_code, n.error_message, n.results_expired_at, n.request, n.webhook_url,
            n.price, n.price_tier, n.seed, n.width, n.height, n.kind, n.created_at, n.account_id);
    IF cardinality(changed) > 150 THEN
        PERFORM ltx_announce_jobs('*');
    ELSE
        PERFORM ltx_announce_jobs(array_to_string(changed, ','));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ltx_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM old_rows) > 150 THEN
        PERFORM ltx_announce_jobs('*');
    ELSE
        PERFORM ltx_announce_jobs((SELECT string_agg(id::text || 'q', ',') FROM old_rows));
    END IF;
    RETURN NULL;
END $$;

-- A webhook delivery's state is part of its job's JSON.
CREATE FUNCTION ltx_deliveries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM new_rows) > 150 THEN
        PERFORM ltx_announce_jobs('*');
    ELSE
        PERFORM ltx_announce_jobs((SELECT string_agg(DISTINCT job_id::text, ',') FROM new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_announce_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ltx_jobs_inserted();
CREATE TRIGGER jobs_announce_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ltx_jobs_updated();
CREATE TRIGGER jobs_announce_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ltx_jobs_deleted();
CREATE TRIGGER deliveries_announce_insert AFTER INSERT ON webhook_deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ltx_deliveries_changed();
CREATE TRIGGER deliveries_announce_update AFTER UPDATE ON webhook_deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ltx_deliveries_changed();
CREATE TRIGGER deliveries_announce_delete AFTER DELETE ON webhook_deliveries
    REFERENCING OLD TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ltx_deliveries_changed();
