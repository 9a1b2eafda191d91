//! Each job's JSON, rendered once per snapshot: a client polling a job that has not changed gets
//! the bytes it got last time. The store hands out the same `Arc<Job>` for as long as a job is
//! unchanged (`Store::shared_job`, kept true by its job cache), so "same snapshot" is pointer
//! equality, and the entry's own `Arc` keeps that address from being reused by another job.
//! Jobs whose links are signed for a limited time (S3) are rendered every time.
use crate::store::Job;
use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// A job's JSON is about 0.5–2 KiB; prompts are bounded (issue 21), so this is at most a few tens
/// of MiB even with the longest prompts.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct RenderedJobs {
    entries: Mutex<HashMap<Uuid, (Arc<Job>, Bytes)>>,
}

impl RenderedJobs {
    /// The body rendered for this very snapshot, if it was.
    pub fn get(&self, job: &Arc<Job>) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (snapshot, body) = entries.get(&job.id)?;
        Arc::ptr_eq(snapshot, job).then(|| body.clone())
    }

    pub fn put(&self, job: &Arc<Job>, body: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&job.id) {
            // Polled jobs come back within seconds; starting over costs one render each.
            entries.clear();
        }
        entries.insert(job.id, (job.clone(), body));
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
        assert!(rendered.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(rendered.get(jobs.last().unwrap()).is_some(), "the newest is kept");
    }
}
