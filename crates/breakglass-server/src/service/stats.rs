//! Friction figures: how long breaking glass takes, how long access lasts,
//! who breaks glass where and how often, and how reviews keep up. Computed
//! from the grant and review state objects; also exported as metrics.

use std::collections::BTreeMap;

use breakglass_core::api::{CountBy, DurationStats, StatsView};
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::review::{Review, ReviewStatus};
use breakglass_core::time::Timestamp;

use super::kernel::state::filter;
use super::kernel::{Caller, Result, Service};

/// At most this many grants (newest first) are counted.
const MAX_GRANTS: u32 = 100_000;

fn durations(mut v: Vec<i64>) -> DurationStats {
    if v.is_empty() {
        return DurationStats::default();
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    DurationStats { count: v.len() as u64, p50_ms: at(0.5), p90_ms: at(0.9), max_ms: *v.last().unwrap_or(&0) }
}

fn ranked(m: BTreeMap<String, u64>) -> Vec<CountBy> {
    let mut v: Vec<CountBy> = m.into_iter().map(|(name, count)| CountBy { name, count }).collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v
}

impl Service {
    /// The figures over grants requested since `since` (all when `None`).
    pub async fn stats(&self, _caller: &Caller, since: Option<Timestamp>) -> Result<StatsView> {
        let now = self.now();
        let mut s = StatsView { since, ..StatsView::default() };
        let (mut to_active, mut active_for) = (Vec::new(), Vec::new());
        let (mut by_principal, mut by_scope) = (BTreeMap::new(), BTreeMap::new());
        for g in self.objects::<Grant>(&filter(&[], None, MAX_GRANTS)).await?.into_iter().map(|v| v.value) {
            if since.is_some_and(|t| g.requested_at < t) {
                continue;
            }
            s.requested += 1;
            match g.activated_at {
                Some(at) => {
                    s.activated += 1;
                    if g.approvals.is_empty() {
                        s.auto_approved += 1;
                    }
                    to_active.push(at.0 - g.requested_at.0);
                    let end = match g.state {
                        GrantState::Active => now.min(g.expires_at.unwrap_or(now)),
                        _ => g.ended_at.or(g.expires_at).unwrap_or(now),
                    };
                    active_for.push((end.0 - at.0).max(0));
                    *by_principal.entry(g.principal.clone()).or_insert(0) += 1;
                    for scope in &g.scopes {
                        *by_scope.entry(scope.clone()).or_insert(0) += 1;
                    }
                }
                None if g.state != GrantState::Pending => s.refused_or_lapsed += 1,
                None => {}
            }
        }
        s.request_to_active = durations(to_active);
        s.active_for = durations(active_for);
        s.by_principal = ranked(by_principal);
        s.by_scope = ranked(by_scope);
        for r in self.objects::<Review>(&filter(&[], None, MAX_GRANTS)).await?.into_iter().map(|v| v.value) {
            match r.status {
                ReviewStatus::Open if r.is_overdue(now) => s.reviews_overdue += 1,
                ReviewStatus::Open => s.reviews_open += 1,
                ReviewStatus::Approved => s.reviews_approved += 1,
                ReviewStatus::Flagged => s.reviews_flagged += 1,
            }
        }
        Ok(s)
    }
}

/// Sets the gauges of the figures (before `/metrics` renders).
pub fn export_metrics(s: &StatsView) {
    metrics::gauge!("breakglass_reviews", "state" => "open").set(s.reviews_open as f64);
    metrics::gauge!("breakglass_reviews", "state" => "overdue").set(s.reviews_overdue as f64);
    metrics::gauge!("breakglass_reviews", "state" => "approved").set(s.reviews_approved as f64);
    metrics::gauge!("breakglass_reviews", "state" => "flagged").set(s.reviews_flagged as f64);
    metrics::gauge!("breakglass_request_to_active_p50_seconds").set(s.request_to_active.p50_ms as f64 / 1e3);
    metrics::gauge!("breakglass_grant_active_p50_seconds").set(s.active_for.p50_ms as f64 / 1e3);
    for c in s.by_principal.iter().take(50) {
        metrics::gauge!("breakglass_grants_activated_by_principal", "principal" => c.name.clone()).set(c.count as f64);
    }
}
