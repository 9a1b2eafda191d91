//! Any account's job, for the operator: shown with its owner and cost, and cancelled.
use super::{AdminError, AdminResult};
use crate::job_view::{job_json, result_urls};
use crate::storage::ResultStorage;
use crate::store::{CancelRefusal, Job, Store};
use serde_json::{json, Value};
use uuid::Uuid;

/// The job as its owner sees it (with result URLs when `results` is given: the server signs
/// them; the CLI has none), plus its account, price, attempts and engine.
pub async fn show_job(store: &dyn Store, results: Option<&ResultStorage>, id: Uuid) -> AdminResult {
    let job = store.any_job(id).await?.ok_or_else(|| no_job(id))?;
    Ok(operator_job_json(&job, results).await)
}

/// Cancels any account's job (its hold is released as when its owner cancels it).
pub async fn cancel_job(store: &dyn Store, results: Option<&ResultStorage>, id: Uuid) -> AdminResult {
    let job = store.any_job(id).await?.ok_or_else(|| no_job(id))?;
    match store.cancel(job.account_id, id).await? {
        Ok(job) => Ok(operator_job_json(&job, results).await),
        Err(CancelRefusal::NotFound) => Err(no_job(id)),
        Err(CancelRefusal::AlreadyTerminal(status)) => {
            Err(AdminError::JobFinished(format!("the job is already {} and cannot be cancelled", status.as_str())))
        }
    }
}

fn no_job(id: Uuid) -> AdminError {
    AdminError::NotFound(format!("no job with id {id}"))
}

async fn operator_job_json(job: &Job, results: Option<&ResultStorage>) -> Value {
    let urls = match results {
        Some(results) => result_urls(results, job).await,
        None => None,
    };
    let mut out = json!(job_json(job, urls));
    out["account_id"] = json!(job.account_id);
    out["price_usd"] = json!(job.price);
    out["attempts"] = json!(job.attempts);
    out["engine"] = json!(job.engine);
    out
}
