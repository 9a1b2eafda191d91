//! One watcher of the store for every event stream of this process. Streams subscribe to a job
//! and are woken only when what they show changes; the watcher reads all watched jobs once per
//! tick in one batch (one query on PostgreSQL), so 1,000 open streams cost the store five reads
//! a second instead of five thousand.
use crate::store::{Job, Jobs};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// How often watched jobs are read (a stream shows a change at most this late).
pub const TICK: Duration = Duration::from_millis(200);

/// What a subscriber sees change.
pub type Fingerprint = (crate::domain::job::JobStatus, u64, Option<u64>);

pub fn fingerprint(job: &Job) -> Fingerprint {
    (job.status, (job.progress * 1000.0).round() as u64, job.queue_position)
}

/// The latest state of a job: `None` once it is gone or unreadable (the stream ends).
pub type Latest = Option<Arc<Job>>;

#[derive(Default)]
pub struct JobWatch {
    /// (account, job) → the channel its streams read. Entries without receivers are dropped at
    /// the next tick.
    watched: Mutex<HashMap<(Uuid, Uuid), watch::Sender<Latest>>>,
}

impl JobWatch {
    /// Starts the watcher; it stops when the last `Arc<JobWatch>` is dropped.
    pub fn start(store: Arc<dyn Jobs>) -> Arc<JobWatch> {
        let hub = Arc::new(JobWatch::default());
        tokio::spawn(run(Arc::downgrade(&hub), store));
        hub
    }

    /// Follows `job` (already read by the caller, who checked the account may see it).
    pub fn subscribe(&self, account: Uuid, job: Job) -> watch::Receiver<Latest> {
        let mut watched = self.watched.lock().expect("not poisoned");
        watched.entry((account, job.id)).or_insert_with(|| watch::Sender::new(Some(Arc::new(job)))).subscribe()
    }

    /// The jobs someone still follows; forgets the others.
    fn keys(&self) -> Vec<(Uuid, Uuid)> {
        let mut watched = self.watched.lock().expect("not poisoned");
        watched.retain(|_, sender| sender.receiver_count() > 0);
        watched.keys().copied().collect()
    }

    fn publish(&self, key: (Uuid, Uuid), latest: Latest) {
        let watched = self.watched.lock().expect("not poisoned");
        if let Some(sender) = watched.get(&key) {
            sender.send_if_modified(|current| {
                let changed = current.as_deref().map(fingerprint) != latest.as_deref().map(fingerprint);
                if changed {
                    *current = latest;
                }
                changed
            });
        }
    }
}

async fn run(hub: Weak<JobWatch>, store: Arc<dyn Jobs>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(keys) = hub.upgrade().map(|hub| hub.keys()) else { return };
        if keys.is_empty() {
            continue;
        }
        match store.watched_jobs(keys.clone()).await {
            Ok(jobs) => {
                let Some(hub) = hub.upgrade() else { return };
                let mut found: HashMap<Uuid, Job> = jobs.into_iter().map(|j| (j.id, j)).collect();
                for key in keys {
                    hub.publish(key, found.remove(&key.1).map(Arc::new));
                }
            }
            // A store hiccup: streams keep showing the last state and the next tick tries again.
            Err(e) => tracing::warn!(error = %e, "reading watched jobs failed"),
        }
    }
}
