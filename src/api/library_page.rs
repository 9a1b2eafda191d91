//! Paging of assets and styles. Krea's `cursor` is the RFC 3339 time of the last item seen, and
//! `next_cursor` stays exactly that whenever the time alone resumes without a gap: the store
//! stamps each account's items strictly after its previous one, so within one account a time
//! names one item. Where the item after a page shares the last one's time (public styles of
//! different accounts, or rows stored before the store stamped them), `next_cursor` is
//! `<time>~<id>`, an opaque value that resumes right after that item (lists are ordered by time,
//! then id). Both forms are accepted back.
use super::error::ApiError;
use super::job_view::rfc3339;
use super::page::{page_json, Page};
use crate::store::LibraryCursor;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// Between the time and the id of a cursor: neither an RFC 3339 time nor a UUID contains it, and
/// it needs no escaping in a query string.
const SEPARATOR: char = '~';

pub struct LibraryPage {
    page: Page,
    pub before: Option<LibraryCursor>,
}

impl LibraryPage {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<LibraryPage, ApiError> {
        let (time, id) = match cursor.and_then(|c| c.split_once(SEPARATOR)) {
            Some((time, id)) => match Uuid::parse_str(id) {
                Ok(id) => (Some(time), Some(id)),
                // Refused as any other string that is not a time is, with the same message.
                Err(_) => (cursor, None),
            },
            None => (cursor, None),
        };
        let page = Page::parse(limit, time)?;
        let before = page.before.map(|time| LibraryCursor { time, id });
        Ok(LibraryPage { page, before })
    }

    pub fn limit(&self) -> u32 {
        self.page.limit
    }

    /// How many rows to ask the store for: the page and the one after it, which tells whether the
    /// page's last time alone resumes exactly.
    pub fn fetch(&self) -> u32 {
        self.page.limit + 1
    }

    /// `{items, next_cursor, nextCursor}` for rows read with `fetch`, newest first; `key` gives a
    /// row's time and id.
    pub fn json<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> (OffsetDateTime, Uuid),
        view: impl FnMut(&T) -> Value,
    ) -> Value {
        let limit = self.page.limit as usize;
        let following = rows.get(limit).map(|row| key(row).0);
        rows.truncate(limit);
        let last = rows.last().map(&key).filter(|_| rows.len() == limit);
        page_json(rows.iter().map(view).collect(), next_cursor(last, following))
    }
}

/// The cursor after a full page whose last item is `last`, `following` being the time of the item
/// after it, if any: the time alone unless that item shares it.
pub fn next_cursor(last: Option<(OffsetDateTime, Uuid)>, following: Option<OffsetDateTime>) -> Option<String> {
    let (time, id) = last?;
    Some(match following == Some(time) {
        true => format!("{}{SEPARATOR}{id}", rfc3339(time)),
        false => rfc3339(time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const ID: &str = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";

    #[test]
    fn the_time_alone_is_the_cursor_unless_the_next_item_shares_it() {
        let (t, id) = (datetime!(2026-12-01 09:47:18.123456 UTC), Uuid::parse_str(ID).unwrap());
        assert_eq!(next_cursor(None, Some(t)), None, "a page that is not full has no next");
        assert_eq!(next_cursor(Some((t, id)), None).as_deref(), Some("2026-12-01T09:47:18.123456Z"));
        let older = datetime!(2026-12-01 09:47:18.123455 UTC);
        assert_eq!(next_cursor(Some((t, id)), Some(older)).as_deref(), Some("2026-12-01T09:47:18.123456Z"));
        let tied = format!("2026-12-01T09:47:18.123456Z~{ID}");
        assert_eq!(next_cursor(Some((t, id)), Some(t)), Some(tied));
    }

    #[test]
    fn both_cursor_forms_are_read_back_and_anything_else_is_refused() {
        let t = datetime!(2026-12-01 09:47:18.123456 UTC);
        let id = Uuid::parse_str(ID).unwrap();
        let parse = |cursor: &str| LibraryPage::parse(Some("7"), Some(cursor)).map(|p| p.before);
        assert_eq!(parse("2026-12-01T09:47:18.123456Z").ok(), Some(Some(LibraryCursor { time: t, id: None })));
        let tied = format!("2026-12-01T09:47:18.123456Z~{ID}");
        assert_eq!(parse(&tied).ok(), Some(Some(LibraryCursor { time: t, id: Some(id) })));
        for bad in ["yesterday", "2026-12-01T09:47:18Z~not-an-id", "~6f9619ff-8b86-d011-b42d-00cf4fc964ff", ""] {
            assert!(parse(bad).is_err(), "{bad:?} is refused");
        }
        let page = LibraryPage::parse(Some("7"), None).ok().unwrap();
        assert_eq!((page.before, page.limit(), page.fetch()), (None, 7, 8));
    }

    #[test]
    fn a_page_shows_limit_rows_and_reads_the_one_after_only_for_its_cursor() {
        let t = datetime!(2026-12-01 09:47:18 UTC);
        let ids: Vec<Uuid> = (0..4u128).rev().map(Uuid::from_u128).collect();
        let rows: Vec<(OffsetDateTime, Uuid)> = vec![(t, ids[0]), (t, ids[1]), (t, ids[2]), (t, ids[3])];
        let page = LibraryPage::parse(Some("3"), None).ok().unwrap();
        let body = page.json(rows.clone(), |r| *r, |r| Value::String(r.1.to_string()));
        let shown: Vec<Value> = ids[..3].iter().map(|id| Value::String(id.to_string())).collect();
        assert_eq!(body["items"], Value::Array(shown));
        let cursor = format!("2026-12-01T09:47:18Z~{}", ids[2]);
        assert_eq!((body["next_cursor"].as_str(), body["nextCursor"].as_str()), (Some(&*cursor), Some(&*cursor)));
        let last_page = page.json(rows[..2].to_vec(), |r| *r, |r| Value::String(r.1.to_string()));
        assert_eq!(last_page["next_cursor"], Value::Null, "fewer rows than the page: nothing follows");
    }
}
