//! The scheduler of `serve`: on a timer, requeues jobs whose worker stopped heartbeating (up to
//! the retry limit, then `worker_lost`) and fails jobs that overran the maximum run time
//! (`timeout`). Backlog promotion happens inside every transaction that frees a slot.
use crate::store::Leases;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub fn spawn(
    store: Arc<dyn Leases>,
    every: Duration,
    max_attempts: u32,
    max_run_time: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match store.sweep(max_attempts, max_run_time).await {
                Ok(report) => {
                    for id in &report.requeued {
                        tracing::warn!(job_id = %id, "lease expired; job requeued");
                    }
                    for id in &report.failed {
                        tracing::warn!(job_id = %id, "job failed by the scheduler (timeout or worker lost)");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduler sweep failed"),
            }
        }
    })
}
