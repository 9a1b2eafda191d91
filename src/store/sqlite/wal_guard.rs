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
//! So the writer itself, between two transactions, looks at the file's size now and then, and
//! past `restart_at` copies back what is left (a PASSIVE checkpoint on its own connection: no
//! write can land during it, since the writer is the only one). Its next transaction then
//! starts the WAL over, and `journal_size_limit` cuts the file back, unless a read that began
//! before the copy is still going (a long one, or a backup): then the next look tries again.
//! The writer stalls for as long as copying the frames the checkpointer has not reached takes,
//! and two fsyncs (3.3 ms for 65k frames during a submit burst, bench/RESULTS.md).
use super::actor::checkpoint_passive;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The WAL file size past which the writer copies it back itself. Above `WAL_SIZE_LIMIT`, the
/// size the file is cut back to (at or below it, every look would fire); at 36k submits/s the
/// WAL passes it about every second and a half.
pub(super) const RESTART_AT: u64 = 4 * super::WAL_SIZE_LIMIT as u64;
/// How often the size is looked at: a `stat` per write batch would be one more system call per
/// submit at low load.
const EVERY: Duration = Duration::from_millis(50);

pub(super) struct WalGuard {
    wal: PathBuf,
    restart_at: u64,
    every: Duration,
    last_look: Instant,
    /// The last copy failed (said once at WARN, not every `EVERY` while the disk stays full).
    failing: bool,
}

impl WalGuard {
    /// For the database at `db_path` (its WAL is `<db_path>-wal`).
    pub fn new(db_path: &Path, restart_at: u64) -> WalGuard {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        WalGuard { wal: wal.into(), restart_at, every: EVERY, last_look: Instant::now(), failing: false }
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
        let started = Instant::now();
        match checkpoint_passive(writer) {
            Ok(done) => {
                self.failing = false;
                let (ms, copied, frames) = (started.elapsed().as_secs_f64() * 1e3, done.copied, done.frames);
                match done.all_copied() {
                    true => tracing::debug!(size, frames, ms, "the WAL is copied back and starts over"),
                    // The checkpointer was copying (busy), or a read holds older frames.
                    false => {
                        tracing::debug!(size, busy = done.busy, frames, copied, ms, "the WAL is not all copied back")
                    }
                }
            }
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::warn!(error = %e, size, "the writer cannot copy the WAL back; it keeps growing");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn writes_that_never_pause_start_the_wal_over_past_its_restart_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = super::super::open(&path).unwrap();
        writer.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (b BLOB)").unwrap();
        writer.pragma_update(None, "journal_size_limit", 2 * MIB).unwrap();
        // The store's checkpointer is left out: beside writes like these it copies frames but
        // never lets the WAL start over (with it and without the guard the WAL took all 64 MiB
        // below), and while it copies, the guard's look is busy, so a bound here would depend
        // on the disk's speed.
        let mut guard = WalGuard { every: Duration::ZERO, ..WalGuard::new(&path, 8 * MIB) };
        let wal_bytes = || std::fs::metadata(dir.path().join("store.db-wal")).unwrap().len();
        // Back to back, each as large as a batch of a few hundred submits.
        let mut write = |n: usize| {
            let mut largest = 0;
            for _ in 0..n {
                writer.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (zeroblob(1048576)); COMMIT").unwrap();
                guard.between_transactions(&writer);
                largest = largest.max(wal_bytes());
            }
            largest
        };
        let largest = write(32);
        assert!(largest <= 10 * MIB, "the WAL reached {} MiB of the 32 MiB written", largest / MIB);

        // A read that began before the copies holds the WAL's frames: it cannot start over...
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert!(write(16) > 16 * MIB, "the WAL kept the frames the open read may need");
        // ...until it ends: the next look copies the rest back and the WAL starts over.
        reader.execute_batch("COMMIT").unwrap();
        write(2);
        assert!(wal_bytes() <= 10 * MIB, "the WAL is {} MiB after the read ended", wal_bytes() / MIB);
        let rows: i64 = writer.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 50, "every write is kept");
    }
}
