//! What a grant change sets off: the one place that says it. Each effect is
//! an [`Effect`] implemented beside the feature it belongs to; this list
//! says which run, in this order, for every transition the service commits
//! ([`Service::commit`]): what they add is committed in the transition's
//! own append, and what they do afterwards happens once it is durable.
//!
//! A new consequence of a grant starting or ending is one more `Effect`
//! implementation and one more line in [`standard`] (as the forge bypass
//! was); nothing in the kernel or in `grants` changes.

use std::sync::Arc;

use breakglass_core::time::Clock;
use breakglass_store::LogStore;
use breakglass_store::ledger::Ledger;

use super::kernel::{Effect, Keys, Service, ServiceConfig, Transition};

/// The effects of the server's grant transitions, in order.
pub fn standard() -> Vec<Box<dyn Effect>> {
    vec![
        // People hear of the change: outbox rows, one per interested channel.
        Box::new(super::notify::Notifications),
        // A grant that was active and ended gets its post-event review.
        Box::new(super::reviews::OpenReview),
        // A grant on a forge-managed repository opens it for its holder, and
        // its end closes it again (jobs the forge worker carries out).
        Box::new(super::forges::ForgeBypass),
        // Entries of drill grants say so, whatever wrote them.
        Box::new(super::drills::MarkDrills),
        // The expiry timer and the notification worker look again.
        Box::new(WakeWorkers),
    ]
}

/// Wakes the expiry timer (a due time may have moved) and the notification
/// worker (something may have been queued) once a change is committed.
struct WakeWorkers;

impl Effect for WakeWorkers {
    fn name(&self) -> &'static str {
        "wake-workers"
    }

    fn after(&self, service: &Service, _change: &Transition<'_>) {
        service.wake_timer();
        service.wake_outbox();
    }
}

impl Service {
    /// A service over an open ledger with the [`standard`] effects; fails
    /// when the policy or the principals do not load.
    pub fn new(
        ledger: Ledger,
        store: Arc<dyn LogStore>,
        clock: Arc<dyn Clock>,
        keys: Keys,
        config: ServiceConfig,
    ) -> Result<Service, Vec<String>> {
        Service::with_effects(ledger, store, clock, keys, config, standard())
    }
}
