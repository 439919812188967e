//! Helpers shared by the policy module's unit tests.

use super::tables::TEST_MONDAY_MS;
use super::{EXAMPLE_POLICY, IncidentInput, Policy, PolicyLoadError, RequestInput};
use crate::grant;
use crate::scope::{Capability, Scope};
use crate::time::Timestamp;

pub(super) fn load(files: &[(&str, &str)]) -> Result<Policy, PolicyLoadError> {
    Policy::load(&files.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect::<Vec<_>>())
}

pub(super) fn example() -> Policy {
    load(&[("breakglass.cedar", EXAMPLE_POLICY)]).unwrap()
}

pub(super) fn load_err(files: &[(&str, &str)]) -> String {
    load(files).unwrap_err().to_string()
}

pub(super) fn scopes(s: &[&str]) -> Vec<Scope> {
    s.iter().map(|s| Scope::parse(s).unwrap()).collect()
}

pub(super) fn caps(c: &[&str]) -> Vec<Capability> {
    c.iter().map(|c| Capability::parse(c).unwrap()).collect()
}

pub(super) fn request(principal: &str, groups: &[&str], s: &[&str], c: &[&str], duration: &str) -> RequestInput {
    RequestInput {
        principal: principal.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        scopes: scopes(s),
        capabilities: caps(c),
        duration_ms: grant::parse_duration(duration).unwrap(),
        reason: "INC-1 payments down".into(),
        incident: None,
        overdue_reviews: 0,
        now: Timestamp(TEST_MONDAY_MS + 12 * 3_600_000),
        pending_ttl_ms: 900_000,
    }
}

pub(super) fn incident(severity: i64, status: &str, responder: bool) -> Option<IncidentInput> {
    Some(IncidentInput {
        id: "INC-1".into(),
        severity,
        status: status.into(),
        services: vec!["payments".into()],
        requester_is_responder: responder,
    })
}

pub(super) const TERMS: &str = r#"
@id("main") @approvals("2") @max_duration("2h")
permit (principal in Breakglass::Group::"dev", action == Breakglass::Action::"request", resource is Breakglass::GitRef)
when { resource.ref == "refs/heads/main" };
@id("payments") @approvals("3") @max_duration("1h")
permit (principal in Breakglass::Group::"dev", action == Breakglass::Action::"request", resource in Breakglass::GitRepo::"payments/api");
@id("feature")
permit (principal in Breakglass::Group::"dev", action == Breakglass::Action::"request", resource is Breakglass::GitRef)
when { resource.ref like "refs/heads/feature/*" };
@id("push")
permit (principal in Breakglass::Group::"dev", action in [Breakglass::Action::"push", Breakglass::Action::"force-push"], resource is Breakglass::GitRef);
@id("no-force-main")
forbid (principal, action == Breakglass::Action::"force-push", resource is Breakglass::GitRef)
when { resource.ref == "refs/heads/main" };
@id("auto-feature")
permit (principal, action == Breakglass::Action::"auto-approve", resource is Breakglass::GitRef)
when { resource.ref like "refs/heads/feature/*" };
@id("pipeline")
permit (principal in Breakglass::Group::"dev", action in [Breakglass::Action::"request", Breakglass::Action::"deploy"], resource is Breakglass::PipelineStage);
"#;
