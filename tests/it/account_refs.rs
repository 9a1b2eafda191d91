//! On PostgreSQL, that jobs and ledger rows name an existing account is checked once per
//! statement by triggers (schema_account_refs.sql), not by per-row foreign keys. These tests
//! hold the triggers to what the foreign keys promised, with raw SQL from another connection:
//! no row naming a missing account, no account deleted or re-keyed while rows name it, and
//! no race between an insert and a delete, either way round, that leaves a job without its
//! account.
use crate::helpers::*;
use sqlx::{Connection, PgConnection};
use std::time::Duration;
use uuid::Uuid;

/// A replica on `db` with one account and one job of it: (app, account id, job id).
async fn one_job(db: &crate::pg::TestDatabase) -> (TestApp, Uuid, Uuid) {
    let app = TestApp::start_with(|c| {
        c.database_url = Some(db.url.clone());
        c.workers = 0;
    })
    .await;
    let acct = app.account("5").await;
    let job = app.submit_ok(&acct.key, quick("a lighthouse")).await;
    (app, acct.id, job_id(&job).parse().unwrap())
}

/// A bare account row (no keys, no jobs), as an operator's SQL might add one.
async fn bare_account(conn: &mut PgConnection) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO accounts (id, name, max_concurrent, max_backlog, webhook_secret, created_at) \
         VALUES ($1, 'bare', 1, 1, 's', 0)",
    )
    .bind(id)
    .execute(conn)
    .await
    .unwrap();
    id
}

/// Inserts copies of job `model`, one naming each of `accounts`, in one statement.
async fn copy_job(conn: &mut PgConnection, model: Uuid, accounts: &[Uuid]) -> Result<u64, sqlx::Error> {
    sqlx::query("DROP TABLE IF EXISTS copied").execute(&mut *conn).await?;
    sqlx::query("CREATE TEMP TABLE copied AS SELECT j.*, a AS named FROM jobs j, unnest($2::uuid[]) a WHERE j.id = $1")
        .bind(model)
        .bind(accounts)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE copied SET id = gen_random_uuid(), account_id = named").execute(&mut *conn).await?;
    sqlx::query("ALTER TABLE copied DROP COLUMN named").execute(&mut *conn).await?;
    let done = sqlx::query("INSERT INTO jobs SELECT * FROM copied").execute(&mut *conn).await;
    done.map(|d| d.rows_affected())
}

/// The SQLSTATE and constraint of a failed statement.
fn refused<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> (String, String) {
    match result {
        Err(sqlx::Error::Database(e)) => {
            (e.code().unwrap_or_default().into_owned(), e.constraint().unwrap_or_default().to_owned())
        }
        other => panic!("expected a database error, got {other:?}"),
    }
}

/// A foreign-key violation of `constraint`, as the foreign keys the triggers replace reported.
fn violates(constraint: &str) -> (String, String) {
    ("23503".to_owned(), constraint.to_owned())
}

/// A new connection and its backend's pid.
async fn connect_with_pid(url: &str) -> (PgConnection, i32) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await.unwrap();
    (conn, pid)
}

