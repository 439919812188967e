//! Reloading the policy and the principals file: all or nothing, logged
//! before it takes effect (a policy nobody can see in the log never
//! decides), and the sessions of keys or principals that left end at once.

use breakglass_core::api::PolicyReloaded;
use breakglass_core::entry::EntryDraft;
use serde_json::json;

use super::kernel::{Caller, Result, Service, ServiceError, load};

impl Service {
    /// Reloads the policy and the principals; on any problem the old ones
    /// stay in force and the problems are returned.
    pub async fn reload(&self, by: &str) -> Result<PolicyReloaded> {
        let mut system = Caller::system();
        by.clone_into(&mut system.name);
        self.reload_by(&system).await
    }

    /// [`Service::reload`] asked by `caller` (an admin API token).
    pub async fn reload_by(&self, caller: &Caller) -> Result<PolicyReloaded> {
        let by = caller.name.as_str();
        let new = load(self.config()).map_err(|problems| {
            tracing::warn!(problems = problems.len(), "policy reload refused; the old policy stays in force");
            ServiceError::InvalidPolicy {
                message: "the new policy or principals file is invalid; the old one stays in force".into(),
                problems,
            }
        })?;
        let out = PolicyReloaded {
            policies: new.policy.len(),
            principals: new.principals.len(),
            files: new.files.iter().map(|f| f.0.clone()).collect(),
        };
        let files: serde_json::Map<String, serde_json::Value> =
            new.files.iter().map(|(n, d)| (n.clone(), json!(d))).collect();
        // Logged before it takes effect: a policy nobody can see in the log never decides.
        let entry = EntryDraft::new(
            by,
            "policy.reloaded",
            json!({ "policies": out.policies, "principals": out.principals, "sha256": files }),
        );
        self.append_by(caller, vec![entry], Vec::new()).await?;
        self.install(new);
        self.forget_credentials();
        // Sessions whose key or principal is gone end now, each with an
        // entry (they are refused already: authentication checks the key).
        match self.end_orphaned_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "ended sessions whose key or principal left the principals file"),
            Err(e) => tracing::warn!(error = %e, "could not end the sessions of removed keys; they stay refused"),
        }
        Ok(out)
    }
}
