//! Drift the server can see for itself: grants whose stored state lags
//! their time or contradicts their log, and policy that amounts to a
//! standing backdoor. (`breakglass drift` adds what only a host with the
//! repositories, or an auditor with a saved checkpoint, can see.)

use breakglass_core::api::{DriftFinding, DriftReport};
use breakglass_core::grant::Grant;
use breakglass_store::ObjectFilter;
use serde_json::Value;

use crate::service::{Caller, GRANT_KIND, Service, ServiceError};

/// A grant still stored active this long past its end has drifted (the
/// timer normally ends it within milliseconds).
const LAG_MS: i64 = 60_000;
/// How many ended grants (newest first) are compared with their log.
const ENDED_CHECKED: u32 = 200;

fn internal(what: &str, e: impl std::fmt::Display) -> ServiceError {
    tracing::error!(error = %e, "{what}");
    ServiceError::Internal(format!("{what}; nothing was changed"))
}

/// The state a grant's log says it is in: its last state-changing entry.
fn state_by_log(kinds: &[String]) -> Option<&'static str> {
    kinds.iter().rev().find_map(|k| match k.as_str() {
        "grant.requested" => Some("pending"),
        "grant.activated" => Some("active"),
        "grant.expired" => Some("expired"),
        "grant.revoked" => Some("revoked"),
        "grant.denied" => Some("denied"),
        "grant.lapsed" => Some("lapsed"),
        _ => None,
    })
}

impl Service {
    pub async fn drift(&self, caller: &Caller) -> Result<DriftReport, ServiceError> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not read drift".into()));
        }
        let now = self.now();
        let mut findings = Vec::new();
        let live = ObjectFilter { statuses: vec!["active".into(), "pending".into()], owner: None, limit: 10_000 };
        let ended = ObjectFilter {
            statuses: ["expired", "revoked", "denied", "lapsed"].iter().map(|s| (*s).to_owned()).collect(),
            owner: None,
            limit: ENDED_CHECKED,
        };
        let mut objs = self.store().objects(GRANT_KIND, &live).await?;
        objs.extend(self.store().objects(GRANT_KIND, &ended).await?);
        for o in objs {
            let g: Grant = serde_json::from_str(&o.body).map_err(|e| internal("a stored grant is unreadable", e))?;
            if let Some(due) = o.due
                && (o.status == "active" || o.status == "pending")
                && now.0 - due > LAG_MS
            {
                findings.push(DriftFinding {
                    kind: "grant.past_expiry".into(),
                    subject: g.id.clone(),
                    what: format!(
                        "grant {} of {} is still stored {} {} s after it was due to end (it is not honoured: every check compares times)",
                        g.id,
                        g.principal,
                        o.status,
                        (now.0 - due) / 1000
                    ),
                    fix: "check that every breakglass server is running (its timer writes the end); the next one to start ends it".into(),
                });
            }
            let mut kinds = Vec::new();
            for i in self.store().object_log(GRANT_KIND, &g.id).await? {
                for rec in self.store().entries(i, i + 1).await? {
                    let v: Value =
                        serde_json::from_slice(&rec.data).map_err(|e| internal("a log entry is unreadable", e))?;
                    kinds.push(v["kind"].as_str().unwrap_or("").to_owned());
                }
            }
            let by_log = state_by_log(&kinds);
            if by_log != Some(o.status.as_str()) || g.state.as_str() != o.status {
                findings.push(DriftFinding {
                    kind: "grant.state_mismatch".into(),
                    subject: g.id.clone(),
                    what: format!(
                        "grant {} is stored as {} (body: {}) but its log says {}",
                        g.id,
                        o.status,
                        g.state.as_str(),
                        by_log.unwrap_or("nothing")
                    ),
                    fix: "someone changed the database outside breakglass: compare with `breakglass audit show` and `audit verify`, and treat it as an incident".into(),
                });
            }
        }
        for (id, file, why) in self.loaded().policy.standing_risks() {
            findings.push(DriftFinding {
                kind: "policy.standing_backdoor".into(),
                subject: id.clone(),
                what: format!("policy {id} in {file} {why}"),
                fix: "name a group or principal in its scope and give request permits a @max_duration; then `breakglass policy reload`".into(),
            });
        }
        metrics::gauge!("breakglass_drift_findings").set(findings.len() as f64);
        Ok(DriftReport { findings })
    }
}
