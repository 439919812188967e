//! breakglass-server: the grant service ([`service`]: a kernel, the effects
//! of grant transitions, and one module per feature), its HTTP API
//! ([`http`]), the expiry timer ([`expiry`]), bearer-token formats
//! ([`auth`]), what only the repositories' host can inspect ([`hostcheck`])
//! and the listener (plain HTTP or TLS with rustls, [`listen`]).
//!
//! Only this crate knows HTTP. It reads no environment variables and no argv;
//! the binary builds a [`service::ServiceConfig`] and hands it over.

pub mod auth;
pub mod expiry;
pub mod hostcheck;
pub mod http;
pub mod listen;
pub mod service;

use std::sync::atomic::{AtomicI64, Ordering};

use breakglass_core::time::{Clock, Timestamp};

/// The system clock plus an offset that only moves forward: the clock of a
/// server started for tests or drills, whose time is an input.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms.max(0), Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        Timestamp(system_now().0 + self.offset_ms.load(Ordering::SeqCst))
    }
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        system_now()
    }
}

fn system_now() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(d.as_millis() as i64)
}

/// Histogram buckets for latencies, in seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide Prometheus recorder once and returns its handle.
/// Call [`metrics_upkeep`] periodically in a long-running server.
pub fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Fixed buckets: a histogram is a few counters, not a list of
            // samples that grows with every request until someone scrapes.
            let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .expect("buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}

/// Runs the recorder's housekeeping every few seconds until `stop`.
pub async fn metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => handle.run_upkeep(),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
