//! A worker whose scratch disk is full cannot render anything: the job is not at fault, so it
//! goes back to the queue (for this worker once space is freed, or another one) instead of
//! failing. Told apart from a real failure by the error's words and by trying to write.
use std::io::Write;
use std::path::Path;

/// What `write` answers on a full disk (ENOSPC) or an exhausted quota (EDQUOT), as Rust's and
/// ffmpeg's messages word it.
const OUT_OF_SPACE: [&str; 4] = ["No space left on device", "os error 28", "Disk quota exceeded", "os error 122"];

/// Whether an error message says the disk was full.
pub fn says_out_of_space(message: &str) -> bool {
    OUT_OF_SPACE.iter().any(|words| message.contains(words))
}

/// Bytes `has_room` writes: a clip's scratch files are larger, so a disk without this much free
/// cannot render one.
const PROBE_BYTES: usize = 1 << 20;

/// Whether `dir` can take a small file now (written and synced, then removed).
pub fn has_room(dir: &Path) -> bool {
    let probe = dir.join(format!(".space-probe-{}", uuid::Uuid::new_v4()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::File::create(&probe))
        .and_then(|mut file| file.write_all(&vec![0u8; PROBE_BYTES]).and_then(|()| file.sync_all()));
    let _ = std::fs::remove_file(&probe);
    written.is_ok()
}

/// Whether a job that ended with `message` did so because the scratch disk at `dir` is full.
pub async fn out_of_space(message: &str, dir: &Path) -> bool {
    if says_out_of_space(message) {
        return true;
    }
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || !has_room(&dir)).await.unwrap_or(false)
}

/// A full scratch disk is not the job's fault: it goes back to the queue uncounted, and the
/// worker pauses before leasing again (as when it has no scratch space at all).
pub(super) async fn hand_back(
    queue: &dyn super::queue::WorkQueue,
    lease: crate::store::LeaseRef,
    why: &str,
) -> Result<&'static str, crate::store::StoreError> {
    tracing::error!(job_id = %lease.job_id, error = why, "the worker's disk is full; handing the job back");
    let handed = queue.hand_back(lease).await.map(|_| "handed back (disk full)");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    handed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_of_a_full_disk_are_recognised_and_others_are_not() {
        assert!(says_out_of_space("encoding: No space left on device (os error 28)"));
        assert!(says_out_of_space("ffmpeg: av_interleaved_write_frame(): No space left on device"));
        assert!(says_out_of_space("writing frames: Disk quota exceeded (os error 122)"));
        assert!(!says_out_of_space("the preview renderer panicked: index out of bounds"));
        assert!(!says_out_of_space("CUDA out of memory"));
    }

    #[test]
    fn a_writable_dir_has_room_and_leaves_no_probe_behind() {
        let dir = tempfile::tempdir().unwrap();
        assert!(has_room(dir.path()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
