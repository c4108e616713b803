//! `GET /metrics`: counters and histograms of the runs and responses, in the Prometheus
//! text format (0.0.4), encoded by the `prometheus-client` crate.
//!
//! Label values come from fixed sets (outcomes, route templates, status codes), never
//! from what a client sent, so a client cannot grow the series without bound.

use super::limits::Limits;
use crate::serve::Outcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Bucket bounds in seconds: runs take milliseconds when warm and up to their timeout
/// (minutes at most) when not.
const SECONDS_BUCKETS: [f64; 18] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0,
    32.0, 64.0, 128.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    /// The route template (`/v1/runs`), or `unmatched`.
    route: &'static str,
    status: u16,
}

/// The metrics of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<OutcomeLabel, Counter>,
    session_runs: Family<OutcomeLabel, Counter>,
    sessions_created: Counter,
    sessions_open: Gauge,
    run_seconds: Histogram,
    queue_seconds: Histogram,
    responses: Family<ResponseLabels, Counter>,
    in_flight: Gauge,
    queued: Gauge,
    capacity: Gauge,
}

/// The routes responses are counted by; anything else is `unmatched`.
pub const ROUTES: &[&str] = &[
    "/v1/runs",
    "/v1/health",
    "/metrics",
    "/v1/sessions",
    "/v1/sessions/{sid}",
    "/v1/sessions/{sid}/runs",
];

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<OutcomeLabel, Counter>::default();
        // Every outcome from the start, so that rates are defined before the first of each.
        for outcome in Outcome::ALL {
            let _ = runs.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        registry.register(
            "spr_runs",
            "Run requests answered (or given up by their client), by outcome",
            runs.clone(),
        );
        let session_runs = Family::<OutcomeLabel, Counter>::default();
        for outcome in Outcome::ALL {
            let _ = session_runs.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        registry.register(
            "spr_session_runs",
            "Run requests in a session (also counted in spr_runs_total), by outcome",
            session_runs.clone(),
        );
        let sessions_created = Counter::default();
        registry.register(
            "spr_sessions_created",
            "Sessions opened by POST /v1/sessions",
            sessions_created.clone(),
        );
        let sessions_open = Gauge::default();
        registry.register(
            "spr_sessions_open",
            "Sessions open now (lost ones until they are closed or expire)",
            sessions_open.clone(),
        );
        let run_seconds = Histogram::new(SECONDS_BUCKETS);
        registry.register(
            "spr_run_duration_seconds",
            "Time runs spent executing on the engine, from a free worker to their result",
            run_seconds.clone(),
        );
        let queue_seconds = Histogram::new(SECONDS_BUCKETS);
        registry.register(
            "spr_run_queue_seconds",
            "Time admitted runs waited for a free worker",
            queue_seconds.clone(),
        );
        let responses = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "spr_http_responses",
            "HTTP responses, by route and status",
            responses.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "spr_runs_in_flight",
            "Runs executing now",
            in_flight.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "spr_runs_queued",
            "Admitted run requests waiting for a free worker",
            queued.clone(),
        );
        let capacity = Gauge::default();
        registry.register(
            "spr_runs_capacity",
            "Runs that may execute at once (the engine's workers)",
            capacity.clone(),
        );
        Metrics {
            registry,
            runs,
            session_runs,
            sessions_created,
            sessions_open,
            run_seconds,
            queue_seconds,
            responses,
            in_flight,
            queued,
            capacity,
        }
    }

    /// One run request answered, or given up by its client.
    pub fn run(&self, outcome: Outcome) {
        self.runs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// One run request in a session answered, or given up by its client.
    pub fn session_run(&self, outcome: Outcome) {
        self.session_runs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn session_created(&self) {
        self.sessions_created.inc();
    }

    pub fn ran_for(&self, took: Duration) {
        self.run_seconds.observe(took.as_secs_f64());
    }

    pub fn waited_for(&self, took: Duration) {
        self.queue_seconds.observe(took.as_secs_f64());
    }

    /// One response; `route` is the matched route template, if any.
    pub fn response(&self, route: Option<&str>, status: u16) {
        let route = route
            .and_then(|r| ROUTES.iter().find(|known| **known == r).copied())
            .unwrap_or("unmatched");
        self.responses
            .get_or_create(&ResponseLabels { route, status })
            .inc();
    }

    /// The exposition, with the gauges read from `limits` and the open sessions now.
    pub fn encode(&self, limits: &Limits, open_sessions: usize) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.in_flight.set(gauge(limits.in_flight()));
        self.queued.set(gauge(limits.queued()));
        self.capacity.set(gauge(limits.capacity()));
        self.sessions_open.set(gauge(open_sessions));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_outcome_and_counts() {
        let metrics = Metrics::new();
        metrics.run(Outcome::Ok);
        metrics.run(Outcome::Ok);
        metrics.ran_for(Duration::from_millis(3));
        metrics.response(Some("/v1/runs"), 200);
        metrics.response(Some("/attacker/controlled"), 404);
        metrics.session_run(Outcome::Timeout);
        let text = metrics.encode(&Limits::new(2, 16), 3);
        assert!(
            text.contains("spr_runs_total{outcome=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("spr_runs_total{outcome=\"timeout\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("spr_run_duration_seconds_bucket{le=\"0.004\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("spr_run_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("spr_http_responses_total{route=\"unmatched\",status=\"404\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("spr_runs_capacity 2\n"), "{text}");
        assert!(text.contains("spr_sessions_open 3\n"), "{text}");
        assert!(
            text.contains("spr_session_runs_total{outcome=\"timeout\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("spr_sessions_created_total 0\n"), "{text}");
        assert!(!text.contains("attacker"), "{text}");
    }
}
