//! Policy test tables (`breakglass policy test`): TOML cases, each run
//! through the same decisions as a real request, approval or review, and
//! reported with what decided it. The format is in the parent module's
//! documentation.

use serde::{Deserialize, Serialize};

use super::{ACTIONS, ContextInput, Decision, IncidentInput, Policy, RequestInput, capability_action};
use crate::grant;
use crate::scope::{Capability, Scope};
use crate::time::Timestamp;

/// A test table could not be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TestTableError {
    #[error("invalid test table: {0}")]
    Toml(String),
    #[error("the test table has no [[case]]")]
    Empty,
    #[error("test case {name:?}: {problem}")]
    Case { name: String, problem: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: String,
    #[serde(default)]
    groups: Vec<String>,
    action: String,
    scope: String,
    capability: Option<String>,
    duration: Option<String>,
    reason: Option<String>,
    incident_severity: Option<i64>,
    incident_status: Option<String>,
    #[serde(default)]
    responder: bool,
    #[serde(default)]
    overdue_reviews: u32,
    hour_utc: Option<i64>,
    weekday: Option<i64>,
    requester: Option<String>,
    expect: String,
}

/// The outcome of one test case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub expected_allow: bool,
    pub allowed: bool,
    pub passed: bool,
    pub determining: Vec<String>,
    pub errors: Vec<String>,
}

/// Monday 2026-01-05T00:00:00Z: the day test cases happen on.
pub(super) const TEST_MONDAY_MS: i64 = 1_767_571_200_000;

/// Runs a test table (the format is at the top of this module) against `policy`.
pub fn run_tests(policy: &Policy, table: &str) -> Result<Vec<CaseResult>, TestTableError> {
    let table: Table = toml::from_str(table).map_err(|e| TestTableError::Toml(e.to_string()))?;
    if table.case.is_empty() {
        return Err(TestTableError::Empty);
    }
    table.case.into_iter().map(|c| run_case(policy, c)).collect()
}

