//! breakglass-server: the grant service ([`service`]), its HTTP API
//! ([`http`]), the expiry timer ([`expiry`]) and the listener (plain HTTP or
//! TLS with rustls, [`listen`]).
//!
//! Only this crate knows HTTP. It reads no environment variables and no argv;
//! the binary builds a [`service::ServiceConfig`] and hands it over.

pub mod auth;
pub mod expiry;
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

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}
