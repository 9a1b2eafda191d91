//! On PostgreSQL, that jobs and ledger rows name an existing account is checked once per
//! statement by triggers (schema_account_refs.sql), not by per-row foreign keys. These tests
//! hold the triggers to what the foreign keys promised, with raw SQL from another connection:
//! no row naming a missing account, no account deleted or re-keyed while rows name it, and
//! no race between an insert and a delete that leaves a job without its account.
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

/// The SQLSTATE of a failed statement ("" when it did not fail as a database error).
fn sqlstate<T: std::fmt::Debug>(result: Result<T, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(e)) => e.code().unwrap_or_default().into_owned(),
        other => panic!("expected a database error, got {other:?}"),
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
    assert_eq!(sqlstate(copy_job(&mut conn, job, &[account, missing, account]).await), "23503");
    let ledger = |who: Uuid| {
        sqlx::query("INSERT INTO ledger (account_id, kind, amount, created_at) VALUES ($1, 'credit', 1, 0)").bind(who)
    };
    ledger(account).execute(&mut conn).await.unwrap();
    assert_eq!(sqlstate(ledger(missing).execute(&mut conn).await), "23503");

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
    assert_eq!(sqlstate(delete), "23503");
    let rekey = sqlx::query("UPDATE accounts SET id = $2 WHERE id = $1").bind(account).bind(Uuid::new_v4());
    assert_eq!(sqlstate(rekey.execute(&mut conn).await), "23503");
    // Other updates of the account are untouched by the guard.
    sqlx::query("UPDATE accounts SET name = 'renamed', id = id WHERE id = $1")
        .bind(account)
        .execute(&mut conn)
        .await
        .unwrap();

    let other = bare_account(&mut conn).await;
    let moved = sqlx::query("UPDATE jobs SET account_id = $2 WHERE id = $1").bind(job).bind(other);
    assert_eq!(sqlstate(moved.execute(&mut conn).await), "23503");
    let moved = sqlx::query("UPDATE ledger SET account_id = $2 WHERE account_id = $1").bind(account).bind(other);
    assert_eq!(sqlstate(moved.execute(&mut conn).await), "23503");

    // An account nothing names can go.
    let gone = sqlx::query("DELETE FROM accounts WHERE id = $1").bind(other).execute(&mut conn).await.unwrap();
    assert_eq!(gone.rows_affected(), 1);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn an_account_cannot_be_deleted_under_an_insert_that_names_it() {
    let db = crate::pg::TestDatabase::create().await;
    let (_app, _account, job) = one_job(&db).await;
    let mut inserter = PgConnection::connect(&db.url).await.unwrap();
    let target = bare_account(&mut inserter).await;

    // A job naming the account, not yet committed: its statement has seen the account exist.
    sqlx::query("BEGIN").execute(&mut inserter).await.unwrap();
    copy_job(&mut inserter, job, &[target]).await.unwrap();

    // The delete sees no job of the account yet; it must wait for the inserter, not go ahead.
    let url = db.url.clone();
    let delete = tokio::spawn(async move {
        let mut deleter = PgConnection::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(target)
            .execute(&mut deleter)
            .await
            .map(|d| d.rows_affected())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!delete.is_finished(), "the delete went ahead under an uncommitted job naming the account");

    sqlx::query("COMMIT").execute(&mut inserter).await.unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(10), delete).await.unwrap().unwrap();
    assert_eq!(sqlstate(deleted), "23503");
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs j JOIN accounts a ON a.id = j.account_id WHERE a.id = $1")
            .bind(target)
            .fetch_one(&mut inserter)
            .await
            .unwrap();
    assert_eq!(kept, 1, "the job and its account are both there");
}
