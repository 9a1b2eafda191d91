//! SQLite behind threads: one writer that commits every waiting operation in one transaction
//! (group commit: one fsync for many submits), and a few readers. Callers are async and never
//! block the runtime. A reply is sent only after the transaction holding it has committed.
use super::super::{StoreError, StoreResult};
use super::wal_guard::{self, WalGuard};
use rusqlite::Connection;
use std::path::Path;
use tokio::sync::oneshot;

/// Handed to write operations: the connection inside an open transaction, and a clock that
/// never repeats so `created_at` orders jobs strictly (cursor pagination relies on it).
pub struct WriteCtx<'c> {
    pub conn: &'c Connection,
    clock: &'c mut MonotonicMicros,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl WriteCtx<'_> {
    pub fn now_us(&mut self) -> i64 {
        self.clock.next()
    }
    /// Runs `f` only if the transaction commits (cache updates, wake-ups).
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }
}

pub struct MonotonicMicros {
    last: i64,
}

impl MonotonicMicros {
    pub fn starting_after(last: i64) -> Self {
        MonotonicMicros { last }
    }
    fn next(&mut self) -> i64 {
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64;
        self.last = now.max(self.last + 1);
        self.last
    }
}

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs an operation in the writer's transaction and says how it went (its error, written out),
/// or, given no transaction (it is gone), only makes its reply; the reply is then called with
/// whether the batch committed.
type Operation = Box<dyn FnOnce(Option<&mut WriteCtx>) -> (Result<(), String>, Reply) + Send>;

/// An operation for the writer, and whether it runs in a savepoint of its own.
struct WriteOp {
    run: Operation,
    savepoint: bool,
}
type ReadOp = Box<dyn FnOnce(&Connection) + Send>;

/// Most operations committed together; bounds the latency of the first one in a batch.
const MAX_BATCH: usize = 256;

pub struct Actors {
    writer: flume::Sender<WriteOp>,
    readers: flume::Sender<ReadOp>,
}

impl Actors {
    /// `on_commit` runs after every committed batch, before any caller hears back.
    pub fn start(
        path: &Path,
        readers: usize,
        clock: MonotonicMicros,
        on_commit: impl Fn() + Send + 'static,
    ) -> StoreResult<Actors> {
        let (write_tx, write_rx) = flume::unbounded::<WriteOp>();
        let conn = super::open(path)?;
        // Checkpoints copy the WAL back into the database file; run on the writer they stall
        // every commit waiting behind it, so a thread of their own does them instead.
        // Most operations run in a savepoint, whose sub-journal (the pages it changed, as they
        // were) SQLite spills to a temporary file past 64 KiB: a submit's job, indexes, hold and
        // ledger rows often get there, and then every page went through pwrite, a fifth of the
        // writer's time under submits (perf). In memory it is at most one operation's pages.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY").map_err(super::sql_err)?;
        let wal = WalGuard::new(path, wal_guard::RESTART_AT);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, write_rx, clock, on_commit, wal))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let checkpointer = super::open(path)?;
        let closed = write_tx.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, closed))
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let (read_tx, read_rx) = flume::unbounded::<ReadOp>();
        for i in 0..readers.max(1) {
            let conn = super::open(path)?;
            let rx = read_rx.clone();
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || {
                    while let Ok(op) = rx.recv() {
                        op(&conn);
                    }
                })
                .map_err(|e| StoreError::Internal(e.to_string()))?;
        }
        Ok(Actors { writer: write_tx, readers: read_tx })
    }

    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let op: ReadOp = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.readers.send(op).map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        rx.await.map_err(|_| StoreError::Internal("a store reader stopped".into()))?
    }

    /// Runs `f` in the shared transaction. An `Err` from `f` rolls back only `f`'s changes.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.enqueue(f, true).await
    }

    /// Runs `f` in the shared transaction without a savepoint of its own, for an operation that
    /// checks everything it can refuse before its first write (a submit): an `Err` from it
    /// before that write costs nothing, and one after it (the disk failing) fails the whole
    /// batch, as a failed commit does. A savepoint copies every page the operation changes as
    /// it was; for a submit (a job, its indexes, a hold, a ledger row) that was a sixth of the
    /// writer's time (perf), and the writer's time per operation is what bounds submits/s.
    pub async fn write_checks_first<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.enqueue(f, false).await
    }

    async fn enqueue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut WriteCtx) -> StoreResult<T> + Send + 'static,
        savepoint: bool,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let run: Operation = Box::new(move |ctx| {
            let outcome = ctx.map(f);
            let ran = match &outcome {
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("not run".to_owned()),
            };
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(match (commit, outcome) {
                    (Ok(()), Some(outcome)) => outcome,
                    (Err(e), _) => Err(StoreError::Unavailable(e)),
                    (Ok(()), None) => Err(StoreError::Internal("the store writer did not run a write".into())),
                });
            });
            (ran, reply)
        });
        self.writer
            .send(WriteOp { run, savepoint })
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        rx.await.map_err(|_| StoreError::Internal("the store writer stopped".into()))?
    }
}

