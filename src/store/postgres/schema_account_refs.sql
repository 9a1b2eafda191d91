-- ltx-serve PostgreSQL schema: that every job and ledger row names an existing account is checked
-- once per statement instead of once per row. A submit batch inserts up to 64 jobs and as many
-- ledger rows for a handful of accounts, and the two foreign keys' per-row checks (one
-- `SELECT … FOR KEY SHARE` each) were the largest single cost of a batch row: 9.5 of its 42 µs
-- (bench/RESULTS.md, 2026-12-02 night). The triggers below keep what the foreign keys promised,
-- under READ COMMITTED (what ltx-serve runs at):
-- - an insert naming a missing account fails with foreign_key_violation (23503), as before;
-- - the accounts an insert names are locked FOR KEY SHARE, as a foreign key's check locks them,
--   so none can be deleted or have its id changed before that transaction ends;
-- - an account that jobs or ledger rows name cannot be deleted or have its id changed: checked
--   after the statement, as a foreign key's NO ACTION is, holding the row's lock, so the check
--   sees what a concurrent inserter committed. Under REPEATABLE READ or SERIALIZABLE the check's
--   snapshot could miss such rows, so there an account is not deleted or re-keyed at all;
-- - stricter than the foreign keys: a job's or ledger row's account never changes.
-- All are AFTER triggers: a BEFORE UPDATE row trigger would make every update of these tables
-- lock its row first, whatever the trigger's column list and WHEN say. TRUNCATE and
-- `DISABLE TRIGGER` go around them (as TRUNCATE … CASCADE would have emptied jobs and ledger).
ALTER TABLE jobs DROP CONSTRAINT jobs_account_id_fkey;
ALTER TABLE ledger DROP CONSTRAINT ledger_account_id_fkey;

CREATE FUNCTION ltx_rows_name_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named uuid[];
    locked bigint;
BEGIN
    named := ARRAY(SELECT DISTINCT account_id FROM added);
    PERFORM 1 FROM accounts WHERE id = ANY(named) FOR KEY SHARE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < cardinality(named) THEN
        RAISE EXCEPTION 'insert on table "%" names an account that does not exist', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_TABLE_NAME || '_account_id_fkey',
                  TABLE = TG_TABLE_NAME;
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
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_TABLE_NAME || '_account_id_fkey',
              TABLE = TG_TABLE_NAME;
END $$;

CREATE TRIGGER jobs_account_stays AFTER UPDATE OF account_id ON jobs
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id) EXECUTE FUNCTION ltx_account_stays();
CREATE TRIGGER ledger_account_stays AFTER UPDATE OF account_id ON ledger
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id) EXECUTE FUNCTION ltx_account_stays();

CREATE FUNCTION ltx_account_unreferenced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    naming text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'accounts are deleted or re-keyed under READ COMMITTED only'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF EXISTS (SELECT 1 FROM jobs WHERE account_id = OLD.id) THEN
        naming := 'jobs';
    ELSIF EXISTS (SELECT 1 FROM ledger WHERE account_id = OLD.id) THEN
        naming := 'ledger';
    ELSE
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'account % is still named by rows of "%"', OLD.id, naming
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = naming || '_account_id_fkey', TABLE = naming;
END $$;

CREATE TRIGGER accounts_deleted_unreferenced AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ltx_account_unreferenced();
CREATE TRIGGER accounts_rekeyed_unreferenced AFTER UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION ltx_account_unreferenced();
