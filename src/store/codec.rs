//! Encodings both stores share: times as microseconds since the Unix epoch, the cap on counting
//! a job's place in line, and the key of a request's LoRA set.
use crate::domain::job::JobStatus;
use crate::domain::request::StyleRef;
use time::OffsetDateTime;

pub fn to_time(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn to_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Now, at the stores' precision (microseconds), so a value read back equals the one written.
pub fn now() -> OffsetDateTime {
    to_time(to_us(OffsetDateTime::now_utc()))
}

/// Jobs ahead are counted up to this many, so reading a job costs the same however long the
/// queue is; a job further back reports `QUEUE_POSITION_CAP + 1` ("more than 1,000 ahead").
pub const QUEUE_POSITION_CAP: i64 = 1000;

/// The LoRA set a job needs applied to the transformer, as one comparable string: a worker
/// that has this set resident starts the job without a switch. Empty for a job without styles.
pub fn style_set_key(styles: &[StyleRef]) -> String {
    style_set_key_of(styles.iter().map(|s| (s.id.as_str(), s.strength)))
}

/// The key of a LoRA set given as (style id, strength) pairs, normalised so that every request
/// that produces the same weights has the same key: entries of one id are merged (strengths
/// added, in ascending order so the sum does not depend on request order), zero strengths
/// dropped, ids sorted; then `id@strength` joined by `,` (strength as Rust's `f64` Display:
/// `1`, `0.5`, never an exponent). The engine (engines/ltx) computes the same key for its
/// resident set, so the scheduler can match the two.
pub fn style_set_key_of<'a>(styles: impl IntoIterator<Item = (&'a str, f64)>) -> String {
    let mut entries: Vec<(&str, f64)> = styles.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0).then(a.1.total_cmp(&b.1)));
    let mut merged: Vec<(&str, f64)> = Vec::with_capacity(entries.len());
    for (id, strength) in entries {
        match merged.last_mut() {
            Some((last, sum)) if *last == id => *sum += strength,
            _ => merged.push((id, strength)),
        }
    }
    merged.iter().filter(|(_, s)| *s != 0.0).map(|(id, s)| format!("{id}@{s}")).collect::<Vec<_>>().join(",")
}

/// A `LIKE` pattern matching the `style_key` of jobs that use style `id` (ids are UUIDs, so no
/// character in them is special to `LIKE`).
pub fn style_key_pattern(id: uuid::Uuid) -> String {
    format!("%{id}@%")
}

/// A job status as an SQL string literal. Statements take their statuses from `JobStatus`
/// rather than spelling them; a literal (not a bound parameter) where a partial index's predicate
/// must match the statement's text.
pub fn status_sql(status: JobStatus) -> String {
    format!("'{}'", status.as_str())
}

/// The statuses a predicate selects, written as an SQL list (`('queued', 'scheduled')`) when
/// formatted into a statement.
#[derive(Clone, Copy)]
pub struct StatusList(pub fn(JobStatus) -> bool);

impl std::fmt::Display for StatusList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let listed: Vec<String> = JobStatus::ALL.into_iter().filter(|s| (self.0)(*s)).map(status_sql).collect();
        write!(f, "({})", listed.join(", "))
    }
}

/// SQL list of the statuses of unfinished jobs.
pub const UNFINISHED_STATUSES: StatusList = StatusList(|s| !s.is_terminal());

/// SQL list of the statuses a worker's lease holds.
pub const LEASED_STATUSES: StatusList = StatusList(JobStatus::is_leased);

#[cfg(test)]
mod tests {
    use super::*;

    fn style(id: &str, strength: f64) -> StyleRef {
        StyleRef { id: id.into(), strength }
    }

    #[test]
    fn a_style_set_key_ignores_order_but_not_strength() {
        assert_eq!(style_set_key(&[]), "");
        assert_eq!(style_set_key(&[style("b", 1.0), style("a", 0.5)]), "a@0.5,b@1");
        assert_eq!(
            style_set_key(&[style("a", 0.5), style("b", 1.0)]),
            style_set_key(&[style("b", 1.0), style("a", 0.5)])
        );
        assert_ne!(style_set_key(&[style("a", 0.5)]), style_set_key(&[style("a", 0.6)]));
    }

    #[test]
    fn a_style_set_key_drops_zero_strengths_and_merges_duplicates() {
        let a = style_set_key(&[style("a", 0.5)]);
        assert_eq!(style_set_key(&[style("a", 0.5), style("b", 0.0)]), a, "a zero-strength style changes nothing");
        assert_eq!(style_set_key(&[style("a", 0.0)]), "", "only zero strengths: the plain model");
        assert_eq!(style_set_key(&[style("a", 0.25), style("a", 0.25)]), a, "one id twice: strengths added");
        assert_eq!(style_set_key(&[style("a", 0.5), style("b", 1.0), style("b", -1.0)]), a, "a sum of 0 is dropped");
        assert_eq!(style_set_key(&[style("b", -0.5), style("a", 2.0), style("b", 1.5)]), "a@2,b@1");
        assert_eq!(style_set_key_of([("b", 0.3), ("a", 0.5)]), "a@0.5,b@0.3");
    }

    #[test]
    fn a_merged_sum_does_not_depend_on_request_order() {
        let parts = [0.1, 0.2, 0.7];
        let forward: Vec<StyleRef> = parts.iter().map(|&s| style("a", s)).collect();
        let backward: Vec<StyleRef> = parts.iter().rev().map(|&s| style("a", s)).collect();
        assert_eq!(style_set_key(&forward), style_set_key(&backward));
        // An id that is a prefix of another still sorts by id, not by the joined text.
        assert_eq!(style_set_key_of([("a-", 1.0), ("a", 1.0)]), "a@1,a-@1");
    }

    #[test]
    fn status_lists_come_from_the_status_vocabulary() {
        assert_eq!(status_sql(JobStatus::IntermediateComplete), "'intermediate-complete'");
        assert_eq!(
            UNFINISHED_STATUSES.to_string(),
            "('backlogged', 'queued', 'scheduled', 'processing', 'sampling', 'intermediate-complete')"
        );
        assert_eq!(LEASED_STATUSES.to_string(), "('scheduled', 'processing', 'sampling', 'intermediate-complete')");
    }

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_456_000).unwrap();
        assert_eq!(to_time(to_us(t)), t);
    }
}
