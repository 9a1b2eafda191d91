//! Where finished clips live and how clients reach them: the data dir, served by the API under
//! `/results/…` (one machine), or an S3-compatible bucket with presigned GET URLs (a fleet: any
//! replica can hand out any job's links). Either way a result sits under an unguessable
//! 128-bit directory name, and the job row keeps only the keys.
mod expire;
mod local;
mod s3;

pub use expire::Freed;
pub use local::LocalResults;
pub use s3::S3Results;

use rand::RngCore;
use std::path::Path;
use std::time::Duration;

/// Keys of one stored result (`<dir>/video.mp4`, `<dir>/poster.jpg`).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResult {
    pub video_key: String,
    pub poster_key: String,
}

/// A fresh unguessable directory name for one result.
pub fn new_result_dir() -> String {
    let mut token = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut token);
    hex::encode(token)
}

pub type FileStream = futures_util::stream::BoxStream<'static, std::io::Result<axum::body::Bytes>>;

/// Uploaded files sit beside results, under `library/` (never a 32-hex result directory name).
fn library_key(key: &str) -> String {
    format!("library/{key}")
}

/// A fresh storage key for an uploaded file: `<kind>/<unguessable>.<extension>`.
pub fn new_file_key(kind: &str, extension: &str) -> String {
    format!("{kind}/{}.{extension}", new_result_dir())
}

/// What `--storage` says.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageConfig {
    /// `<data dir>/results`, served at `<public url>/results/`.
    Local,
    /// `s3://bucket/prefix`; credentials and region from the usual `AWS_*` variables unless given.
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    },
}

