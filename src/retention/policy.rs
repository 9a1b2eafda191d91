//! What the retention sweeper deletes and when, as pure functions of the settings and the clock:
//! a result is due once its job finished longer ago than the result retention, an asset once it
//! was uploaded longer ago than the asset retention; a retention of zero keeps forever.
use std::time::Duration;
use time::OffsetDateTime;

/// The longest the sweeper sleeps between rounds: a due file outlives its retention by at most
/// about this (plus one round's work).
pub const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// The shortest: a tiny retention (tests) does not turn the sweeper into a busy loop.
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long results and assets are kept; `None` is forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub results: Option<Duration>,
    pub assets: Option<Duration>,
}

/// A `--…-retention-days` value as a duration (0 stays 0: keep forever).
pub fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(24 * 60 * 60))
}

impl RetentionPolicy {
    /// From the configured ages, zero meaning keep forever.
    pub fn new(results: Duration, assets: Duration) -> RetentionPolicy {
        let kept = |age: Duration| (!age.is_zero()).then_some(age);
        RetentionPolicy { results: kept(results), assets: kept(assets) }
    }

    /// Results of jobs that finished before this instant are due (`None`: results are kept).
    pub fn results_cutoff(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.results.map(|age| cutoff(now, age))
    }

    /// Assets uploaded before this instant are due (`None`: assets are kept).
    pub fn assets_cutoff(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.assets.map(|age| cutoff(now, age))
    }

    /// How long the sweeper waits between rounds: a twentieth of the shorter retention, so a
    /// file outlives it by at most 5 %, within [`MIN_SWEEP_INTERVAL`, `MAX_SWEEP_INTERVAL`];
    /// `None` when everything is kept (no sweeper runs).
    pub fn sweep_interval(&self) -> Option<Duration> {
        let shortest = [self.results, self.assets].into_iter().flatten().min()?;
        Some((shortest / 20).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL))
    }
}

/// `now - age`, or the epoch when `age` reaches back past it (nothing is that old).
pub fn cutoff(now: OffsetDateTime, age: Duration) -> OffsetDateTime {
    time::Duration::try_from(age).ok().and_then(|age| now.checked_sub(age)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Whether something stamped `at` is past a retention of `age` at `now` (`None`: kept forever).
pub fn is_due(at: OffsetDateTime, age: Option<Duration>, now: OffsetDateTime) -> bool {
    age.is_some_and(|age| at < cutoff(now, age))
}

/// The result directory a `/results/…` path (or a result key) names: its first segment when it
/// is one of ours (32 lowercase hex digits, `storage::new_result_dir`), else `None`.
pub fn result_dir_of(path: &str) -> Option<&str> {
    let dir = path.trim_start_matches('/').split('/').next()?;
    (dir.len() == 32 && dir.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    #[test]
    fn zero_keeps_forever_and_days_are_days() {
        let policy = RetentionPolicy::new(days(30), Duration::ZERO);
        assert_eq!(policy.results, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(policy.assets, None);
        assert_eq!(policy.assets_cutoff(NOW), None, "assets are never due");
        assert_eq!(policy.results_cutoff(NOW), Some(datetime!(2026-11-01 12:00 UTC)));
        assert_eq!(days(u64::MAX), Duration::from_secs(u64::MAX), "saturates instead of overflowing");
    }

    #[test]
    fn due_only_strictly_past_the_age() {
        let age = Some(Duration::from_secs(60));
        assert!(is_due(datetime!(2026-12-01 11:58:59 UTC), age, NOW));
        assert!(!is_due(datetime!(2026-12-01 11:59 UTC), age, NOW), "exactly the age is still kept");
        assert!(!is_due(datetime!(2026-12-01 11:59:30 UTC), age, NOW));
        assert!(!is_due(datetime!(1990-01-01 0:00 UTC), None, NOW), "no retention: never due");
        // An age beyond the epoch makes nothing due rather than panicking.
        assert_eq!(cutoff(NOW, Duration::from_secs(u64::MAX)), OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn the_sweeper_wakes_in_proportion_to_the_shortest_retention_within_bounds() {
        assert_eq!(RetentionPolicy::new(Duration::ZERO, Duration::ZERO).sweep_interval(), None);
        assert_eq!(RetentionPolicy::new(days(30), days(1)).sweep_interval(), Some(MAX_SWEEP_INTERVAL));
        assert_eq!(
            RetentionPolicy::new(Duration::from_secs(600), Duration::ZERO).sweep_interval(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            RetentionPolicy::new(Duration::ZERO, Duration::from_secs(2)).sweep_interval(),
            Some(MIN_SWEEP_INTERVAL)
        );
    }

    #[test]
    fn only_our_result_directories_are_recognised() {
        let dir = "0123456789abcdef0123456789abcdef";
        assert_eq!(result_dir_of(&format!("/{dir}/video.mp4")), Some(dir));
        assert_eq!(result_dir_of(&format!("{dir}/poster.jpg")), Some(dir));
        assert_eq!(result_dir_of(dir), Some(dir));
        assert_eq!(result_dir_of("/0123456789ABCDEF0123456789ABCDEF/video.mp4"), None, "upper case is not ours");
        assert_eq!(result_dir_of("/../etc/passwd"), None);
        assert_eq!(result_dir_of("/library/assets/x.png"), None);
        assert_eq!(result_dir_of(""), None);
    }
}
