//! Results in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, …) through `object_store`:
//! uploads streamed from the scratch file in parts (never whole in memory), links presigned
//! locally (no request per link).
use super::{new_result_dir, StorageConfig, StoredResult};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{Attribute, Attributes, ObjectStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub struct S3Results {
    store: Arc<AmazonS3>,
    prefix: String,
}

fn io(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl S3Results {
    pub async fn open(config: &StorageConfig) -> anyhow::Result<S3Results> {
        let StorageConfig::S3 { bucket, prefix, endpoint, region, access_key_id, secret_access_key } = config else {
            anyhow::bail!("not an S3 storage configuration");
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = region {
            builder = builder.with_region(region);
        }
        if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let store = Arc::new(builder.build()?);
        let results = S3Results { store, prefix: prefix.clone() };
        // Reachable, and the credentials work: a missing probe object is the expected answer.
        match results.store.head(&results.path(".ltx-serve-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(results),
            Err(e) => anyhow::bail!("the result bucket s3://{bucket}/{prefix} cannot be used: {e}"),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Uploads a file, as a whole within `send_limit` of its size (each request is also bounded
    /// by object_store's own 30 s, 5 s to connect, retried for 3 minutes at most): an endpoint
    /// that stalls never holds a worker's result or an upload request for ever.
    pub async fn upload(&self, from: &Path, key: &str, content_type: &str) -> std::io::Result<()> {
        let mut file = tokio::fs::File::open(from).await?;
        let limit = send_limit(file.metadata().await?.len());
        let store: Arc<dyn ObjectStore> = self.store.clone();
        let mut writer = BufWriter::new(store, self.path(key)).with_attributes(object_attributes(key, content_type));
        let sent = tokio::time::timeout(limit, async {
            tokio::io::copy(&mut file, &mut writer).await?;
            writer.shutdown().await
        })
        .await;
        match sent {
            Ok(sent) => sent,
            Err(_) => {
                // An unfinished multipart upload is not left to the bucket's lifecycle rules.
                let _ = writer.abort().await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the upload to S3 took longer than {} s", limit.as_secs()),
                ))
            }
        }
    }

    pub async fn put(&self, video: &Path, poster: &Path) -> std::io::Result<StoredResult> {
        let dir = new_result_dir();
        let stored = StoredResult { video_key: format!("{dir}/video.mp4"), poster_key: format!("{dir}/poster.jpg") };
        self.upload(video, &stored.video_key, "video/mp4").await?;
        self.upload(poster, &stored.poster_key, "image/jpeg").await?;
        Ok(stored)
    }

    pub async fn remove(&self, stored: &StoredResult) {
        for key in [&stored.video_key, &stored.poster_key] {
            if let Err(e) = self.store.delete(&self.path(key)).await.map_err(io) {
                tracing::warn!(key, error = %e, "could not delete an orphaned result object");
            }
        }
    }

    /// Reads an object whole, refusing one larger than `max` bytes.
    pub async fn read(&self, key: &str, max: u64) -> std::io::Result<Vec<u8>> {
        let object = self.store.get(&self.path(key)).await.map_err(io)?;
        if object.meta.size > max {
            return Err(std::io::Error::other(format!("larger than {max} bytes")));
        }
        Ok(object.bytes().await.map_err(io)?.to_vec())
    }

    pub async fn stream(&self, key: &str) -> std::io::Result<super::FileStream> {
        use futures_util::StreamExt;
        let object = self.store.get(&self.path(key)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, e),
            other => io(other),
        })?;
        Ok(object.into_stream().map(|chunk| chunk.map_err(io)).boxed())
    }

    /// Streams an object into a local file.
    pub async fn download(&self, key: &str, to: &Path) -> std::io::Result<()> {
        use futures_util::StreamExt;
        let mut stream = self.stream(key).await?;
        let mut file = tokio::fs::File::create(to).await?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await
    }

    pub async fn delete(&self, key: &str) {
        if let Err(e) = self.store.delete(&self.path(key)).await {
            tracing::warn!(key, error = %e, "could not delete an object");
        }
    }

    /// Deletes an object for good, returning its size, or `None` when it was already gone (the
    /// retention sweeper). An error (unreachable bucket) leaves it for the next try.
    pub async fn delete_measured(&self, key: &str) -> std::io::Result<Option<u64>> {
        let size = match self.store.head(&self.path(key)).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        self.store.delete(&self.path(key)).await.map_err(io)?;
        Ok(Some(size))
    }

    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> std::io::Result<String> {
        let url = self.store.signed_url(axum::http::Method::GET, &self.path(key), ttl).await.map_err(io)?;
        Ok(url.to_string())
    }
}

/// How long one upload may take as a whole: a minute, and a second per MiB (a link slower than
/// 1 MiB/s to the bucket is broken for this use).
pub fn send_limit(bytes: u64) -> Duration {
    Duration::from_secs(60 + bytes / (1 << 20))
}

/// What an object is stored (and later served) with. Its exact type, never left for S3 or a
/// browser to guess; media that a browser shows (video, images) `inline`, anything else (a LoRA
/// file) as a download, so no stored bytes are ever rendered as a page of the bucket's origin.
/// S3 keeps no `X-Content-Type-Options`, so the type and disposition are what prevents sniffing.
pub fn object_attributes(key: &str, content_type: &str) -> Attributes {
    let shown = content_type.starts_with("video/") || content_type.starts_with("image/");
    let name = key.rsplit('/').next().unwrap_or(key);
    let plain_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let disposition = match (shown, plain_name) {
        (true, true) => format!("inline; filename=\"{name}\""),
        (true, false) => "inline".to_owned(),
        (false, true) => format!("attachment; filename=\"{name}\""),
        (false, false) => "attachment".to_owned(),
    };
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type.to_owned().into());
    attributes.insert(Attribute::ContentDisposition, disposition.into());
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(attributes: &Attributes, which: Attribute) -> Option<String> {
        attributes.get(&which).map(|v| v.to_string())
    }

    #[test]
    fn objects_carry_their_exact_type_and_only_media_is_shown_inline() {
        let video = object_attributes("results/ab12/video.mp4", "video/mp4");
        assert_eq!(get(&video, Attribute::ContentType).as_deref(), Some("video/mp4"));
        assert_eq!(get(&video, Attribute::ContentDisposition).as_deref(), Some("inline; filename=\"video.mp4\""));
        let lora = object_attributes("library/styles/0f3e.safetensors", "application/octet-stream");
        assert_eq!(get(&lora, Attribute::ContentType).as_deref(), Some("application/octet-stream"));
        assert_eq!(
            get(&lora, Attribute::ContentDisposition).as_deref(),
            Some("attachment; filename=\"0f3e.safetensors\"")
        );
        let odd = object_attributes("a/we\"ird name.html", "text/html");
        assert_eq!(get(&odd, Attribute::ContentDisposition).as_deref(), Some("attachment"));
    }

    #[test]
    fn an_upload_is_bounded_by_a_minute_and_a_second_per_mib() {
        assert_eq!(send_limit(0), Duration::from_secs(60));
        assert_eq!(send_limit(2 << 30), Duration::from_secs(60 + 2048));
    }
}