/// Waits until backend `pid` waits for a lock, failing if `task` ends first (it went ahead).
async fn until_waiting_for_a_lock<T>(observer: &mut PgConnection, pid: i32, task: &tokio::task::JoinHandle<T>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(!task.is_finished(), "the statement went ahead instead of waiting for the other transaction");
        let waiting: bool = sqlx::query_scalar(
            "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_one(&mut *observer)
        .await
        .unwrap();
        if waiting {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the statement neither waited nor ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn jobs_and_ledger_rows_must_name_an_existing_account() {
    let db = crate::pg::TestDatabase::create().await;
    let (_app, account, job) = one_job(&db).await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let missing = Uuid::new_v4();

    assert_eq!(copy_job(&mut conn, job, &[account, account]).await.unwrap(), 2, "rows naming the account go in");
    // One bad row among good ones fails the whole statement.
    assert_eq!(refused(copy_job(&mut conn, job, &[account, missing, account]).await), violates("jobs_account_id_fkey"));
    let ledger = |who: Uuid| {
        sqlx::query("INSERT INTO ledger (account_id, kind, amount, created_at) VALUES ($1, 'credit', 1, 0)").bind(who)
    };
    ledger(account).execute(&mut conn).await.unwrap();
    assert_eq!(refused(ledger(missing).execute(&mut conn).await), violates("ledger_account_id_fkey"));

    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    assert_eq!(count("SELECT count(*) FROM jobs").fetch_one(&mut conn).await.unwrap(), 3);
    let orphans = "SELECT (SELECT count(*) FROM jobs WHERE account_id NOT IN (SELECT id FROM accounts)) \
                   + (SELECT count(*) FROM ledger WHERE account_id NOT IN (SELECT id FROM accounts))";
    assert_eq!(count(orphans).fetch_one(&mut conn).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn an_account_its_rows_name_can_be_neither_deleted_nor_rekeyed_and_a_row_never_changes_account() {
    let db = crate::pg::TestDatabase::create().await;
    let (_app, account, job) = one_job(&db).await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    // Its keys (still under a foreign key) go first, so only the jobs and ledger hold it.
    sqlx::query("DELETE FROM api_keys WHERE account_id = $1").bind(account).execute(&mut conn).await.unwrap();

    let delete = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(account).execute(&mut conn).await;
    assert_eq!(refused(delete), violates("jobs_account_id_fkey"));
    let rekey = sqlx::query("UPDATE accounts SET id = $2 WHERE id = $1").bind(account).bind(Uuid::new_v4());
    assert_eq!(refused(rekey.execute(&mut conn).await), violates("jobs_account_id_fkey"));
    // Other updates of the account are untouched by the guard.
    sqlx::query("UPDATE accounts SET name = 'renamed', id = id WHERE id = $1")
        .bind(account)
        .execute(&mut conn)
        .await
        .unwrap();

    let other = bare_account(&mut conn).await;
    let moved = sqlx::query("UPDATE jobs SET account_id = $2 WHERE id = $1").bind(job).bind(other);
    assert_eq!(refused(moved.execute(&mut conn).await), violates("jobs_account_id_fkey"));
    let moved = sqlx::query("UPDATE ledger SET account_id = $2 WHERE account_id = $1").bind(account).bind(other);
    assert_eq!(refused(moved.execute(&mut conn).await), violates("ledger_account_id_fkey"));

    // Without its jobs, the ledger still holds the account.
    sqlx::query("DELETE FROM jobs WHERE account_id = $1").bind(account).execute(&mut conn).await.unwrap();
    let delete = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(account).execute(&mut conn).await;
    assert_eq!(refused(delete), violates("ledger_account_id_fkey"));

    // An account nothing names can go, but only where the check sees every committed row.
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut conn).await.unwrap();
    let delete = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(other).execute(&mut conn).await;
    assert_eq!(refused(delete).0, "0A000");
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    let gone = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(other).execute(&mut conn).await.unwrap();
    assert_eq!(gone.rows_affected(), 1);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn an_account_cannot_be_deleted_under_an_insert_that_names_it() {
    let db = crate::pg::TestDatabase::create().await;
    let (_app, _account, job) = one_job(&db).await;
    let mut inserter = PgConnection::connect(&db.url).await.unwrap();
    let mut observer = PgConnection::connect(&db.url).await.unwrap();
    let target = bare_account(&mut inserter).await;

    // A job naming the account, not yet committed: its statement has seen the account exist.
    sqlx::query("BEGIN").execute(&mut inserter).await.unwrap();
    copy_job(&mut inserter, job, &[target]).await.unwrap();

    // The delete sees no job of the account yet; it must wait for the inserter, not go ahead.
    let (mut deleter, pid) = connect_with_pid(&db.url).await;
    let delete = tokio::spawn(async move {
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(target)
            .execute(&mut deleter)
            .await
            .map(|d| d.rows_affected())
    });
    until_waiting_for_a_lock(&mut observer, pid, &delete).await;

    sqlx::query("COMMIT").execute(&mut inserter).await.unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(10), delete).await.unwrap().unwrap();
    assert_eq!(refused(deleted), violates("jobs_account_id_fkey"));
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs j JOIN accounts a ON a.id = j.account_id WHERE a.id = $1")
            .bind(target)
            .fetch_one(&mut inserter)
            .await
            .unwrap();
    assert_eq!(kept, 1, "the job and its account are both there");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn an_insert_naming_an_account_being_deleted_waits_and_is_refused() {
    let db = crate::pg::TestDatabase::create().await;
    let (_app, _account, job) = one_job(&db).await;
    let mut deleter = PgConnection::connect(&db.url).await.unwrap();
    let mut observer = PgConnection::connect(&db.url).await.unwrap();
    let target = bare_account(&mut deleter).await;

    sqlx::query("BEGIN").execute(&mut deleter).await.unwrap();
    sqlx::query("DELETE FROM accounts WHERE id = $1").bind(target).execute(&mut deleter).await.unwrap();

    // The insert still sees the account; it must wait for the delete's outcome, then refuse.
    let (mut inserter, pid) = connect_with_pid(&db.url).await;
    let insert = tokio::spawn(async move { copy_job(&mut inserter, job, &[target]).await });
    until_waiting_for_a_lock(&mut observer, pid, &insert).await;

    sqlx::query("COMMIT").execute(&mut deleter).await.unwrap();
    let inserted = tokio::time::timeout(Duration::from_secs(10), insert).await.unwrap().unwrap();
    assert_eq!(refused(inserted), violates("jobs_account_id_fkey"));
    let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE account_id = $1")
        .bind(target)
        .fetch_one(&mut deleter)
        .await
        .unwrap();
    assert_eq!(orphans, 0);
}

/// Migration 12 undone: the database as the previous release left it, holding its jobs.
const BACK_TO_VERSION_11: &str = "
    DROP TRIGGER jobs_name_accounts ON jobs; DROP TRIGGER ledger_name_accounts ON ledger;
    DROP TRIGGER jobs_account_stays ON jobs; DROP TRIGGER ledger_account_stays ON ledger;
    DROP TRIGGER accounts_deleted_unreferenced ON accounts; DROP TRIGGER accounts_rekeyed_unreferenced ON accounts;
    DROP FUNCTION ltx_rows_name_accounts(); DROP FUNCTION ltx_account_stays(); DROP FUNCTION ltx_account_unreferenced();
    ALTER TABLE jobs ADD CONSTRAINT jobs_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts(id);
    ALTER TABLE ledger ADD CONSTRAINT ledger_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts(id);
    DELETE FROM ltx_schema_version WHERE version = 12;";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn the_upgrade_waits_out_an_open_transaction_without_stalling_the_replica_still_running() {
    let db = crate::pg::TestDatabase::create().await;
    let (running, owner, job) = one_job(&db).await;
    let acct = running.account("5").await;
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(BACK_TO_VERSION_11).execute(&mut conn).await.unwrap();

    // A long transaction that has read jobs: the migration's ALTER TABLE cannot have the table
    // until it ends.
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("SELECT count(*) FROM jobs").execute(&mut conn).await.unwrap();
    let upgrade = ltx_serve::store::postgres::PgStore::connect(&db.url);
    tokio::pin!(upgrade);

    // Meanwhile the running replica's submits (inserts into jobs) go through, each within a few
    // of the migration's lock timeouts: its ALTER TABLE, seen queued for the table, does not hold
    // them up for as long as the transaction lasts.
    let mut observer = PgConnection::connect(&db.url).await.unwrap();
    let period = Duration::from_secs(5);
    let submits = async {
        let started = std::time::Instant::now();
        while started.elapsed() < period {
            let submit = running.submit(&acct.key, quick("during the upgrade"));
            let answered = tokio::time::timeout(Duration::from_secs(4), submit).await;
            assert_eq!(answered.expect("a submit stalled behind the migration").status(), 200);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let alter_queued = async {
        let (started, mut seen) = (std::time::Instant::now(), false);
        while started.elapsed() < period {
            seen |= sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'jobs'::regclass \
                 AND mode = 'AccessExclusiveLock' AND NOT granted)",
            )
            .fetch_one(&mut observer)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    };
    tokio::select! {
        done = &mut upgrade => panic!("the upgrade finished under a transaction holding jobs: {:?}", done.err()),
        ((), seen) = async { tokio::join!(submits, alter_queued) } => {
            assert!(seen, "the migration was never seen waiting for the jobs table");
        }
    }

    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    let store = tokio::time::timeout(Duration::from_secs(20), upgrade).await.unwrap().unwrap();
    let version: i32 =
        sqlx::query_scalar("SELECT max(version) FROM ltx_schema_version").fetch_one(&mut conn).await.unwrap();
    assert_eq!(version, 12);
    // The upgraded schema holds the jobs written before and during it, and checks new ones.
    use ltx_serve::store::Jobs;
    assert!(store.job(owner, job).await.unwrap().is_some());
    assert_eq!(refused(copy_job(&mut conn, job, &[Uuid::new_v4()]).await), violates("jobs_account_id_fkey"));
    let fks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE conname IN ('jobs_account_id_fkey', 'ledger_account_id_fkey')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(fks, 0);
}