impl StorageConfig {
    /// Parses `local` or `s3://bucket[/prefix]`.
    pub fn parse(text: &str) -> Result<StorageConfig, String> {
        if text == "local" {
            return Ok(StorageConfig::Local);
        }
        let rest =
            text.strip_prefix("s3://").ok_or_else(|| format!("`{text}`: use `local` or `s3://bucket/prefix`"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{text}` names no bucket"));
        }
        Ok(StorageConfig::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        })
    }
}

/// Links to one finished job's files.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultUrls {
    pub video: String,
    pub poster: String,
}

pub enum ResultStorage {
    Local { files: LocalResults, public_url: String },
    S3 { bucket: S3Results, url_ttl: Duration },
}

impl ResultStorage {
    /// Opens the configured storage; an unreachable bucket or bad credentials fail here, at
    /// start-up, not at the first finished job.
    pub async fn open(
        config: &StorageConfig,
        data_dir: &Path,
        public_url: &str,
        url_ttl: Duration,
    ) -> anyhow::Result<ResultStorage> {
        Ok(match config {
            StorageConfig::Local => ResultStorage::Local {
                files: LocalResults::new(data_dir.join("results")),
                public_url: public_url.trim_end_matches('/').to_owned(),
            },
            StorageConfig::S3 { .. } => ResultStorage::S3 { bucket: S3Results::open(config).await?, url_ttl },
        })
    }

    /// Moves (local) or uploads (S3) a rendered clip's files into storage.
    pub async fn put(&self, video: &Path, poster: &Path) -> std::io::Result<StoredResult> {
        match self {
            ResultStorage::Local { files, .. } => {
                let (files, video, poster) = (files.clone(), video.to_owned(), poster.to_owned());
                tokio::task::spawn_blocking(move || files.put(&video, &poster)).await.map_err(std::io::Error::other)?
            }
            ResultStorage::S3 { bucket, .. } => bucket.put(video, poster).await,
        }
    }

    /// Deletes a stored result that no job will point to (its completion was refused).
    pub async fn remove(&self, stored: &StoredResult) {
        match self {
            ResultStorage::Local { files, .. } => files.remove(stored),
            ResultStorage::S3 { bucket, .. } => bucket.remove(stored).await,
        }
    }

    /// Keeps an uploaded file (an asset or a LoRA) under `key` (`assets/…`, `styles/…`).
    pub async fn put_file(&self, key: &str, from: &Path, content_type: &str) -> std::io::Result<()> {
        match self {
            ResultStorage::Local { files, .. } => {
                let to = files.library_path(key);
                let from = from.to_owned();
                tokio::task::spawn_blocking(move || local::put_file(&from, &to)).await.map_err(std::io::Error::other)?
            }
            ResultStorage::S3 { bucket, .. } => bucket.upload(from, &library_key(key), content_type).await,
        }
    }

    /// Reads a kept file whole (an input image), refusing one larger than `max` bytes.
    pub async fn read_file(&self, key: &str, max: u64) -> std::io::Result<Vec<u8>> {
        match self {
            ResultStorage::Local { files, .. } => {
                let path = files.library_path(key);
                if tokio::fs::metadata(&path).await?.len() > max {
                    return Err(std::io::Error::other(format!("larger than {max} bytes")));
                }
                tokio::fs::read(path).await
            }
            ResultStorage::S3 { bucket, .. } => bucket.read(&library_key(key), max).await,
        }
    }

    /// A kept file's bytes as a stream (served to remote workers).
    pub async fn stream_file(&self, key: &str) -> std::io::Result<FileStream> {
        use futures_util::StreamExt;
        match self {
            ResultStorage::Local { files, .. } => {
                let file = tokio::fs::File::open(files.library_path(key)).await?;
                // Opening a directory succeeds on Unix; only its reads fail, after a 200.
                if !file.metadata().await?.is_file() {
                    return Err(std::io::ErrorKind::NotFound.into());
                }
                Ok(tokio_util::io::ReaderStream::new(file).boxed())
            }
            ResultStorage::S3 { bucket, .. } => bucket.stream(&library_key(key)).await,
        }
    }

    /// Copies a kept file to `to` (a LoRA into a worker's scratch dir), streamed.
    pub async fn copy_file_to(&self, key: &str, to: &Path) -> std::io::Result<()> {
        match self {
            ResultStorage::Local { files, .. } => tokio::fs::copy(files.library_path(key), to).await.map(|_| ()),
            ResultStorage::S3 { bucket, .. } => bucket.download(&library_key(key), to).await,
        }
    }

    pub async fn delete_file(&self, key: &str) {
        match self {
            ResultStorage::Local { files, .. } => {
                let _ = tokio::fs::remove_file(files.library_path(key)).await;
            }
            ResultStorage::S3 { bucket, .. } => bucket.delete(&library_key(key)).await,
        }
    }

    /// A link to a kept asset file that expires after the result link time (S3 only; local
    /// files are served at their permanent URL).
    pub async fn presigned_file_url(&self, key: &str) -> std::io::Result<Option<String>> {
        match self {
            ResultStorage::Local { .. } => Ok(None),
            ResultStorage::S3 { bucket, url_ttl } => bucket.presigned_get(&library_key(key), *url_ttl).await.map(Some),
        }
    }

    /// Whether `urls` gives the same links every time (local files), not links signed for a
    /// limited time (S3), so a job's JSON can be rendered once.
    pub fn links_are_permanent(&self) -> bool {
        matches!(self, ResultStorage::Local { .. })
    }

    /// Links for a stored result's files (presigned for S3, valid for the configured time).
    pub async fn urls(&self, video_key: &str, poster_key: &str) -> std::io::Result<ResultUrls> {
        match self {
            ResultStorage::Local { public_url, .. } => Ok(ResultUrls {
                video: format!("{public_url}/results/{video_key}"),
                poster: format!("{public_url}/results/{poster_key}"),
            }),
            ResultStorage::S3 { bucket, url_ttl } => {
                let video = bucket.presigned_get(video_key, *url_ttl).await;
                let poster = bucket.presigned_get(poster_key, *url_ttl).await;
                Ok(ResultUrls { video: video?, poster: poster? })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse() {
        assert_eq!(StorageConfig::parse("local"), Ok(StorageConfig::Local));
        match StorageConfig::parse("s3://clips/ltx/results/").unwrap() {
            StorageConfig::S3 { bucket, prefix, .. } => {
                assert_eq!((bucket.as_str(), prefix.as_str()), ("clips", "ltx/results"))
            }
            other => panic!("{other:?}"),
        }
        match StorageConfig::parse("s3://clips").unwrap() {
            StorageConfig::S3 { bucket, prefix, .. } => assert_eq!((bucket.as_str(), prefix.as_str()), ("clips", "")),
            other => panic!("{other:?}"),
        }
        assert!(StorageConfig::parse("s3://").is_err());
        assert!(StorageConfig::parse("gs://bucket").unwrap_err().contains("s3://bucket/prefix"));
    }

    #[test]
    fn result_dirs_are_unguessable_and_distinct() {
        let (a, b) = (new_result_dir(), new_result_dir());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