fn run_case(policy: &Policy, c: Case) -> Result<CaseResult, TestTableError> {
    let bad = |problem: String| TestTableError::Case { name: c.name.clone(), problem };
    let expected_allow = match c.expect.as_str() {
        "allow" => true,
        "deny" => false,
        other => return Err(bad(format!("expect = {other:?}: expected \"allow\" or \"deny\""))),
    };
    if !ACTIONS.contains(&c.action.as_str()) {
        return Err(bad(format!("unknown action {:?}; the actions are {}", c.action, ACTIONS.join(", "))));
    }
    let scope = Scope::parse(&c.scope).map_err(|e| bad(e.to_string()))?;
    let cap = c.capability.as_deref().map(Capability::parse).transpose().map_err(|e| bad(e.to_string()))?;
    let duration_ms = grant::parse_duration(c.duration.as_deref().unwrap_or("30m")).map_err(bad)?;
    let incident = match (c.incident_severity, &c.incident_status) {
        (Some(severity), status) => Some(IncidentInput {
            id: "TEST-1".into(),
            severity,
            status: status.clone().unwrap_or_else(|| "triggered".into()),
            services: Vec::new(),
            requester_is_responder: c.responder,
        }),
        (None, Some(_)) => {
            return Err(bad("incident_status needs incident_severity (which opens the incident)".into()));
        }
        (None, None) if c.responder => {
            return Err(bad("responder needs incident_severity (which opens the incident)".into()));
        }
        (None, None) => None,
    };
    let hour = c.hour_utc.unwrap_or(12);
    let weekday = c.weekday.unwrap_or(0);
    if !(0..24).contains(&hour) || !(0..7).contains(&weekday) {
        return Err(bad("hour_utc is 0 to 23 and weekday 0 (Monday) to 6".into()));
    }
    let now = Timestamp(TEST_MONDAY_MS + weekday * 86_400_000 + hour * 3_600_000);
    let reason = c.reason.clone().unwrap_or_else(|| "test case".into());
    let mut ctx = ContextInput {
        requester: c.principal.clone(),
        overdue_reviews: c.overdue_reviews,
        duration_ms,
        reason: reason.clone(),
        gate: String::new(),
        incident: incident.clone(),
        now,
    };
    let decision = match (c.action.as_str(), &cap) {
        ("request", Some(cap)) => {
            let d = policy.decide_request(&RequestInput {
                principal: c.principal.clone(),
                groups: c.groups.clone(),
                scopes: vec![scope],
                capabilities: vec![cap.clone()],
                duration_ms,
                reason,
                incident,
                overdue_reviews: c.overdue_reviews,
                now,
                pending_ttl_ms: 3_600_000,
            });
            let mut out = Decision { allowed: d.allowed, ..Decision::default() };
            for e in d.reasons.iter().filter(|e| e.action != "auto-approve") {
                out.determining.extend(e.determining.iter().cloned());
                out.errors.extend(e.errors.iter().cloned());
                if let Some(n) = &e.note {
                    out.errors.push(n.clone());
                }
            }
            out
        }
        ("approve" | "review", _) => {
            if cap.is_some() {
                return Err(bad(format!("{} takes no capability", c.action)));
            }
            ctx.requester = c.requester.clone().unwrap_or_else(|| "requester".into());
            let scopes = [scope];
            if c.action == "approve" {
                policy.decide_approval(&c.principal, &c.groups, &scopes, &ctx)
            } else {
                policy.decide_review(&c.principal, &c.groups, &scopes, &ctx)
            }
        }
        (action, cap) => {
            if let Some(cap) = cap {
                let (cap_action, gate) = capability_action(cap);
                if cap_action != action {
                    return Err(bad(format!("capability {cap} is checked as {cap_action}, not {action}")));
                }
                ctx.gate = gate.to_owned();
            }
            policy.decide(&c.principal, &c.groups, action, &scope, &ctx)
        }
    };
    Ok(CaseResult {
        name: c.name,
        expected_allow,
        allowed: decision.allowed,
        passed: decision.allowed == expected_allow,
        determining: decision.determining,
        errors: decision.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::example;
    use super::*;

    #[test]
    fn test_tables_report_mismatches_and_reject_bad_cases() {
        let policy = example();
        let case = |extra: &str| {
            format!(
                "[[case]]\nname = \"c\"\nprincipal = \"alice\"\ngroups = [\"oncall\"]\naction = \"request\"\nscope = \"git:a/b@refs/heads/main\"\n{extra}\n"
            )
        };
        let r = run_tests(&policy, &case("capability = \"push\"\nexpect = \"deny\"")).unwrap();
        assert!(
            !r[0].passed && r[0].allowed && r[0].determining == ["oncall-request-main", "oncall-push-main"],
            "{r:?}"
        );
        for (table, says) in [
            (case("expect = \"maybe\""), "expected \"allow\" or \"deny\""),
            (case("expect = \"allow\"\ncolour = 1"), "unknown field `colour`"),
            (case("expect = \"allow\"\ncapability = \"admin\""), "invalid capability \"admin\""),
            (case("expect = \"allow\"\nduration = \"soon\""), "invalid duration \"soon\""),
            (case("expect = \"allow\"\nincident_status = \"resolved\""), "incident_status needs incident_severity"),
            (case("expect = \"allow\"\nhour_utc = 24"), "hour_utc is 0 to 23"),
            (case("expect = \"allow\"").replace("\"request\"", "\"merge\""), "unknown action \"merge\""),
            (
                case("expect = \"allow\"").replace("\"request\"", "\"skip-gate\"") + "capability = \"push\"\n",
                "checked as push",
            ),
            (String::new(), "no [[case]]"),
        ] {
            let err = run_tests(&policy, &table).unwrap_err().to_string();
            assert!(err.contains(says), "{table}: {err}");
        }
    }
}