/// Checkpoints the WAL every 200 ms (PASSIVE: never blocks the writer), until the store closes.
/// (Under writes that never pause, the writer finishes the job: wal_guard.rs.)
fn checkpoint_loop(conn: Connection, writer: flume::Sender<WriteOp>) {
    let writer = writer.downgrade();
    while writer.upgrade().is_some_and(|w| w.receiver_count() > 0) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Err(e) = checkpoint_passive(&conn) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// What a PASSIVE checkpoint did: whether another checkpoint held it off (it never waits), the
/// frames in the WAL, and how many of them are now copied back into the database.
pub(super) struct Checkpointed {
    pub busy: bool,
    pub frames: i64,
    pub copied: i64,
}

impl Checkpointed {
    /// Every frame is in the database: the next write transaction starts the WAL over, unless a
    /// reader that began before this is still reading from it.
    pub fn all_copied(&self) -> bool {
        !self.busy && self.frames == self.copied
    }
}

pub(super) fn checkpoint_passive(conn: &Connection) -> rusqlite::Result<Checkpointed> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Checkpointed { busy: r.get::<_, i64>(0)? != 0, frames: r.get(1)?, copied: r.get(2)? })
    })
}

/// A statement run on every operation, parsed once (`execute_batch` parses it every time).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn writer_loop(
    conn: Connection,
    rx: flume::Receiver<WriteOp>,
    mut clock: MonotonicMicros,
    on_commit: impl Fn(),
    mut wal: WalGuard,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Could not even start (e.g. the disk is gone, or another process holds the lock
            // past the busy timeout): answer every op with the error, running none (outside a
            // transaction each statement would commit by itself).
            for op in batch {
                let (_, reply) = (op.run)(None);
                reply(Err(e.to_string()));
            }
            continue;
        }
        let mut replies = Vec::with_capacity(batch.len());
        let mut hooks = Vec::new();
        // Why the batch cannot commit: an operation without a savepoint failed after writing,
        // or SQLite rolled the whole transaction back itself (an I/O error, a full disk).
        let mut broken: Option<String> = None;
        for op in batch {
            if broken.is_some() {
                // Nothing of this batch will be kept: the rest are answered without running.
                let (_, reply) = (op.run)(None);
                replies.push(reply);
                continue;
            }
            let mut ctx = WriteCtx { conn: &conn, clock: &mut clock, after_commit: Vec::new() };
            let (changes, savepoint) = (conn.total_changes(), op.savepoint);
            let opened = if savepoint { run_cached(&conn, "SAVEPOINT op") } else { Ok(()) };
            let (ran, reply) = (op.run)(Some(&mut ctx));
            let settled = match (&ran, savepoint) {
                (Ok(()), true) => run_cached(&conn, "RELEASE op"),
                (Err(_), true) => conn.execute_batch("ROLLBACK TO op; RELEASE op"),
                (Ok(()), false) => Ok(()),
                (Err(e), false) => {
                    if conn.total_changes() != changes {
                        broken = Some(format!("a write failed part way, so nothing in its batch was kept: {e}"));
                    }
                    Ok(())
                }
            };
            if conn.is_autocommit() && broken.is_none() {
                let why = ran.as_ref().err().map_or("", String::as_str);
                broken = Some(format!("the store rolled back a write batch: {why}"));
            }
            if ran.is_ok() {
                hooks.append(&mut ctx.after_commit);
            }
            if let Err(e) = opened.and(settled) {
                tracing::error!(error = %e, "savepoint failed in the store writer");
            }
            replies.push(reply);
        }
        let committed = match broken {
            Some(why) => Err(why),
            None => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
        }
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, "store commit failed");
            e
        });
        if committed.is_ok() {
            on_commit();
            hooks.into_iter().for_each(|hook| hook());
        }
        for reply in replies {
            reply(committed.clone());
        }
        wal.between_transactions(&conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Answers = Arc<Mutex<Vec<(&'static str, bool)>>>;

    /// An operation that runs `sql` (if any) and then succeeds or fails; its reply records
    /// whether its batch committed.
    fn op(
        name: &'static str,
        savepoint: bool,
        sql: Option<&'static str>,
        succeeds: bool,
        answers: &Answers,
    ) -> WriteOp {
        let answers = answers.clone();
        let run: Operation = Box::new(move |ctx| {
            let reply: Reply = Box::new(move |commit| answers.lock().unwrap().push((name, commit.is_ok())));
            let Some(ctx) = ctx else { return (Err("not run".into()), reply) };
            if let Some(sql) = sql {
                ctx.conn.execute_batch(sql).expect("the test's write");
            }
            (if succeeds { Ok(()) } else { Err(format!("{name} failed")) }, reply)
        });
        WriteOp { run, savepoint }
    }

    /// Runs `ops` as one batch of the writer and returns each one's answer and the rows kept.
    fn one_batch(ops: impl FnOnce(&Answers) -> Vec<WriteOp>) -> (Vec<(&'static str, bool)>, Vec<i64>) {
        batch_while(false, ops)
    }

    /// `one_batch`, while another connection holds the write lock if `locked`.
    fn batch_while(locked: bool, ops: impl FnOnce(&Answers) -> Vec<WriteOp>) -> (Vec<(&'static str, bool)>, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let other = Connection::open(&path).unwrap();
        other.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER)").unwrap();
        if locked {
            other.execute_batch("BEGIN IMMEDIATE").unwrap();
        }
        let answers = Answers::default();
        let (tx, rx) = flume::unbounded();
        for op in ops(&answers) {
            tx.send(op).unwrap();
        }
        drop(tx);
        // Every op is queued before the writer starts, so it takes them as one batch.
        let writer = Connection::open(&path).unwrap();
        writer.busy_timeout(std::time::Duration::from_millis(50)).unwrap();
        writer_loop(writer, rx, MonotonicMicros::starting_after(0), || (), WalGuard::new(&path, wal_guard::RESTART_AT));
        drop(other);
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        let answers = answers.lock().unwrap().clone();
        (answers, rows)
    }

    #[tokio::test]
    async fn a_burst_of_writes_leaves_a_wal_file_no_larger_than_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let actors = Actors::start(&path, 1, MonotonicMicros::starting_after(0), || ()).unwrap();
        let run =
            |sql: &'static str| actors.write(move |ctx| ctx.conn.execute_batch(sql).map_err(super::super::sql_err));
        let wal_bytes = || std::fs::metadata(dir.path().join("store.db-wal")).unwrap().len() as i64;
        run("CREATE TABLE burst (b BLOB)").await.unwrap();
        // A burst larger than the limit, in one transaction: the WAL holds all of it at once.
        run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 72)
             INSERT INTO burst SELECT zeroblob(1048576) FROM n")
        .await
        .unwrap();
        assert!(wal_bytes() > super::super::WAL_SIZE_LIMIT, "{} bytes", wal_bytes());
        // All of it copied back into the database (what the store's checkpointer does once the
        // writes pause; done here so the test does not wait on its timing).
        let other = Connection::open(&path).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let done = checkpoint_passive(&other).unwrap();
            if done.all_copied() {
                break;
            }
            let (copied, frames) = (done.copied, done.frames);
            assert!(std::time::Instant::now() < deadline, "the WAL was never copied back: {copied} of {frames} frames");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(wal_bytes() > super::super::WAL_SIZE_LIMIT, "a checkpoint alone leaves the file as it was");
        // The next write starts the WAL over, and cuts the file back.
        run("INSERT INTO burst VALUES (x'00')").await.unwrap();
        assert!(wal_bytes() <= super::super::WAL_SIZE_LIMIT, "{} bytes", wal_bytes());
    }

    #[test]
    fn an_op_with_a_savepoint_that_fails_takes_back_only_its_own_writes() {
        let (answers, rows) = one_batch(|a| {
            vec![
                op("first", true, Some("INSERT INTO t VALUES (1)"), true, a),
                op("fails", true, Some("INSERT INTO t VALUES (2)"), false, a),
                op("checks first", false, Some("INSERT INTO t VALUES (3)"), true, a),
            ]
        });
        assert_eq!(rows, [1, 3]);
        assert_eq!(answers, [("first", true), ("fails", true), ("checks first", true)]);
    }

    #[test]
    fn an_op_without_a_savepoint_that_fails_before_writing_costs_its_batch_nothing() {
        let (answers, rows) = one_batch(|a| {
            vec![
                op("first", true, Some("INSERT INTO t VALUES (1)"), true, a),
                op("refused", false, None, false, a),
                op("last", false, Some("INSERT INTO t VALUES (3)"), true, a),
            ]
        });
        assert_eq!(rows, [1, 3]);
        assert_eq!(answers, [("first", true), ("refused", true), ("last", true)]);
    }

    #[test]
    fn an_op_without_a_savepoint_that_fails_after_writing_fails_its_whole_batch() {
        let (answers, rows) = one_batch(|a| {
            vec![
                op("first", true, Some("INSERT INTO t VALUES (1)"), true, a),
                op("fails part way", false, Some("INSERT INTO t VALUES (2)"), false, a),
                op("last", false, Some("INSERT INTO t VALUES (3)"), true, a),
            ]
        });
        assert_eq!(rows, Vec::<i64>::new(), "nothing of the batch is kept");
        assert_eq!(answers, [("first", false), ("fails part way", false), ("last", false)]);
    }

    #[test]
    fn a_transaction_the_store_ended_itself_keeps_nothing_and_runs_no_more_of_its_batch() {
        // As SQLite does on an I/O error or a full disk: the whole transaction is rolled back.
        let (answers, rows) = one_batch(|a| {
            vec![
                op("first", true, Some("INSERT INTO t VALUES (1)"), true, a),
                op("ends it", false, Some("ROLLBACK"), false, a),
                op("after, in a savepoint", true, Some("INSERT INTO t VALUES (3)"), true, a),
                op("after, without", false, Some("INSERT INTO t VALUES (4)"), true, a),
            ]
        });
        assert_eq!(rows, Vec::<i64>::new(), "nothing ran outside the transaction");
        assert!(answers.iter().all(|(_, committed)| !committed), "{answers:?}");
        assert_eq!(answers.len(), 4, "every op is answered");
    }

    #[test]
    fn a_batch_that_cannot_begin_runs_none_of_its_ops() {
        let (answers, rows) = batch_while(true, |a| {
            vec![
                op("with a savepoint", true, Some("INSERT INTO t VALUES (1)"), true, a),
                op("without", false, Some("INSERT INTO t VALUES (2)"), true, a),
            ]
        });
        assert_eq!(rows, Vec::<i64>::new());
        assert_eq!(answers, [("with a savepoint", false), ("without", false)]);
    }
}
