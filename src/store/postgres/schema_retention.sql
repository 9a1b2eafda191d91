-- Retention (src/retention): when a finished job's result files were deleted and a sweeper's
-- claim on them; a sweeper's claim on an asset; and the deleted result directories, so that
-- their URLs answer 410 Gone rather than 404. The new columns are nullable without a default:
-- adding them rewrites no row.
ALTER TABLE jobs ADD COLUMN results_expired_at bigint;
ALTER TABLE jobs ADD COLUMN results_claimed_until bigint;
-- only the finished jobs whose result is still stored: the sweep reads the oldest of them
CREATE INDEX jobs_results_due ON jobs(completed_at) WHERE result IS NOT NULL AND results_expired_at IS NULL;
ALTER TABLE assets ADD COLUMN retention_claimed_until bigint;
CREATE INDEX assets_uploaded ON assets(uploaded_at);
CREATE TABLE expired_results (
    -- the 32-hex directory of the result's files (`/results/<dir>/…`)
    result_dir text PRIMARY KEY,
    job_id     uuid NOT NULL,
    expired_at bigint NOT NULL
);
