//! Each job's JSON, rendered once per snapshot: a client polling a job that has not changed gets
//! the bytes it got last time. The store hands out the same `Arc<Job>` for as long as a job is
//! unchanged (`Store::shared_job`, kept true by its job cache), so "same snapshot" is pointer
//! equality, and the entry's own `Arc` keeps that address from being reused by another job.
//! Jobs whose links are signed for a limited time (S3) are rendered every time.
use crate::store::Job;
use axum::body::Bytes;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A job's JSON is about 0.5–2 KiB, but a request may carry its images inline as `data:` URIs
/// (up to 6 MB), so the bodies are bounded in bytes too (and the jobs they were rendered from,
/// which hold the same text, come to about as much again).
const MAX_ENTRIES: usize = 10_000;
const MAX_BYTES: usize = 64 << 20;
/// A body this large (an inline image) is rendered on every poll rather than kept.
const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct RenderedJobs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: foldhash::HashMap<Uuid, (Arc<Job>, Bytes)>,
    bytes: usize,
}

impl RenderedJobs {
    /// The body rendered for this very snapshot, if it was.
    pub fn get(&self, job: &Arc<Job>) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (snapshot, body) = inner.entries.get(&job.id)?;
        Arc::ptr_eq(snapshot, job).then(|| body.clone())
    }

    pub fn put(&self, job: &Arc<Job>, body: Bytes) {
        if body.len() > MAX_BODY_BYTES {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let full = inner.entries.len() >= MAX_ENTRIES || inner.bytes + body.len() > MAX_BYTES;
        if full && !inner.entries.contains_key(&job.id) {
            // Polled jobs come back within seconds; starting over costs one render each.
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes += body.len();
        if let Some((_, old)) = inner.entries.insert(job.id, (job.clone(), body)) {
            inner.bytes -= old.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::JobStatus;
    use crate::store::fixtures;

    #[test]
    fn a_body_is_reused_for_the_same_snapshot_only() {
        let rendered = RenderedJobs::default();
        let snapshot = Arc::new(fixtures::job(JobStatus::Queued));
        assert_eq!(rendered.get(&snapshot), None);
        rendered.put(&snapshot, Bytes::from_static(b"queued"));
        assert_eq!(rendered.get(&snapshot).as_deref(), Some(&b"queued"[..]));

        // The store reloaded the job (it changed): an equal-looking but new snapshot renders again.
        let reloaded = Arc::new(Job::clone(&snapshot));
        assert_eq!(rendered.get(&reloaded), None);
        rendered.put(&reloaded, Bytes::from_static(b"running"));
        assert_eq!(rendered.get(&reloaded).as_deref(), Some(&b"running"[..]));
        assert_eq!(rendered.get(&snapshot), None, "the old snapshot's body is gone");
    }

    #[test]
    fn it_holds_a_bounded_number_of_jobs() {
        let rendered = RenderedJobs::default();
        let jobs: Vec<Arc<Job>> = (0..=MAX_ENTRIES).map(|_| Arc::new(fixtures::job(JobStatus::Queued))).collect();
        for job in &jobs {
            rendered.put(job, Bytes::from_static(b"{}"));
        }
        assert!(rendered.inner.lock().unwrap().entries.len() <= MAX_ENTRIES);
        assert!(rendered.get(jobs.last().unwrap()).is_some(), "the newest is kept");
    }

    #[test]
    fn it_holds_a_bounded_number_of_bytes_and_no_huge_body() {
        let rendered = RenderedJobs::default();
        let huge = Arc::new(fixtures::job(JobStatus::Queued));
        rendered.put(&huge, Bytes::from(vec![b' '; MAX_BODY_BYTES + 1]));
        assert_eq!(rendered.get(&huge), None, "a job with an inline image is rendered every time");

        let body = Bytes::from(vec![b' '; MAX_BODY_BYTES]);
        let jobs: Vec<Arc<Job>> =
            (0..MAX_BYTES / MAX_BODY_BYTES + 1).map(|_| Arc::new(fixtures::job(JobStatus::Queued))).collect();
        for job in &jobs {
            rendered.put(job, body.clone());
            let inner = rendered.inner.lock().unwrap();
            assert!(inner.bytes <= MAX_BYTES);
            assert_eq!(inner.bytes, inner.entries.values().map(|(_, b)| b.len()).sum::<usize>());
        }
        assert!(rendered.get(jobs.last().unwrap()).is_some(), "the newest is kept");
        // Rendering a kept job again replaces its body, and the count follows.
        rendered.put(jobs.last().unwrap(), Bytes::from_static(b"{}"));
        let inner = rendered.inner.lock().unwrap();
        assert_eq!(inner.bytes, inner.entries.values().map(|(_, b)| b.len()).sum::<usize>());
    }
}
