-- ltx-serve PostgreSQL schema: a change that moves a job in the FIFO queue says how, so that a
-- replica patches its copy of the queue's head (job_cache.rs) instead of reading it again. A
-- fleet's queue moves with every lease and every hand-back; with a deep queue, reading the head
-- once per move (a walk of its first entries in `jobs_queue`) was what polls of queued jobs
-- waited on.
--
-- Per changed job, what `ltx_jobs` carries:
--   <id>                      its JSON changed, no line moved (progress; running → completed)
--   <id>m<left>/<entered>     it entered or left a line: it left the FIFO queue (was queued at
--                             <left>, µs) and/or entered it (is queued at <entered>); either side
--                             empty when it was/is not queued (a backlog moved: a backlogged
--                             job's place is read again anyway)
-- and `*` when the payload would pass NOTIFY's 8000 bytes.
CREATE OR REPLACE FUNCTION ltx_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    SELECT string_agg(n.id::text || CASE
               WHEN o.status IS NOT DISTINCT FROM n.status AND o.queued_at IS NOT DISTINCT FROM n.queued_at THEN ''
               WHEN o.status IN ('queued', 'backlogged') OR n.status IN ('queued', 'backlogged') THEN
                   'm' || CASE WHEN o.status = 'queued' THEN coalesce(o.queued_at::text, '') ELSE '' END
                   || '/' || CASE WHEN n.status = 'queued' THEN coalesce(n.queued_at::text, '') ELSE '' END
               ELSE '' END, ',')
      INTO payload
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
    IF octet_length(payload) > 7900 THEN
        PERFORM ltx_announce_jobs('*');
    ELSE
        PERFORM ltx_announce_jobs(payload);
    END IF;
    RETURN NULL;
END $$;

-- New jobs: a submit batch (submit_rows.rs) knows each job's queued time before it writes, and
-- announces its jobs itself in that form (`<id>m/<entered>`); it sets `ltx.inserts_announced`
-- for the rest of the statement, and the insert trigger then adds nothing. Any other insert (the
-- one-by-one path, the admin CLI, a raw statement) still announces only `Q`.
CREATE FUNCTION ltx_announce_inserted(payload text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('ltx.inserts_announced', 'on', true);
    PERFORM ltx_announce_jobs(payload);
END $$;

CREATE OR REPLACE FUNCTION ltx_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- (AFTER STATEMENT triggers run once the whole statement has, its SELECT list included)
    IF current_setting('ltx.inserts_announced', true) = 'on' THEN
        PERFORM set_config('ltx.inserts_announced', 'off', true);
    ELSE
        PERFORM pg_notify('ltx_jobs', 'Q');
    END IF;
    RETURN NULL;
END $$;
