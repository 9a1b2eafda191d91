-- ltx-serve PostgreSQL schema: that every job and ledger row names an existing account is checked
-- once per statement instead of once per row. A submit batch inserts up to 64 jobs and as many
-- ledger rows for a handful of accounts, and the two foreign keys' per-row checks (one
-- `SELECT … FOR KEY SHARE` each) were the largest single cost of a batch row: 9.5 of its 42 µs
-- (bench/RESULTS.md, 2026-12-02 night). The triggers below keep what the foreign keys promised:
-- - an insert naming a missing account fails with foreign_key_violation (23503), as before;
-- - the accounts a statement names are locked FOR KEY SHARE, as a foreign key's check locks
--   them, so none can be deleted or have its id changed before that transaction ends;
-- - an account that jobs or ledger rows name cannot be deleted or have its id changed (the
--   check runs after the row lock, so it sees what a concurrent inserter committed);
-- - a job's or ledger row's account never changes.
ALTER TABLE jobs DROP CONSTRAINT jobs_account_id_fkey;
ALTER TABLE ledger DROP CONSTRAINT ledger_account_id_fkey;

CREATE FUNCTION ltx_rows_name_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named bigint;
    locked bigint;
BEGIN
    SELECT count(DISTINCT account_id) INTO named FROM added;
    PERFORM 1 FROM accounts WHERE id IN (SELECT account_id FROM added) FOR KEY SHARE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < named THEN
        RAISE EXCEPTION 'insert on table "%" names an account that does not exist', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_name_accounts AFTER INSERT ON jobs REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION ltx_rows_name_accounts();
CREATE TRIGGER ledger_name_accounts AFTER INSERT ON ledger REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION ltx_rows_name_accounts();

CREATE FUNCTION ltx_account_stays() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the account of a row of "%" cannot change', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END $$;

CREATE TRIGGER jobs_account_stays BEFORE UPDATE OF account_id ON jobs
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id) EXECUTE FUNCTION ltx_account_stays();
CREATE TRIGGER ledger_account_stays BEFORE UPDATE OF account_id ON ledger
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id) EXECUTE FUNCTION ltx_account_stays();

CREATE FUNCTION ltx_account_unreferenced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM jobs WHERE account_id = OLD.id) OR EXISTS (SELECT 1 FROM ledger WHERE account_id = OLD.id) THEN
        RAISE EXCEPTION 'account % is still named by its jobs or ledger', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER accounts_deleted_unreferenced BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ltx_account_unreferenced();
CREATE TRIGGER accounts_renamed_unreferenced BEFORE UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION ltx_account_unreferenced();
