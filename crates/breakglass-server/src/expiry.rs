//! The expiry timer: it sleeps until the next grant is due to end (an
//! active grant's expiry, a pending request's lapse) or review to escalate, wakes exactly then,
//! and writes the ending entries. It is woken early whenever a grant changes
//! on this server; it also re-reads the next due time at least every
//! `resync` so that grants made on another server over the same database are
//! ended even if that server is down.
//!
//! The timer is not what makes expiry safe: every check compares the expiry
//! with the current time, so a late timer only delays the log entry, never
//! extends access.

use std::sync::Arc;
use std::time::Duration;

use breakglass_core::time::Timestamp;

use crate::service::{Result, Service};

/// How often the timer re-reads the next due time when nothing woke it.
pub const RESYNC: Duration = Duration::from_secs(30);

impl Service {
    /// Everything whose time is up at `now`: grants end (expiry or lapse),
    /// reviews past their deadline escalate. Returns how many.
    pub async fn expire_due(&self) -> Result<usize> {
        Ok(self.expire_grants().await? + self.escalate_reviews().await?)
    }

    /// When the next grant is due to end, or review to escalate, if any.
    pub async fn next_due(&self) -> Result<Option<Timestamp>> {
        let grant = self.next_grant_due().await?;
        let review = self.next_review_due().await?;
        Ok(match (grant, review) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}

/// Runs until `stop` turns true.
pub async fn run(service: Arc<Service>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match service.expire_due().await {
            Ok(n) => {
                failures = 0;
                if n > 0 {
                    tracing::info!(ended = n, "grants ended at their time");
                }
                match service.next_due().await {
                    Ok(Some(at)) => {
                        let ms = (at.0 - service.now().0).max(0) as u64;
                        Duration::from_millis(ms).min(RESYNC)
                    }
                    Ok(None) => RESYNC,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the next expiry");
                        Duration::from_secs(1)
                    }
                }
            }
            Err(e) => {
                // Back off, but never for long: the checks stay exact meanwhile.
                failures += 1;
                tracing::warn!(error = %e, failures, "expiring grants failed; retrying");
                Duration::from_millis(100 * u64::from(failures.min(50)))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = service.timer_woken() => {}
            _ = stop.changed() => {}
        }
    }
}
