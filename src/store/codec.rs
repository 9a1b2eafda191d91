//! Encodings both stores share: times as microseconds since the Unix epoch, the cap on counting
//! a job's place in line, and the key of a request's LoRA set.
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

/// The LoRA set a job needs fused into the transformer, as one comparable string (style ids
/// with strengths, sorted): a worker that has this set resident starts the job without a
/// rebuild. Empty for a job without styles.
pub fn style_set_key(styles: &[StyleRef]) -> String {
    let mut parts: Vec<String> = styles.iter().map(|s| format!("{}@{}", s.id, s.strength)).collect();
    parts.sort();
    parts.join(",")
}

/// A `LIKE` pattern matching the `style_key` of jobs that use style `id` (ids are UUIDs, so no
/// character in them is special to `LIKE`).
pub fn style_key_pattern(id: uuid::Uuid) -> String {
    format!("%{id}@%")
}

/// SQL list of the statuses of unfinished jobs.
pub const UNFINISHED_STATUSES: &str =
    "('backlogged', 'queued', 'scheduled', 'processing', 'sampling', 'intermediate-complete')";

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
    fn times_round_trip_at_microsecond_precision() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_456_000).unwrap();
        assert_eq!(to_time(to_us(t)), t);
    }
}
