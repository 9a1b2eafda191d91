-- Retention (src/retention): when a finished job's result files were deleted and a sweeper's
-- claim on them; a sweeper's claim on an asset; and the deleted result directories, so that
-- their URLs answer 410 Gone rather than 404.
ALTER TABLE jobs ADD COLUMN results_expired_at INTEGER;
ALTER TABLE jobs ADD COLUMN results_claimed_until INTEGER;
-- only the finished jobs whose result is still stored: the sweep reads the oldest of them
CREATE INDEX jobs_results_due ON jobs(completed_at) WHERE result IS NOT NULL AND results_expired_at IS NULL;
ALTER TABLE assets ADD COLUMN retention_claimed_until INTEGER;
CREATE INDEX assets_uploaded ON assets(uploaded_at);
CREATE TABLE expired_results (
    -- the 32-hex directory of the result's files (`/results/<dir>/…`)
    result_dir TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expired_at INTEGER NOT NULL
);
