//! The remote-worker protocol: every request and response between `ltx-serve worker` (the
//! client in `worker::remote`) and the server's internal worker API (`api::internal`), typed
//! once here so the two sides cannot drift. It depends only on store model types and the
//! domain, so both the API and the worker may use it.
//!
//! The calls, all under `/internal/v1` and authenticated by a worker token:
//! - `GET hello` → [`Hello`]: the server's lease timing, checked once at start-up.
//! - `POST lease` with [`LeaseRequest`] → [`WorkItem`] (200) or nothing (204, the long poll ran out).
//! - `POST leases/{job}/{lease}/heartbeat` with [`Heartbeat`] → 204.
//! - `PUT leases/{job}/{lease}/files/{name}` with the bytes of one [`UploadFile`] → 204.
//! - `POST leases/{job}/{lease}/preview` with a [`JobResult`] → 204, after `PreviewVideo`/`PreviewPoster`.
//! - `POST leases/{job}/{lease}/complete` with a [`JobResult`] → 204, after `Video`/`Poster`.
//! - `POST leases/{job}/{lease}/fail` with [`Fail`] → 204.
//! - `POST leases/{job}/{lease}/hand-back` with [`HandBack`] → 204.
//! - `GET files/{key}` → a kept file's bytes (an asset, a LoRA).
//!
//! A report on a lease that is no longer held answers 409 (`lease_lost`) and changes nothing.
//! The keys of a [`JobResult`] a worker sends are ignored: the server fills them in where it
//! stores the uploaded files.
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::request::GenerateRequest;
use crate::store::{LeaseRef, Progress, WorkerInfo};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

pub use crate::store::JobResult;

#[cfg(test)]
mod tests;

/// The version of this protocol. Bump it on any change an older peer would misread; a server
/// refuses a worker that speaks another version, and a worker a server that does.
pub const PROTOCOL_VERSION: u32 = 1;

/// The request header a worker names its protocol version in. Workers from before the header
/// existed send none, which means [`PROTOCOL_VERSION`] 1.
pub const PROTOCOL_HEADER: &str = "ltx-worker-protocol";

/// Every path of the protocol, relative to the server's base URL.
pub mod paths {
    pub const HELLO: &str = "/internal/v1/hello";
    pub const LEASE: &str = "/internal/v1/lease";
    pub const HEARTBEAT: &str = "/internal/v1/leases/{job_id}/{lease_id}/heartbeat";
    pub const UPLOAD: &str = "/internal/v1/leases/{job_id}/{lease_id}/files/{name}";
    pub const COMPLETE: &str = "/internal/v1/leases/{job_id}/{lease_id}/complete";
    pub const PREVIEW: &str = "/internal/v1/leases/{job_id}/{lease_id}/preview";
    pub const FAIL: &str = "/internal/v1/leases/{job_id}/{lease_id}/fail";
    pub const HAND_BACK: &str = "/internal/v1/leases/{job_id}/{lease_id}/hand-back";
    pub const KEPT_FILE: &str = "/internal/v1/files/{*key}";

    /// One of the lease paths with the lease filled in.
    pub fn for_lease(path: &str, lease: crate::store::LeaseRef) -> String {
        path.replace("{job_id}", &lease.job_id.to_string()).replace("{lease_id}", &lease.lease_id.to_string())
    }

    /// Where a worker uploads one file of a lease.
    pub fn upload(lease: crate::store::LeaseRef, file: super::UploadFile) -> String {
        for_lease(UPLOAD, lease).replace("{name}", file.name())
    }
}

/// Checks the protocol version a worker sent (`None`: it sent no header, so it is a worker
/// from before versioning, which speaks version 1). The error is a sentence for the worker.
pub fn check_version(sent: Option<&str>) -> Result<u32, String> {
    let Some(text) = sent else { return Ok(PROTOCOL_VERSION) };
    match text.trim().parse::<u32>() {
        Ok(version) if version == PROTOCOL_VERSION => Ok(version),
        _ => Err(format!(
            "This server speaks worker protocol {PROTOCOL_VERSION} but the worker sent `{text}`; \
             run the same ltx-serve version on the server and its workers."
        )),
    }
}

/// How often a worker reports progress for a lease that expires after `lease_ttl`: often
/// enough that progress reads as live and a lost heartbeat or two does not expire the lease.
/// The server tells remote workers (`Hello::heartbeat_every_ms`); in-process workers use it too.
pub fn heartbeat_interval(lease_ttl: Duration) -> Duration {
    (lease_ttl / 6).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

fn current_version() -> u32 {
    PROTOCOL_VERSION
}

/// What `GET hello` answers: the server's lease timing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The server's ltx-serve version (for the worker's log).
    pub version: String,
    /// The server's protocol version; a server from before versioning sends none (version 1).
    #[serde(default = "current_version")]
    pub protocol: u32,
    pub lease_ttl_ms: u64,
    pub heartbeat_every_ms: u64,
    /// Where the server links its kept files from (input image URLs that start with it are
    /// fetched through the worker API).
    #[serde(default)]
    pub kept_files_url: String,
}

