//! SQLite behind threads: one writer that commits every waiting operation in one transaction
//! (group commit: one fsync for many submits), and a few readers. Callers are async and never
//! block the runtime. A reply is sent only after the transaction holding it has committed.
use super::super::{StoreError, StoreResult};
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
type WriteOp = Box<dyn FnOnce(&mut WriteCtx) -> (bool, Reply) + Send>;
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
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(super::sql_err)?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, write_rx, clock, on_commit))
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
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let op: WriteOp = Box::new(move |ctx| {
            let outcome = f(ctx);
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(match commit {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::Unavailable(e)),
                });
            });
            (ok, reply)
        });
        self.writer.send(op).map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        rx.await.map_err(|_| StoreError::Internal("the store writer stopped".into()))?
    }
}

/// Checkpoints the WAL every 200 ms (PASSIVE: never blocks the writer), until the store closes.
fn checkpoint_loop(conn: Connection, writer: flume::Sender<WriteOp>) {
    let writer = writer.downgrade();
    while writer.upgrade().is_some_and(|w| w.receiver_count() > 0) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

fn writer_loop(conn: Connection, rx: flume::Receiver<WriteOp>, mut clock: MonotonicMicros, on_commit: impl Fn()) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Could not even start (e.g. the disk is gone): answer every op with the error.
            let mut ctx = WriteCtx { conn: &conn, clock: &mut clock, after_commit: Vec::new() };
            for op in batch {
                let (_, reply) = op(&mut ctx);
                reply(Err(e.to_string()));
            }
            continue;
        }
        let mut replies = Vec::with_capacity(batch.len());
        let mut hooks = Vec::new();
        for op in batch {
            let mut ctx = WriteCtx { conn: &conn, clock: &mut clock, after_commit: Vec::new() };
            let savepoint = conn.execute_batch("SAVEPOINT op");
            let (ok, reply) = op(&mut ctx);
            let settled = if ok {
                hooks.append(&mut ctx.after_commit);
                conn.execute_batch("RELEASE op")
            } else {
                conn.execute_batch("ROLLBACK TO op; RELEASE op")
            };
            if let Err(e) = savepoint.and(settled) {
                tracing::error!(error = %e, "savepoint failed in the store writer");
            }
            replies.push(reply);
        }
        let committed = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, "store commit failed");
            e.to_string()
        });
        if committed.is_ok() {
            on_commit();
            hooks.into_iter().for_each(|hook| hook());
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}
