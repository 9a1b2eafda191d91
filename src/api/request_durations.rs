//! `http_request_duration_seconds{method,route}`: a Prometheus histogram of counts in fixed
//! buckets, kept here rather than by the metrics exporter.
//!
//! The exporter keeps every sample a histogram is given (value and time, 24 bytes) until a
//! scrape or an upkeep drains them, and reads the clock again for each. Every request is timed,
//! so on a server nobody scrapes that was a leak of ~1.5 MB per second at 60k polls/s. Here a
//! request adds one to its bucket and its time to the sum: fixed memory per (method, route),
//! two atomic additions, no allocation.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: the ones every `_seconds` histogram has.
const BOUNDS: [f64; 20] = super::metrics::BUCKETS;

/// The durations of one (method, route): per bucket (not cumulative; the last is `+Inf`) and
/// their sum in nanoseconds (exact; overflows after 584 years of request time).
pub struct Durations {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Durations {
    fn new() -> Durations {
        Durations { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_nanos: AtomicU64::new(0) }
    }

    pub fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        // Most requests land in the first bucket or two: a scan beats a binary search here.
        let bucket = BOUNDS.iter().position(|bound| seconds <= *bound).unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The histogram's lines for these labels (`method="GET",route="/jobs/:id"`).
    fn render(&self, labels: &str, out: &mut String) {
        const NAME: &str = "http_request_duration_seconds";
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            match BOUNDS.get(i) {
                Some(bound) => writeln!(out, "{NAME}_bucket{{{labels},le=\"{bound}\"}} {cumulative}"),
                None => writeln!(out, "{NAME}_bucket{{{labels},le=\"+Inf\"}} {cumulative}"),
            }
            .expect("writing to a String");
        }
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        writeln!(out, "{NAME}_sum{{{labels}}} {sum}\n{NAME}_count{{{labels}}} {cumulative}")
            .expect("writing to a String");
    }
}

/// Every (method, route label) that has been timed, by its label pairs, sorted for the scrape.
fn registry() -> &'static Mutex<BTreeMap<String, Arc<Durations>>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, Arc<Durations>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The durations of `method` on `route` (a label value without quotes, backslashes or line
/// breaks: a route template, or one of our names), shared by everyone who asks for the same.
pub fn of(method: &'static str, route: &str) -> Arc<Durations> {
    debug_assert!(!route.contains(['"', '\\', '\n']), "{route}");
    let labels = format!("method=\"{method}\",route=\"{route}\"");
    let mut registry = registry().lock().unwrap_or_else(|e| e.into_inner());
    registry.entry(labels).or_insert_with(|| Arc::new(Durations::new())).clone()
}

/// The histogram in the Prometheus text format, with its `# TYPE` line; empty before the first
/// request.
pub fn render() -> String {
    let registry = registry().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    if !registry.is_empty() {
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
    }
    for (labels, durations) in registry.iter() {
        durations.render(labels, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_in_its_bucket_and_every_one_above() {
        let d = Durations::new();
        d.record(Duration::from_micros(200)); // ≤ 0.0005
        d.record(Duration::from_micros(500)); // on a bound: ≤ 0.0005
        d.record(Duration::from_millis(3)); // ≤ 0.005
        d.record(Duration::from_secs(3 * 3600)); // past the last bound
        let mut out = String::new();
        d.render(r#"method="GET",route="/x""#, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), BOUNDS.len() + 3);
        assert_eq!(lines[0], r#"http_request_duration_seconds_bucket{method="GET",route="/x",le="0.0005"} 2"#);
        assert_eq!(lines[2], r#"http_request_duration_seconds_bucket{method="GET",route="/x",le="0.0025"} 2"#);
        assert_eq!(lines[3], r#"http_request_duration_seconds_bucket{method="GET",route="/x",le="0.005"} 3"#);
        assert_eq!(lines[19], r#"http_request_duration_seconds_bucket{method="GET",route="/x",le="7200"} 3"#);
        assert_eq!(lines[20], r#"http_request_duration_seconds_bucket{method="GET",route="/x",le="+Inf"} 4"#);
        assert_eq!(lines[21], r#"http_request_duration_seconds_sum{method="GET",route="/x"} 10800.0037"#);
        assert_eq!(lines[22], r#"http_request_duration_seconds_count{method="GET",route="/x"} 4"#);
    }

    #[test]
    fn the_same_labels_share_one_histogram_and_the_scrape_parses() {
        let a = of("GET", "/test/durations/:id");
        let b = of("GET", "/test/durations/:id");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &of("POST", "/test/durations/:id")));
        a.record(Duration::from_millis(20));
        b.record(Duration::from_millis(40));
        let text = render();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
        let ours = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "http_request_duration_seconds"
                    && s.labels.get("route") == Some("/test/durations/:id")
                    && s.labels.get("method") == Some("GET")
            })
            .expect("the histogram is in the scrape");
        let prometheus_parse::Value::Histogram(buckets) = &ours.value else { panic!("{:?}", ours.value) };
        let at = |le: f64| buckets.iter().find(|b| b.less_than == le).map(|b| b.count);
        assert_eq!((at(0.01), at(0.025), at(0.05), at(f64::INFINITY)), (Some(0.0), Some(1.0), Some(2.0), Some(2.0)));
    }
}
