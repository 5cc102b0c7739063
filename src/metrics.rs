//! Metrics beyond plain counters — labelled request counts and histograms — and the
//! Prometheus text rendering of everything (`GET /metrics`).

use crate::stats::Stats;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (bytes) of the send-completion size histogram.
const SEND_BUCKETS: [f64; 9] = [
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    212_992.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];
/// Upper bounds (seconds) of the job duration histogram.
const JOB_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with fixed buckets, lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (non-cumulative) counts; the last is +Inf.
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths (µs or µbytes… scaled by 1e6) to stay integral.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micro.fetch_add((v * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            cum += self.counts[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let sum = self.sum_micro.load(Relaxed) as f64 / 1e6;
        let l = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{l} {sum}");
        let _ = writeln!(out, "{name}_count{l} {cum}");
    }
}

/// Labelled and histogram metrics, shared by every ring and the pool.
#[derive(Debug)]
pub struct Metrics {
    /// Responses by (route, status, binding error code or 0).
    requests: Mutex<BTreeMap<(&'static str, u16, u16), u64>>,
    /// Bytes each send completion reported.
    pub send_sizes: Histogram,
    /// Image job durations by output content type.
    jobs: Mutex<BTreeMap<String, Histogram>>,
    /// Connections accepted by each ring.
    pub ring_connections: Vec<AtomicU64>,
}

impl Metrics {
    pub fn new(rings: usize) -> Metrics {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            send_sizes: Histogram::new(&SEND_BUCKETS),
            jobs: Mutex::new(BTreeMap::new()),
            ring_connections: (0..rings).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn count_response(&self, route: &'static str, status: u16, code: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((route, status, code)).or_insert(0) += 1;
    }

    pub fn observe_job(&self, output: &str, d: Duration) {
        let mut m = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(output.to_string())
            .or_insert_with(|| Histogram::new(&JOB_BUCKETS))
            .observe(d.as_secs_f64());
    }

    /// Prometheus text exposition of the counters, gauges and these metrics.
    pub fn render(&self, stats: &Stats, open_connections: usize) -> String {
        let mut out = String::with_capacity(8192);
        for (name, v) in stats.snapshot() {
            let (kind, metric) = if Stats::is_gauge(name) {
                ("gauge", format!("lastbyte_{name}"))
            } else {
                ("counter", format!("lastbyte_{name}_total"))
            };
            let _ = writeln!(out, "# TYPE {metric} {kind}\n{metric} {v}");
        }
        let _ = writeln!(
            out,
            "# TYPE lastbyte_connections_open gauge\nlastbyte_connections_open {open_connections}"
        );
        let _ = writeln!(out, "# TYPE lastbyte_responses_total counter");
        for ((route, status, code), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "lastbyte_responses_total{{route=\"{route}\",status=\"{status}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# TYPE lastbyte_ring_connections_total counter");
        for (i, c) in self.ring_connections.iter().enumerate() {
            let _ = writeln!(
                out,
                "lastbyte_ring_connections_total{{ring=\"{i}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE lastbyte_send_completion_bytes histogram");
        self.send_sizes
            .render(&mut out, "lastbyte_send_completion_bytes", "");
        let _ = writeln!(out, "# TYPE lastbyte_job_duration_seconds histogram");
        for (output, h) in self.jobs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            h.render(
                &mut out,
                "lastbyte_job_duration_seconds",
                &format!("output=\"{output}\""),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new(2);
        let s = Stats::default();
        Stats::inc(&s.requests);
        m.count_response("bytes", 200, 0);
        m.send_sizes.observe(5000.0);
        m.observe_job("image/webp", Duration::from_millis(30));
        let t = m.render(&s, 3);
        assert!(t.contains("lastbyte_requests_total 1\n"), "{t}");
        assert!(t.contains("lastbyte_responses_total{route=\"bytes\",status=\"200\",code=\"0\"} 1"));
        assert!(t.contains("lastbyte_send_completion_bytes_bucket{le=\"16384\"} 1"));
        assert!(t.contains("lastbyte_send_completion_bytes_bucket{le=\"4096\"} 0"));
        assert!(t.contains("lastbyte_job_duration_seconds_count{output=\"image/webp\"} 1"));
        assert!(t.contains("lastbyte_connections_open 3"));
    }
}
