//! Deleting a result's files for good (the retention sweeper), measuring what that frees.
use super::{LocalResults, ResultStorage};
use std::path::Path;

/// What deleting files gave back; files that were already gone count for nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Freed {
    pub bytes: u64,
    pub files: u64,
}

impl Freed {
    fn add(&mut self, size: Option<u64>) {
        if let Some(size) = size {
            self.bytes += size;
            self.files += 1;
        }
    }
}

impl ResultStorage {
    /// Deletes a stored result's video and poster. Files already gone are fine (a sweep that
    /// crashed after deleting them runs again); an error leaves the rest for the next try.
    pub async fn delete_result(&self, video_key: &str, poster_key: &str) -> std::io::Result<Freed> {
        let mut freed = Freed::default();
        match self {
            ResultStorage::Local { files, .. } => {
                let (files, keys) = (files.clone(), [video_key.to_owned(), poster_key.to_owned()]);
                return tokio::task::spawn_blocking(move || delete_local(&files, &keys))
                    .await
                    .map_err(std::io::Error::other)?;
            }
            ResultStorage::S3 { bucket, .. } => {
                for key in [video_key, poster_key] {
                    freed.add(bucket.delete_measured(key).await?);
                }
            }
        }
        Ok(freed)
    }
}

impl ResultStorage {
    /// Deletes a kept upload (an asset's file) for good, returning its size, or `None` when it
    /// was already gone; unlike `delete_file`, an error is returned (the file is not forgotten).
    pub async fn delete_file_measured(&self, key: &str) -> std::io::Result<Option<u64>> {
        match self {
            ResultStorage::Local { files, .. } => {
                let path = files.library_path(key);
                tokio::task::spawn_blocking(move || remove_measured(&path)).await.map_err(std::io::Error::other)?
            }
            ResultStorage::S3 { bucket, .. } => bucket.delete_measured(&super::library_key(key)).await,
        }
    }
}

/// Removes the files, then their directory once empty. A key that is not `<result dir>/<name>`
/// (not one of ours) is left alone: nothing outside the results root is ever touched.
fn delete_local(files: &LocalResults, keys: &[String]) -> std::io::Result<Freed> {
    let mut freed = Freed::default();
    for key in keys {
        let Some((dir, name)) = key.split_once('/') else { continue };
        if crate::retention::policy::result_dir_of(dir).is_none() || name.contains('/') || name.starts_with('.') {
            tracing::warn!(key, "not a result key; left alone");
            continue;
        }
        freed.add(remove_measured(&files.root().join(dir).join(name))?);
        // Fails while the other file is still there, and once the directory is gone: both fine.
        let _ = std::fs::remove_dir(files.root().join(dir));
    }
    Ok(freed)
}

/// Removes a file, returning its size, or `None` when it was already gone.
fn remove_measured(path: &Path) -> std::io::Result<Option<u64>> {
    let size = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(size)),
        // Another sweeper removed it between the two calls: it counts there, not here.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_local_result_measures_it_removes_its_directory_and_is_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let files = LocalResults::new(root.path().join("results"));
        let dir = crate::storage::new_result_dir();
        std::fs::create_dir_all(files.root().join(&dir)).unwrap();
        std::fs::write(files.root().join(&dir).join("video.mp4"), vec![0u8; 1000]).unwrap();
        std::fs::write(files.root().join(&dir).join("poster.jpg"), vec![0u8; 24]).unwrap();
        let keys = [format!("{dir}/video.mp4"), format!("{dir}/poster.jpg")];
        assert_eq!(delete_local(&files, &keys).unwrap(), Freed { bytes: 1024, files: 2 });
        assert!(!files.root().join(&dir).exists(), "the emptied directory goes too");
        assert_eq!(delete_local(&files, &keys).unwrap(), Freed::default(), "again: nothing left to free");
    }

    #[test]
    fn keys_that_are_not_ours_are_never_followed_out_of_the_results_root() {
        let root = tempfile::tempdir().unwrap();
        let files = LocalResults::new(root.path().join("results"));
        std::fs::create_dir_all(files.root()).unwrap();
        let outside = root.path().join("keep.txt");
        std::fs::write(&outside, b"x").unwrap();
        let keys = ["../keep.txt".to_owned(), "k/video.mp4".to_owned(), format!("{}/../../keep.txt", "a".repeat(32))];
        assert_eq!(delete_local(&files, &keys).unwrap(), Freed::default());
        assert!(outside.exists());
    }
}
