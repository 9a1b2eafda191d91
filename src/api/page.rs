//! Krea's list paging, shared by jobs, assets and styles: `limit` 1..1000 (default 100) and a
//! `cursor` that is the RFC 3339 time of the last item seen (items strictly older follow).
use super::error::ApiError;
use super::job_view::rfc3339;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const MAX_LIMIT: u32 = 1000;

pub struct Page {
    pub limit: u32,
    pub before: Option<OffsetDateTime>,
}

impl Page {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Page, ApiError> {
        let limit =
            match limit {
                None => 100,
                Some(text) => text.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    ApiError::bad_request(format!("`limit` must be an integer from 1 to {MAX_LIMIT}."))
                })?,
            };
        let before = match cursor {
            None => None,
            Some(text) => Some(OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                ApiError::bad_request("`cursor` must be an RFC 3339 date-time (a `next_cursor` value).")
            })?),
        };
        Ok(Page { limit, before })
    }

    /// `{items, next_cursor, nextCursor}` (Krea's docs use both spellings); the cursor is set
    /// when the page is full, from the time of its last item.
    pub fn json<T: serde::Serialize>(&self, items: Vec<T>, last_time: Option<OffsetDateTime>) -> Value {
        let next_cursor = (items.len() == self.limit as usize).then(|| last_time.map(rfc3339)).flatten();
        page_json(items, next_cursor)
    }
}

/// `{items, next_cursor, nextCursor}` with the cursor given.
pub fn page_json<T: serde::Serialize>(items: Vec<T>, next_cursor: Option<String>) -> Value {
    json!({ "items": items, "next_cursor": next_cursor, "nextCursor": next_cursor })
}