impl Hello {
    /// Refuses a server of another protocol version, in a sentence for the operator.
    pub fn check(&self) -> Result<(), String> {
        if self.protocol == PROTOCOL_VERSION {
            Ok(())
        } else {
            Err(format!(
                "the server (ltx-serve {}) speaks worker protocol {} and this worker speaks {PROTOCOL_VERSION}; \
                 run the same ltx-serve version on the server and its workers",
                self.version, self.protocol
            ))
        }
    }
}

/// `POST lease`: who asks, and how long to wait for a job (the server caps it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub worker: WorkerInfo,
    #[serde(default)]
    pub wait_ms: u64,
}

/// A leased job and what a worker needs to render it: the answer to `POST lease`, and what
/// in-process workers get from the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    pub lease: LeaseRef,
    pub request: GenerateRequest,
    pub seed: u32,
    pub width: u32,
    pub height: u32,
    /// 1 for the first lease of the job.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Where the LoRA file of each of the request's styles is kept. A style deleted since the
    /// job was submitted is missing here.
    #[serde(default)]
    pub loras: Vec<LoraInput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraInput {
    pub style_id: String,
    /// Storage key of the `.safetensors` file (read with `WorkQueue::fetch_kept_file`).
    pub file_key: String,
    pub size_bytes: u64,
}

/// `POST leases/…/heartbeat`: the job's progress, which also extends the lease. The status
/// travels as text so that a bad one gets the server's sentence rather than a parse error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The worker's name (its `last_seen` in the registry is renewed).
    pub worker: String,
    pub status: String,
    pub progress: f64,
    #[serde(default)]
    pub engine: Option<String>,
}

impl Heartbeat {
    pub fn new(worker: &str, update: &Progress) -> Heartbeat {
        Heartbeat {
            worker: worker.to_owned(),
            status: update.status.as_str().to_owned(),
            progress: update.progress,
            engine: update.engine.clone(),
        }
    }

    /// The progress it reports; only a running status may be reported.
    pub fn progress(&self) -> Result<Progress, String> {
        match JobStatus::parse(&self.status).filter(|s| s.is_leased()) {
            Some(status) => Ok(Progress { status, progress: self.progress, engine: self.engine.clone() }),
            None => {
                Err("`status` must be a running status (scheduled, processing, sampling, intermediate-complete)."
                    .into())
            }
        }
    }
}

/// `POST leases/…/fail`: why the job failed. The code travels as text for the same reason as
/// a heartbeat's status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fail {
    pub code: String,
    pub message: String,
}

impl Fail {
    /// The longest message the server keeps.
    pub const MAX_MESSAGE_CHARS: usize = 2000;

    pub fn new(code: FailureCode, message: String) -> Fail {
        Fail { code: code.as_str().to_owned(), message }
    }

    /// The failure code and the message, cut to [`Fail::MAX_MESSAGE_CHARS`].
    pub fn parse(&self) -> Result<(FailureCode, String), String> {
        let code = FailureCode::parse(&self.code).ok_or_else(|| "Unknown failure `code`.".to_owned())?;
        Ok((code, self.message.chars().take(Self::MAX_MESSAGE_CHARS).collect()))
    }
}

/// `POST leases/…/hand-back`: gives the job back without counting the attempt (an empty object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HandBack {}

/// The files a worker uploads for a lease (`PUT leases/…/files/{name}`): a clip and its poster,
/// before `complete`, and a first-stage preview and its poster, before `preview`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadFile {
    Video,
    Poster,
    PreviewVideo,
    PreviewPoster,
}

impl UploadFile {
    pub const ALL: [UploadFile; 4] =
        [UploadFile::Video, UploadFile::Poster, UploadFile::PreviewVideo, UploadFile::PreviewPoster];
    /// What `complete` stores.
    pub const RESULT: [UploadFile; 2] = [UploadFile::Video, UploadFile::Poster];
    /// What `preview` stores.
    pub const PREVIEW: [UploadFile; 2] = [UploadFile::PreviewVideo, UploadFile::PreviewPoster];

    pub fn name(self) -> &'static str {
        match self {
            UploadFile::Video => "video.mp4",
            UploadFile::Poster => "poster.jpg",
            UploadFile::PreviewVideo => "preview.mp4",
            UploadFile::PreviewPoster => "preview.jpg",
        }
    }

    pub fn parse(name: &str) -> Option<UploadFile> {
        UploadFile::ALL.into_iter().find(|f| f.name() == name)
    }
}
