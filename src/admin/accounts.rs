//! The operator's view across accounts: the list, suspension, the ledger and usage per period.
use super::{not_found, operator_json, AdminError, AdminResult};
use crate::job_view::rfc3339;
use crate::store::{Accounts, Admin};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// Most entries one page of accounts or of the ledger holds.
pub const MAX_PAGE: u32 = 1000;

/// Accounts newest first, created strictly before `before`; `next_cursor` (the creation time of
/// the last one) is set when the page is full.
pub async fn list_accounts(store: &dyn Admin, before: Option<OffsetDateTime>, limit: u32) -> AdminResult {
    let limit = page_size(limit)?;
    let accounts = store.list_accounts(before, limit).await?;
    let next_cursor = (accounts.len() == limit as usize).then(|| accounts.last().map(|a| rfc3339(a.created_at)));
    let items: Vec<_> = accounts.iter().map(operator_json).collect();
    Ok(json!({ "items": items, "next_cursor": next_cursor.flatten() }))
}

/// Suspends the account (its API keys get 403 `account_suspended`) or lifts the suspension.
/// Its jobs already submitted are left alone; cancel them with `cancel_job` if they must stop.
pub async fn set_suspended(store: &dyn Admin, id: Uuid, suspended: bool) -> AdminResult {
    let account = store.set_suspended(id, suspended).await.map_err(|e| not_found(e, id))?;
    Ok(operator_json(&account))
}

/// The account's latest `limit` ledger entries, newest first.
pub async fn ledger(store: &dyn Accounts, id: Uuid, limit: u32) -> AdminResult {
    let limit = page_size(limit)?;
    store.account(id).await.map_err(|e| not_found(e, id))?;
    let entries = store.ledger(id, limit).await?;
    Ok(json!({ "account_id": id, "items": entries }))
}

/// Jobs submitted and money charged and credited in `[from, to)`.
pub async fn usage_between(store: &dyn Admin, id: Uuid, from: OffsetDateTime, to: OffsetDateTime) -> AdminResult {
    if from >= to {
        return Err(AdminError::Invalid("the period is empty: `from` must be before `to`".into()));
    }
    let usage = store.usage_between(id, from, to).await.map_err(|e| not_found(e, id))?;
    let mut out = json!({ "account_id": id, "from": rfc3339(from), "to": rfc3339(to) });
    if let (Some(out), serde_json::Value::Object(usage)) = (out.as_object_mut(), json!(usage)) {
        out.extend(usage);
    }
    Ok(out)
}

fn page_size(limit: u32) -> Result<u32, AdminError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(AdminError::Invalid(format!("the limit must be from 1 to {MAX_PAGE}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_holds_one_to_a_thousand_entries() {
        assert_eq!(page_size(1).unwrap(), 1);
        assert_eq!(page_size(MAX_PAGE).unwrap(), MAX_PAGE);
        assert!(matches!(page_size(0), Err(AdminError::Invalid(_))));
        assert!(matches!(page_size(MAX_PAGE + 1), Err(AdminError::Invalid(_))));
    }
}
