//! What a notification on `ltx_jobs` says changed (the triggers of schema_job_notify.sql and
//! schema_job_notify_moves.sql write it; a submit batch writes its own, submit_rows.rs): the
//! job cache (job_cache.rs) applies it.
use uuid::Uuid;

/// What one notification says changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// This job changed; `queue` when it may have entered, left or moved in a queue (its status or
    /// its place in line changed, or it was inserted or deleted).
    Job { id: Uuid, queue: bool },
    /// Too many rows changed at once to name them (a bulk statement): drop everything.
    Everything,
    /// Jobs may have entered, left or moved in a queue, which ones unknown (jobs were inserted,
    /// or this replica raised an account's limits, promoting its backlog): no queued or
    /// backlogged entry holds.
    Queues,
    /// This job entered or left a line: it left the FIFO queue (it had been queued at `left`,
    /// µs) and/or entered it (queued at `entered`); both `None` when only a backlog moved.
    /// Enough to patch a copy of the queue's head.
    Moved { id: Uuid, left: Option<i64>, entered: Option<i64> },
}

/// Parses a notification's payload (schema_job_notify_moves.sql): ids separated by commas, each
/// followed by `q` when a line may have moved in ways unsaid, or by `m<left>/<entered>` when it
/// left and/or entered the FIFO queue; `Q` when queues moved (jobs were inserted); or `*` for
/// everything. Unparseable parts count as `*`.
pub fn parse_payload(payload: &str) -> Vec<Change> {
    let mut changes = Vec::new();
    for part in payload.split(',').filter(|p| !p.is_empty()) {
        match parse_part(part) {
            Some(change) => changes.push(change),
            None => return vec![Change::Everything],
        }
    }
    changes
}

fn parse_part(part: &str) -> Option<Change> {
    if part == "Q" {
        return Some(Change::Queues);
    }
    let id_len = part.find(['q', 'm']).unwrap_or(part.len());
    let id = Uuid::parse_str(&part[..id_len]).ok()?;
    let time = |s: &str| if s.is_empty() { Some(None) } else { s.parse().ok().map(Some) };
    match &part[id_len..] {
        "" => Some(Change::Job { id, queue: false }),
        "q" => Some(Change::Job { id, queue: true }),
        moved => {
            let (left, entered) = moved.strip_prefix('m')?.split_once('/')?;
            Some(Change::Moved { id, left: time(left)?, entered: time(entered)? })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_jobs_and_their_queue_moves() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert_eq!(
            parse_payload(&format!("{a}q,{b}")),
            vec![Change::Job { id: a, queue: true }, Change::Job { id: b, queue: false }]
        );
        assert_eq!(
            parse_payload(&format!("{a}m17/,{b}m/42,{a}m5/6")),
            vec![
                Change::Moved { id: a, left: Some(17), entered: None },
                Change::Moved { id: b, left: None, entered: Some(42) },
                Change::Moved { id: a, left: Some(5), entered: Some(6) },
            ]
        );
        assert_eq!(parse_payload(&format!("{a}m17")), vec![Change::Everything]);
        assert_eq!(parse_payload(&format!("{a}mx/")), vec![Change::Everything]);
        assert_eq!(parse_payload("*"), vec![Change::Everything]);
        assert_eq!(parse_payload("Q"), vec![Change::Queues]);
        assert_eq!(parse_payload("nonsense"), vec![Change::Everything]);
        assert_eq!(parse_payload(""), vec![]);
    }
}
