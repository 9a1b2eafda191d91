//! The retention sweeper of `serve`: deletes the result files of jobs that finished longer ago
//! than `--result-retention-days` and the assets uploaded longer ago than
//! `--asset-retention-days` (0: kept forever). The job stays (`GET /jobs/{id}` answers, with
//! `result.expired_at`); its result URLs answer 410 `result_expired`. An asset goes as if its
//! owner had deleted it: 404, and the account's storage use goes down.
//!
//! The order makes a crash harmless. A batch is first *claimed* in the store (hidden from other
//! replicas' sweepers for `CLAIM_FOR`), then its files are deleted, and only then is the store
//! changed (the result recorded as expired, the asset row deleted). A crash after the claim
//! leaves the batch to be claimed again once the claim lapses; a crash after the files went
//! leaves a URL answering 404 (never 200) until the next sweep finds the row still due, deletes
//! nothing more and records it. The store never calls a file expired that may still be served,
//! and no file is forgotten while its row remains.
pub mod policy;

use crate::storage::{Freed, ResultStorage};
use crate::store::{Store, StoreResult};
use policy::RetentionPolicy;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Rows claimed at once: a batch is deleted well within `CLAIM_FOR` even from a slow bucket.
pub const BATCH: u32 = 100;
/// How long a claimed batch stays hidden from other sweepers; one that died mid-batch leaves it
/// to be swept again after this.
pub const CLAIM_FOR: Duration = Duration::from_secs(10 * 60);

/// What one sweep deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Jobs whose result was recorded as expired.
    pub results: u64,
    /// Assets deleted.
    pub assets: u64,
    /// Bytes and files removed from storage.
    pub freed: Freed,
}

/// Sweeps on a timer (`RetentionPolicy::sweep_interval`) until `shutdown`; does nothing when
/// everything is kept.
pub fn spawn(
    store: Arc<dyn Store>,
    results: Arc<ResultStorage>,
    policy: RetentionPolicy,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(every) = policy.sweep_interval() else { return };
        // Registered at 0, so /metrics shows the series before the first deletion.
        for kind in ["result", "asset"] {
            metrics::counter!("ltx_retention_bytes_freed_total", "kind" => kind).increment(0);
            metrics::counter!("ltx_retention_files_deleted_total", "kind" => kind).increment(0);
        }
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match sweep(&*store, &results, policy, OffsetDateTime::now_utc(), &shutdown).await {
                Ok(r) if r != SweepReport::default() => tracing::info!(
                    results = r.results,
                    assets = r.assets,
                    bytes = r.freed.bytes,
                    files = r.freed.files,
                    "retention: deleted expired files"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; trying again later"),
            }
        }
    })
}

/// One sweep: every due result and asset as of `now`, a batch at a time, until none is left
/// (or `shutdown`).
pub async fn sweep(
    store: &dyn Store,
    results: &ResultStorage,
    policy: RetentionPolicy,
    now: OffsetDateTime,
    shutdown: &CancellationToken,
) -> StoreResult<SweepReport> {
    let mut report = SweepReport::default();
    if let Some(cutoff) = policy.results_cutoff(now) {
        loop {
            let batch = store.claim_expiring_results(cutoff, BATCH, CLAIM_FOR).await?;
            let full = batch.len() == BATCH as usize;
            for due in batch {
                let freed = match results.delete_result(&due.video_key, &due.poster_key).await {
                    Ok(freed) => freed,
                    Err(e) => {
                        // Not recorded: claimed again once the claim lapses.
                        tracing::warn!(job_id = %due.job_id, error = %e, "retention: could not delete a result");
                        continue;
                    }
                };
                count(&mut report.freed, "result", freed);
                if store.mark_result_expired(due).await? {
                    report.results += 1;
                }
            }
            if !full || shutdown.is_cancelled() {
                break;
            }
        }
    }
    if let Some(cutoff) = policy.assets_cutoff(now) {
        loop {
            let batch = store.claim_expiring_assets(cutoff, BATCH, CLAIM_FOR).await?;
            let full = batch.len() == BATCH as usize;
            for asset in batch {
                let size = match results.delete_file_measured(&asset.file_key).await {
                    Ok(size) => size,
                    Err(e) => {
                        tracing::warn!(asset_id = %asset.id, error = %e, "retention: could not delete an asset file");
                        continue;
                    }
                };
                count(&mut report.freed, "asset", Freed { bytes: size.unwrap_or(0), files: size.map_or(0, |_| 1) });
                // As `DELETE /assets/{id}` does: the row goes and the account's storage use with it.
                if store.delete_asset(asset.account_id, asset.id).await?.is_some() {
                    report.assets += 1;
                }
            }
            if !full || shutdown.is_cancelled() {
                break;
            }
        }
    }
    Ok(report)
}

fn count(total: &mut Freed, kind: &'static str, freed: Freed) {
    total.bytes += freed.bytes;
    total.files += freed.files;
    metrics::counter!("ltx_retention_bytes_freed_total", "kind" => kind).increment(freed.bytes);
    metrics::counter!("ltx_retention_files_deleted_total", "kind" => kind).increment(freed.files);
}
