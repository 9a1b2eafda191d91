//! Keeps the WAL from growing without bound under writes that never pause.
//!
//! The checkpointer thread (actor.rs) copies the WAL back into the database every 200 ms
//! without blocking the writer, but the WAL only starts over from its beginning when a write
//! transaction begins with every frame already copied back: a checkpoint that a commit
//! overlapped leaves the newest frames behind, and the next write appends after them. Under
//! writes closer together than a checkpoint takes (submits at full speed: ~4.5 KB of WAL each,
//! 1.6 GB in ten seconds at 36k/s), that never happens, and the file grows until the writes
//! pause, or the disk is full.
//!
//! So the writer itself, between two transactions, checks the file's size now and then, and
//! past `restart_at` copies back what is left (a PASSIVE checkpoint on its own connection: no
//! write can land during it, since the writer is the only one). Its next transaction then
//! starts the WAL over, and `journal_size_limit` cuts the file back. The writer stalls for as
//! long as copying the frames of the last checkpoint interval takes, once per `restart_at` of
//! WAL.
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The WAL file size past which the writer copies it back itself: four times the size the file
/// is cut back to (a file cut back to `WAL_SIZE_LIMIT` is not yet over it), so that at 36k
/// submits/s it stalls about once every second and a half, for the frames of at most one
/// checkpoint interval (≤ 200 ms of writes).
pub(super) const RESTART_AT: u64 = 4 * super::WAL_SIZE_LIMIT as u64;
/// How often the size is looked at: a `stat` per write batch would be one more system call per
/// submit at low load.
const EVERY: Duration = Duration::from_millis(50);

pub(super) struct WalGuard {
    wal: PathBuf,
    restart_at: u64,
    every: Duration,
    last_look: Instant,
}

impl WalGuard {
    /// For the database at `db_path` (its WAL is `<db_path>-wal`).
    pub fn new(db_path: &Path, restart_at: u64) -> WalGuard {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        WalGuard { wal: wal.into(), restart_at, every: EVERY, last_look: Instant::now() }
    }

    /// Run by the writer between transactions, on its own connection.
    pub fn between_transactions(&mut self, writer: &Connection) {
        if self.last_look.elapsed() < self.every {
            return;
        }
        self.last_look = Instant::now();
        let Ok(size) = std::fs::metadata(&self.wal).map(|m| m.len()) else { return };
        if size <= self.restart_at {
            return;
        }
        // Busy (1) when the checkpointer is copying at this moment: the next look tries again.
        let started = Instant::now();
        let checkpoint = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match checkpoint {
            Ok((busy, frames, copied)) => {
                let ms = started.elapsed().as_secs_f64() * 1e3;
                tracing::debug!(size, busy, frames, copied, ms, "the writer copied the WAL back to start it over")
            }
            Err(e) => tracing::warn!(error = %e, "the writer could not copy the WAL back"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_that_never_pause_start_the_wal_over_past_its_restart_size() {
        const MIB: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = super::super::open(&path).unwrap();
        writer.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (b BLOB)").unwrap();
        writer.pragma_update(None, "journal_size_limit", 2 * MIB).unwrap();
        // The store's own checkpointer, running beside the writes as it does in the store.
        let (open, closed) = flume::unbounded();
        let checkpointer = super::super::open(&path).unwrap();
        let checkpoints = std::thread::spawn(move || super::super::actor::checkpoint_loop(checkpointer, open));
        let mut guard = WalGuard { every: Duration::ZERO, ..WalGuard::new(&path, 8 * MIB) };
        let wal_bytes = || std::fs::metadata(dir.path().join("store.db-wal")).unwrap().len();
        let mut largest = 0;
        // Back to back, each as large as a batch of a few hundred submits: no pause in which a
        // checkpoint could catch up with the commits by itself.
        for _ in 0..64 {
            writer.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (zeroblob(1048576)); COMMIT").unwrap();
            guard.between_transactions(&writer);
            largest = largest.max(wal_bytes());
        }
        drop(closed);
        checkpoints.join().unwrap();
        assert!(largest <= 16 * MIB, "the WAL reached {} MiB of the 64 MiB written", largest / MIB);
        let rows: i64 = writer.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 64, "every write is kept");
    }
}
