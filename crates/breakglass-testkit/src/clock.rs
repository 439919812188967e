//! A clock that moves only when a test moves it, so tests of time never sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use breakglass_entry::time::{Clock, Timestamp};

/// A [`Clock`] at a time in milliseconds that the test sets or advances.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `ms`, shared (ledgers and services take an `Arc<dyn Clock>`).
    pub fn new(ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}
