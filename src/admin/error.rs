//! Why an admin action did nothing. The CLI prints the sentence; the admin HTTP API answers it
//! under the one API error with the matching code (api/admin/mod.rs).
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such account, key, token or job.
    #[error("{0}")]
    NotFound(String),
    /// The change breaks a rule the sentence names (a negative amount, a limit of 0, a balance
    /// below what unfinished jobs hold); nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// A cancel of a job that has already ended.
    #[error("{0}")]
    JobFinished(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        match e {
            StoreError::NotFound => AdminError::NotFound("not found".into()),
            StoreError::Refused(why) => AdminError::Invalid(why),
            other => AdminError::Store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_of_the_store_is_an_invalid_change_and_an_outage_stays_a_store_error() {
        assert!(matches!(AdminError::from(StoreError::Refused("no".into())), AdminError::Invalid(w) if w == "no"));
        assert!(matches!(AdminError::from(StoreError::NotFound), AdminError::NotFound(_)));
        let outage = AdminError::from(StoreError::Unavailable("down".into()));
        assert!(matches!(outage, AdminError::Store(StoreError::Unavailable(_))));
    }
}
