//! Result storage on local disk: each job's files go under an unguessable directory name, so
//! a result URL is a capability that needs no key (like Krea's CDN links).
use super::{new_result_dir, StoredResult};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct LocalResults {
    root: PathBuf,
}

impl LocalResults {
    pub fn new(root: PathBuf) -> LocalResults {
        LocalResults { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Moves a rendered video and poster into storage (a rename: the scratch dir is on the same disk).
    pub fn put(&self, video: &Path, poster: &Path) -> std::io::Result<StoredResult> {
        let dir_name = new_result_dir();
        let dir = self.root.join(&dir_name);
        std::fs::create_dir_all(&dir)?;
        move_file(video, &dir.join("video.mp4"))?;
        move_file(poster, &dir.join("poster.jpg"))?;
        Ok(StoredResult { video_key: format!("{dir_name}/video.mp4"), poster_key: format!("{dir_name}/poster.jpg") })
    }
}

impl LocalResults {
    /// Deletes a stored result (one whose job could not be completed).
    pub fn remove(&self, stored: &StoredResult) {
        if let Some((dir, _)) = stored.video_key.split_once('/') {
            let _ = std::fs::remove_dir_all(self.root.join(dir));
        }
    }
}

impl LocalResults {
    /// Where a kept upload lives: `<data dir>/library/<key>`, beside `<data dir>/results`.
    pub fn library_path(&self, key: &str) -> PathBuf {
        self.root.with_file_name("library").join(key)
    }
}

/// Moves a staged upload to its place, creating the folder.
pub fn put_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    move_file(from, to)
}

fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
}
