-- ltx-serve PostgreSQL schema: a submit batch may be decided on rows read without locks and
-- written in one statement that commits by itself (submit_batch.rs): two round trips instead
-- of a transaction's four. Its statement updates each account only where the row is still the
-- version it read (`xmin`), and calls this with whether every one was: when another
-- transaction changed an account meanwhile, the statement fails as a serialization failure,
-- nothing of it is kept, and the batch runs again under locks.
CREATE FUNCTION ltx_conflict_unless(ok boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'an account of the submit batch changed after it was read'
            USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
