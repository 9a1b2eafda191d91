//! Retention: which finished jobs' result files and which assets the sweeper deletes, and the
//! record that a job's result was deleted (its URLs then answer 410, not 404). A sweeper claims
//! a batch (hidden from other replicas' sweepers for a while), deletes the files, then records
//! it, so a crash between the two leaves the claim to lapse and the batch to be swept again.
use super::{Asset, StoreResult};
use async_trait::async_trait;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// A finished job whose result files are due for deletion.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpiringResult {
    pub job_id: Uuid,
    pub account_id: Uuid,
    pub video_key: String,
    pub poster_key: String,
}

impl ExpiringResult {
    /// The result's directory (`<32 hex>`): what `/results/<dir>/…` URLs name.
    pub fn dir(&self) -> &str {
        self.video_key.split_once('/').map_or(&self.video_key, |(dir, _)| dir)
    }
}

#[async_trait]
pub trait Retention: Send + Sync + 'static {
    /// Takes up to `limit` jobs (oldest first) that finished before `finished_before` with a
    /// result not yet deleted, hiding them from other calls for `claim_for`.
    async fn claim_expiring_results(
        &self,
        finished_before: OffsetDateTime,
        limit: u32,
        claim_for: Duration,
    ) -> StoreResult<Vec<ExpiringResult>>;
    /// Records that the job's result files are deleted (now); its result stays readable and its
    /// URLs answer 410. False when it was already recorded (or there is no such job).
    async fn mark_result_expired(&self, result: ExpiringResult) -> StoreResult<bool>;
    /// When the result in directory `dir` was deleted, if it was.
    async fn result_expired_at(&self, dir: String) -> StoreResult<Option<OffsetDateTime>>;
    /// Takes up to `limit` assets (oldest first) uploaded before `uploaded_before`, hiding them
    /// from other calls for `claim_for`. The sweeper deletes each file, then the row with
    /// `Library::delete_asset` (which gives the account its storage back).
    async fn claim_expiring_assets(
        &self,
        uploaded_before: OffsetDateTime,
        limit: u32,
        claim_for: Duration,
    ) -> StoreResult<Vec<Asset>>;
}
