//! Every `code` an API error can carry, with its HTTP status and meaning: the one list that the
//! handlers, the fallback for framework errors and docs/api.md's "Error codes" table are held to.
use axum::http::StatusCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidContentType,
    Unauthorized,
    InsufficientCredits,
    NotFound,
    MethodNotAllowed,
    Timeout,
    JobFinished,
    IdempotencyConflict,
    StyleInUse,
    LeaseLost,
    PayloadTooLarge,
    TooManyJobs,
    InternalError,
    Unavailable,
    StorageUnavailable,
    StorageQuotaExceeded,
    AccountSuspended,
    RateLimited,
    EnhanceUnavailable,
    ResultExpired,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidContentType,
        ErrorCode::Unauthorized,
        ErrorCode::InsufficientCredits,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Timeout,
        ErrorCode::JobFinished,
        ErrorCode::IdempotencyConflict,
        ErrorCode::StyleInUse,
        ErrorCode::LeaseLost,
        ErrorCode::PayloadTooLarge,
        ErrorCode::TooManyJobs,
        ErrorCode::InternalError,
        ErrorCode::Unavailable,
        ErrorCode::StorageUnavailable,
        ErrorCode::StorageQuotaExceeded,
        ErrorCode::AccountSuspended,
        ErrorCode::RateLimited,
        ErrorCode::EnhanceUnavailable,
        ErrorCode::ResultExpired,
    ];

    /// The code on the wire, its usual status, and what it means (docs/api.md repeats these).
    pub const fn entry(self) -> (&'static str, StatusCode, &'static str) {
        use ErrorCode::*;
        match self {
            InvalidRequest => {
                ("invalid_request", StatusCode::BAD_REQUEST, "the request breaks a rule the sentence names")
            }
            InvalidContentType => {
                ("invalid_content_type", StatusCode::BAD_REQUEST, "a submit whose body is not `application/json`")
            }
            Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED, "a missing, malformed, invalid or revoked key"),
            InsufficientCredits => {
                ("insufficient_credits", StatusCode::PAYMENT_REQUIRED, "the available balance is short of the price")
            }
            NotFound => ("not_found", StatusCode::NOT_FOUND, "no such resource, or another account's"),
            MethodNotAllowed => {
                ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED, "the method is not offered on this path")
            }
            Timeout => ("timeout", StatusCode::REQUEST_TIMEOUT, "the request (or its body) took too long"),
            JobFinished => ("job_finished", StatusCode::CONFLICT, "a cancel of a job that has already ended"),
            IdempotencyConflict => {
                ("idempotency_conflict", StatusCode::CONFLICT, "an `Idempotency-Key` reused with another body")
            }
            StyleInUse => ("style_in_use", StatusCode::CONFLICT, "a style delete while unfinished jobs use it"),
            LeaseLost => ("lease_lost", StatusCode::CONFLICT, "worker API: the job's lease is no longer held"),
            PayloadTooLarge => {
                ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, "the body or file is over its limit")
            }
            TooManyJobs => ("too_many_jobs", StatusCode::TOO_MANY_REQUESTS, "the backlog is full; see `Retry-After`"),
            InternalError => ("internal_error", StatusCode::INTERNAL_SERVER_ERROR, "a fault of ours"),
            Unavailable => (
                "unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unreachable or the engine is still loading; retry after `Retry-After`",
            ),
            StorageUnavailable => {
                ("storage_unavailable", StatusCode::INSUFFICIENT_STORAGE, "an upload could not be stored; retry later")
            }
            StorageQuotaExceeded => (
                "storage_quota_exceeded",
                StatusCode::FORBIDDEN,
                "an upload past the account's storage quota of bytes or of files",
            ),
            AccountSuspended => {
                ("account_suspended", StatusCode::FORBIDDEN, "the key's account is suspended by the operator")
            }
            RateLimited => (
                "rate_limited",
                StatusCode::TOO_MANY_REQUESTS,
                "the key's request rate limit; see `Retry-After` and `RateLimit`",
            ),
            EnhanceUnavailable => (
                "enhance_unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "`POST /prompts/enhance` where no in-process engine can enhance prompts",
            ),
            ResultExpired => (
                "result_expired",
                StatusCode::GONE,
                "a result file deleted by the server's retention policy; the job remains",
            ),
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The status an error of this code is answered with; only the fallback for errors the
    /// framework made (error::with_json_error_body) answers `invalid_request` and `internal_error`
    /// with another 4xx or 5xx.
    pub const fn status(self) -> StatusCode {
        self.entry().1
    }

    pub const fn meaning(self) -> &'static str {
        self.entry().2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of docs/api.md's "Error codes" table: (code, status, meaning).
    fn documented() -> Vec<(String, u16, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
        let doc = std::fs::read_to_string(path).expect("docs/api.md is in the repository");
        let section = doc.split("\n## Error codes\n").nth(1).expect("docs/api.md has a `## Error codes` section");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
                let code = cells.first()?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.get(1)?.parse().unwrap_or_else(|_| panic!("`{code}`: the status is not a number"));
                Some((code.to_owned(), status, cells.get(2).unwrap_or(&"").to_string()))
            })
            .collect()
    }

    #[test]
    fn docs_api_md_documents_exactly_the_codes_with_their_statuses() {
        let documented = documented();
        for code in ErrorCode::ALL {
            let rows: Vec<_> = documented.iter().filter(|(c, _, _)| c == code.as_str()).collect();
            assert_eq!(rows.len(), 1, "`{}` must be documented once in docs/api.md", code.as_str());
            assert_eq!(rows[0].1, code.status().as_u16(), "`{}`: docs/api.md gives another status", code.as_str());
            assert_eq!(rows[0].2, code.meaning(), "`{}`: docs/api.md gives another meaning", code.as_str());
        }
        for (code, _, _) in &documented {
            assert!(
                ErrorCode::ALL.iter().any(|c| c.as_str() == code),
                "docs/api.md documents `{code}`, which no error carries"
            );
        }
    }

    #[test]
    fn all_lists_each_code_once_with_a_distinct_wire_string() {
        use ErrorCode::*;
        // A new variant fails to compile here: add it to `ALL` (and docs/api.md) too.
        match InvalidRequest {
            InvalidRequest | InvalidContentType | Unauthorized | InsufficientCredits | NotFound | MethodNotAllowed
            | Timeout | JobFinished | IdempotencyConflict | StyleInUse | LeaseLost | PayloadTooLarge | TooManyJobs
            | InternalError | Unavailable | StorageUnavailable | StorageQuotaExceeded | AccountSuspended
            | RateLimited | EnhanceUnavailable | ResultExpired => {}
        }
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            let (name, status, meaning) = code.entry();
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
            assert!(status.is_client_error() || status.is_server_error(), "{name}: {status}");
            assert!(!meaning.is_empty(), "{name}");
        }
    }
}
