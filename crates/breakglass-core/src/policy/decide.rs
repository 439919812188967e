//! Decisions and their explanations: one Cedar authorization per scope and
//! action, requests decided step by step (every scope, every capability,
//! auto-approval) into terms, and approvals and reviews that are never the
//! requester's own. Any evaluation error denies.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use cedar_policy::{Context, Decision as CedarDecision, Entities, EntityUid};
use serde::Serialize;

use super::cache::ContextKey;
use super::{ACTIONS, Policy, PolicyInfo};
use crate::grant::{self, Terms};
use crate::scope::{self, Capability, Scope, ScopeKind};
use crate::time::Timestamp;

/// An incident the request refers to, as the incident feed knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct IncidentInput {
    pub id: String,
    /// 1 is the most severe.
    pub severity: i64,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    pub services: Vec<String>,
    pub requester_is_responder: bool,
}

/// The context of one decision; see the schema's `Context` type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextInput {
    /// Who asked for the grant: the principal for `request`, the grant's
    /// requester for `approve` and `review`.
    pub requester: String,
    pub overdue_reviews: u32,
    pub duration_ms: i64,
    pub reason: String,
    /// The gate, for `skip-gate` and `advisory-gate`; else "".
    pub gate: String,
    pub incident: Option<IncidentInput>,
    pub now: Timestamp,
}

/// A request for a grant, as policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInput {
    pub principal: String,
    pub groups: Vec<String>,
    pub scopes: Vec<Scope>,
    pub capabilities: Vec<Capability>,
    pub duration_ms: i64,
    pub reason: String,
    pub incident: Option<IncidentInput>,
    /// The requester's reviews past their deadline.
    pub overdue_reviews: u32,
    pub now: Timestamp,
    /// How long the request may wait for approvals (configuration, not policy).
    pub pending_ttl_ms: i64,
}

/// One authorization: allowed or not, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed it, or the
    /// forbids that denied it (none when nothing permitted it).
    pub determining: Vec<String>,
    /// Why it was denied other than by a policy: evaluation errors (which
    /// always deny), or a rule enforced outside policy (self-approval).
    pub errors: Vec<String>,
}

/// One step of a request decision, for explanations and error messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `request`, `auto-approve`, or a capability (`push`, `skip-gate:tests`).
    pub action: String,
    /// The scope, when the step is about one.
    pub scope: Option<String>,
    pub allowed: bool,
    pub determining: Vec<String>,
    pub errors: Vec<String>,
    /// A rule outside Cedar that decided, when one did.
    pub note: Option<String>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", if self.allowed { "allow" } else { "deny" }, self.action)?;
        if let Some(s) = &self.scope {
            write!(f, " on {s}")?;
        }
        if !self.errors.is_empty() {
            write!(f, ": evaluation failed ({})", self.errors.join("; "))?;
        } else if let Some(note) = &self.note {
            write!(f, ": {note}")?;
        } else if self.determining.is_empty() {
            f.write_str(": no policy permits it")?;
        } else {
            let by = if self.allowed { "permitted by" } else { "forbidden by" };
            write!(f, ": {by} {}", self.determining.join(", "))?;
        }
        Ok(())
    }
}

/// The decision on a request for a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestDecision {
    pub allowed: bool,
    /// Activate without human approval (only ever true when allowed).
    pub auto_approve: bool,
    /// The grant's terms, when allowed.
    pub terms: Option<Terms>,
    /// Every step, in order: for each scope, `request`, its capabilities,
    /// then `auto-approve`.
    pub reasons: Vec<Explanation>,
}

impl RequestDecision {
    /// The steps that denied the request, for the error message.
    pub fn denials(&self) -> impl Iterator<Item = &Explanation> {
        self.reasons.iter().filter(|e| !e.allowed && e.action != "auto-approve")
    }
}

/// The kind of scope an action applies to (None: both), as in the schema.
pub(super) fn action_kind(action: &str) -> Option<ScopeKind> {
    match action {
        "push" | "force-push" | "delete" => Some(ScopeKind::Git),
        "skip-gate" | "advisory-gate" | "deploy" => Some(ScopeKind::Pipeline),
        _ => None,
    }
}

impl Policy {
    /// One Cedar authorization. Any error denies.
    fn authorize(
        &self,
        principal: &EntityUid,
        action: &'static str,
        resource: (&Scope, &EntityUid),
        context: &Context,
        entities: &Entities,
    ) -> Decision {
        let deny = |e: String| Decision { allowed: false, determining: Vec::new(), errors: vec![e] };
        let (Some(action_uid), Some(slice)) = (self.names.actions.get(action), self.slices.get(action)) else {
            return deny(format!("unknown action {action:?}; the actions are {}", ACTIONS.join(", ")));
        };
        if action_kind(action).is_some_and(|k| k != resource.0.kind()) {
            return deny(format!("{action} does not apply to {}", resource.0));
        }
        // The request is not checked against the schema here (that costs
        // more than the decision): its shape is fixed by this module, and a
        // test checks it against the schema for every action.
        let request = match cedar_policy::Request::new(
            principal.clone(),
            action_uid.clone(),
            resource.1.clone(),
            context.clone(),
            None,
        ) {
            Ok(r) => r,
            Err(e) => return deny(format!("cannot build the request: {e}")),
        };
        let response = self.authorizer.is_authorized(&request, slice, entities);
        let mut determining: Vec<String> = response.diagnostics().reason().map(|id| id.to_string()).collect();
        // Cedar returns a set; explanations list policies in file order.
        determining.sort_by_key(|id| self.infos.get(id).map_or(usize::MAX, |i| i.position));
        let errors: Vec<String> = response.diagnostics().errors().map(|e| e.to_string()).collect();
        Decision { allowed: response.decision() == CedarDecision::Allow && errors.is_empty(), determining, errors }
    }

    fn action(action: &str) -> Option<&'static str> {
        ACTIONS.iter().find(|a| **a == action).copied()
    }

    /// The general form: may `principal` (in `groups`) do `action` on `scope`?
    pub fn decide(
        &self,
        principal: &str,
        groups: &[String],
        action: &str,
        scope: &Scope,
        ctx: &ContextInput,
    ) -> Decision {
        self.decide_all(principal, groups, action, std::slice::from_ref(scope), ctx)
    }

    /// `action` on every scope: allowed only if allowed on each.
    pub(super) fn decide_all(
        &self,
        principal: &str,
        groups: &[String],
        action: &str,
        scopes: &[Scope],
        ctx: &ContextInput,
    ) -> Decision {
        let deny = |e: String| Decision { allowed: false, determining: Vec::new(), errors: vec![e] };
        let Some(action) = Self::action(action) else {
            return deny(format!("unknown action {action:?}; the actions are {}", ACTIONS.join(", ")));
        };
        if scopes.is_empty() {
            return deny("no scope to decide on".into());
        }
        let built = match self.entities_cached(principal, groups, scopes) {
            Ok(x) => x,
            Err(e) => return deny(format!("cannot build entities: {e}")),
        };
        let context = match self.context_cached(&ContextKey::new(ctx)) {
            Ok(c) => c,
            Err(e) => return deny(format!("cannot build the context: {e}")),
        };
        let mut out = Decision { allowed: true, ..Decision::default() };
        for (scope, r) in scopes.iter().zip(&built.resources) {
            let d = self.authorize(&built.principal, action, (scope, r), &context, &built.entities);
            out.allowed &= d.allowed;
            for id in d.determining {
                if !out.determining.contains(&id) {
                    out.determining.push(id);
                }
            }
            out.errors.extend(d.errors.into_iter().map(|e| format!("{scope}: {e}")));
        }
        out
    }

    /// May `approver` approve a grant of `requester` (`ctx.requester`) on
    /// these scopes? Never their own.
    pub fn decide_approval(
        &self,
        approver: &str,
        approver_groups: &[String],
        scopes: &[Scope],
        ctx: &ContextInput,
    ) -> Decision {
        self.decide_other_than_requester("approve", approver, approver_groups, scopes, ctx)
    }

    /// May `reviewer` review a grant of `ctx.requester`? Never their own.
    pub fn decide_review(
        &self,
        reviewer: &str,
        reviewer_groups: &[String],
        scopes: &[Scope],
        ctx: &ContextInput,
    ) -> Decision {
        self.decide_other_than_requester("review", reviewer, reviewer_groups, scopes, ctx)
    }

    fn decide_other_than_requester(
        &self,
        action: &str,
        who: &str,
        groups: &[String],
        scopes: &[Scope],
        ctx: &ContextInput,
    ) -> Decision {
        if who == ctx.requester {
            return Decision {
                allowed: false,
                determining: Vec::new(),
                errors: vec![format!("{who} requested this grant and cannot {action} it")],
            };
        }
        self.decide_all(who, groups, action, scopes, ctx)
    }

    /// Decides a request for a grant: allowed, auto-approved, and on what terms.
    pub fn decide_request(&self, input: &RequestInput) -> RequestDecision {
        let mut reasons = Vec::new();
        let denied =
            |reasons: Vec<Explanation>| RequestDecision { allowed: false, auto_approve: false, terms: None, reasons };
        let note = |action: String, scope: Option<String>, note: String| Explanation {
            action,
            scope,
            allowed: false,
            determining: Vec::new(),
            errors: Vec::new(),
            note: Some(note),
        };
        if input.scopes.is_empty() || input.capabilities.is_empty() {
            reasons.push(note("request".into(), None, "a request names at least one scope and one capability".into()));
            return denied(reasons);
        }
        if let Err(e) = scope::check_request(&input.scopes, &input.capabilities) {
            reasons.push(note(e.input.clone(), None, e.problem));
            return denied(reasons);
        }
        let built = match self.entities_cached(&input.principal, &input.groups, &input.scopes) {
            Ok(x) => x,
            Err(e) => {
                reasons.push(Explanation {
                    action: "request".into(),
                    scope: None,
                    allowed: false,
                    determining: Vec::new(),
                    errors: vec![format!("cannot build entities: {e}")],
                    note: None,
                });
                return denied(reasons);
            }
        };
        let (p, resources, entities) = (&built.principal, &built.resources, &built.entities);
        let ctx = ContextKey::from_parts(
            &input.principal,
            input.overdue_reviews,
            input.duration_ms,
            &input.reason,
            "",
            input.incident.as_ref(),
            input.now,
        );
        // One context per gate named (most requests name none): building
        // one costs as much as a decision.
        let mut contexts: HashMap<&str, Result<Context, String>> = HashMap::new();
        for gate in std::iter::once("").chain(input.capabilities.iter().map(|c| capability_action(c).1)) {
            contexts
                .entry(gate)
                .or_insert_with(|| self.context_cached(&ContextKey { gate: Cow::Borrowed(gate), ..ctx.clone() }));
        }
        let mut allowed = true;
        let mut auto_approve = true;
        let mut request_permits: Vec<String> = Vec::new();
        for (scope, r) in input.scopes.iter().zip(resources) {
            let mut step = |action: &'static str, label: String, gate: &str| {
                let d = match &contexts[gate] {
                    Ok(context) => self.authorize(p, action, (scope, r), context, entities),
                    Err(e) => Decision {
                        allowed: false,
                        determining: Vec::new(),
                        errors: vec![format!("cannot build the context: {e}")],
                    },
                };
                let e = Explanation {
                    action: label,
                    scope: Some(scope.to_string()),
                    allowed: d.allowed,
                    determining: d.determining,
                    errors: d.errors,
                    note: None,
                };
                reasons.push(e.clone());
                e
            };
            let req = step("request", "request".into(), "");
            allowed &= req.allowed;
            if req.allowed {
                request_permits.extend(req.determining);
            }
            for cap in input.capabilities.iter().filter(|c| c.kind() == scope.kind()) {
                let (action, gate) = capability_action(cap);
                allowed &= step(action, cap.to_string(), gate).allowed;
            }
            auto_approve &= step("auto-approve", "auto-approve".into(), "").allowed;
        }
        if !allowed {
            return denied(reasons);
        }
        let infos: Vec<&PolicyInfo> = request_permits.iter().filter_map(|id| self.infos.get(id)).collect();
        let approvals = infos.iter().map(|i| i.approvals.unwrap_or(1)).max().unwrap_or(1);
        let max = infos.iter().filter_map(|i| i.max_duration_ms.map(|ms| (ms, i.id.as_str()))).min();
        let max_duration_ms = match max {
            Some((ms, id)) if input.duration_ms > ms => {
                reasons.push(note(
                    "request".into(),
                    None,
                    format!(
                        "{} asked, over the maximum of {} set by {id}",
                        grant::human_duration(input.duration_ms),
                        grant::human_duration(ms)
                    ),
                ));
                return denied(reasons);
            }
            Some((ms, _)) => ms,
            None => input.duration_ms,
        };
        RequestDecision {
            allowed: true,
            auto_approve,
            terms: Some(Terms {
                max_duration_ms,
                approvals_required: if auto_approve { 0 } else { approvals },
                pending_ttl_ms: input.pending_ttl_ms,
            }),
            reasons,
        }
    }
}

/// The action a capability is checked as, and its gate ("" for none).
pub fn capability_action(cap: &Capability) -> (&'static str, &str) {
    match cap {
        Capability::Push => ("push", ""),
        Capability::ForcePush => ("force-push", ""),
        Capability::Delete => ("delete", ""),
        Capability::Deploy => ("deploy", ""),
        Capability::SkipGate(g) => ("skip-gate", g),
        Capability::AdvisoryGate(g) => ("advisory-gate", g),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{TERMS, example, incident, load, request, scopes};
    use super::*;

    /// Scopes, capabilities, duration, `Some((auto-approve, approvals,
    /// max minutes))` or `None` when denied, and a reason that must appear.
    type RequestCase =
        (&'static [&'static str], &'static [&'static str], &'static str, Option<(bool, u32, i64)>, &'static str);

    #[test]
    fn requests_need_every_scope_and_capability_and_aggregate_terms() {
        let policy = load(&[("terms.cedar", TERMS)]).unwrap();
        const M: i64 = 60_000;
        #[rustfmt::skip]
        let cases: &[RequestCase] = &[
            (&["git:x/y@refs/heads/main"], &["push"], "30m", Some((false, 2, 120)), "permitted by main"),
            (&["git:payments/api@refs/heads/main"], &["push"], "30m", Some((false, 3, 60)), "permitted by main, payments"),
            (&["git:payments/api@refs/heads/main"], &["push"], "90m", None, "1h30m asked, over the maximum of 1h set by payments"),
            (&["pipeline:p/deploy@prod"], &["deploy"], "45m", Some((false, 1, 45)), "permitted by pipeline"),
            (&["git:x/y@refs/heads/feature/a"], &["push"], "5h", Some((true, 0, 300)), "allow auto-approve"),
            (&["git:x/y@refs/heads/main", "git:x/y@refs/heads/feature/a"], &["push"], "30m", Some((false, 2, 120)), "deny auto-approve on git:x/y@refs/heads/main"),
            (&["git:x/y@refs/heads/feature/a", "git:x/y@refs/heads/feature/b"], &["push", "force-push"], "30m", Some((true, 0, 30)), "allow force-push"),
            (&["git:x/y@refs/heads/main"], &["push", "force-push"], "30m", None, "deny force-push on git:x/y@refs/heads/main: forbidden by no-force-main"),
            (&["git:x/y@refs/heads/feature/a", "git:x/y@refs/heads/main"], &["force-push"], "30m", None, "forbidden by no-force-main"),
            (&["git:x/y@refs/heads/main", "git:x/y@refs/heads/release/1"], &["push"], "30m", None, "deny request on git:x/y@refs/heads/release/1: no policy permits it"),
            (&["git:x/y@refs/heads/main", "pipeline:p/deploy@prod"], &["push", "deploy"], "30m", Some((false, 2, 120)), "allow deploy on pipeline:p/deploy@prod"),
            (&["git:x/y@refs/heads/main", "pipeline:p/deploy@prod"], &["push", "skip-gate:tests"], "30m", None, "deny skip-gate:tests on pipeline:p/deploy@prod"),
            (&["git:x/y@refs/heads/main"], &["deploy"], "30m", None, "applies to pipeline: scopes"),
            (&["git:x/y@refs/heads/main"], &[], "30m", None, "at least one scope and one capability"),
            (&[], &["push"], "30m", None, "at least one scope and one capability"),
        ];
        for (s, c, duration, expect, says) in cases {
            let d = policy.decide_request(&request("dana", &["dev"], s, c, duration));
            let text: Vec<String> = d.reasons.iter().map(|r| r.to_string()).collect();
            let ctx = format!("{s:?} {c:?} {duration}: {d:?}\n{text:#?}");
            assert!(text.iter().any(|t| t.contains(says)), "{ctx}");
            match expect {
                None => assert!(!d.allowed && !d.auto_approve && d.terms.is_none(), "{ctx}"),
                Some((auto, approvals, max_min)) => {
                    assert!(d.allowed, "{ctx}");
                    assert_eq!(d.auto_approve, *auto, "{ctx}");
                    let terms = d.terms.unwrap();
                    assert_eq!(
                        (terms.approvals_required, terms.max_duration_ms, terms.pending_ttl_ms),
                        (*approvals, max_min * M, 900_000),
                        "{ctx}"
                    );
                }
            }
        }
        // Nobody outside the group gets anything, and the denial says so.
        let d = policy.decide_request(&request("eve", &["other"], &["git:x/y@refs/heads/main"], &["push"], "30m"));
        assert!(!d.allowed);
        assert_eq!(
            d.denials().next().unwrap().to_string(),
            "deny request on git:x/y@refs/heads/main: no policy permits it"
        );
    }

    #[test]
    fn incidents_and_overdue_reviews_decide_auto_approval() {
        let policy = example();
        let main = ["git:payments/api@refs/heads/main"];
        #[rustfmt::skip]
        let cases = [
            (incident(1, "triggered", true), 0, true),
            (incident(2, "acknowledged", true), 0, true),
            (incident(3, "triggered", true), 0, false),
            (incident(1, "resolved", true), 0, false),
            (incident(1, "triggered", false), 0, false),
            (None, 0, false),
            (incident(1, "triggered", true), 1, false),
        ];
        for (inc, overdue, auto) in cases {
            let mut r = request("alice", &["oncall"], &main, &["push"], "30m");
            r.incident = inc.clone();
            r.overdue_reviews = overdue;
            let d = policy.decide_request(&r);
            assert!(d.allowed, "{inc:?}");
            assert_eq!(d.auto_approve, auto, "{inc:?} overdue {overdue}: {:?}", d.reasons);
            assert_eq!(d.terms.unwrap().approvals_required, if auto { 0 } else { 1 });
        }
        let mut r = request("alice", &["oncall"], &main, &["push"], "30m");
        r.incident = incident(1, "triggered", true);
        r.overdue_reviews = 2;
        let d = policy.decide_request(&r);
        assert!(
            d.reasons.iter().any(|e| e.to_string().contains("forbidden by overdue-reviews-need-a-human")),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn secret_scanning_is_never_skippable() {
        let policy = example();
        let prod = ["pipeline:payments/api/deploy@production"];
        for (cap, allowed) in [
            ("skip-gate:integration-tests", true),
            ("advisory-gate:perf", true),
            ("skip-gate:secret-scan", false),
            ("advisory-gate:secret-scan", false),
        ] {
            let d = policy.decide_request(&request("sam", &["sre"], &prod, &[cap], "30m"));
            assert_eq!(d.allowed, allowed, "{cap}: {:?}", d.reasons);
            if !allowed {
                let why = d.denials().next().unwrap().to_string();
                assert!(why.contains("forbidden by secret-scan-never-skippable"), "{why}");
            }
        }
        // Even with another gate that may be skipped in the same request.
        let d = policy.decide_request(&request(
            "sam",
            &["sre"],
            &prod,
            &["skip-gate:lint", "skip-gate:secret-scan"],
            "30m",
        ));
        assert!(!d.allowed);
    }

    #[test]
    fn approvers_and_reviewers_are_never_the_requester() {
        let policy = example();
        let s = scopes(&["git:payments/api@refs/heads/main", "pipeline:payments/api/deploy@production"]);
        let ctx = |requester: &str| ContextInput { requester: requester.into(), ..ContextInput::default() };
        let approvers = ["approvers".to_owned()];
        for (who, groups, requester, allowed) in [
            ("carol", &approvers[..], "alice", true),
            ("carol", &approvers[..], "carol", false),
            ("bob", &[][..], "alice", false),
        ] {
            let a = policy.decide_approval(who, groups, &s, &ctx(requester));
            let r = policy.decide_review(who, groups, &s, &ctx(requester));
            assert_eq!((a.allowed, r.allowed), (allowed, allowed), "{who} for {requester}: {a:?} {r:?}");
        }
        let a = policy.decide_approval("carol", &approvers, &s, &ctx("carol"));
        assert_eq!(a.errors, ["carol requested this grant and cannot approve it"]);
        let a = policy.decide_approval("carol", &approvers, &s, &ctx("alice"));
        assert_eq!(a.determining, ["approvers-approve"]);
        assert!(!policy.decide_approval("carol", &approvers, &[], &ctx("alice")).allowed);
    }

    #[test]
    fn evaluation_errors_deny() {
        // Strict validation cannot see an overflow; Cedar skips the erroring
        // forbid and would allow, but breakglass fails closed.
        let policy = load(&[(
            "overflow.cedar",
            r#"
@id("anyone") permit (principal, action in [Breakglass::Action::"request", Breakglass::Action::"push"], resource);
@id("overflow") forbid (principal, action, resource) when { context.duration_minutes * 9223372036854775807 > 0 };
"#,
        )])
        .unwrap();
        let s = Scope::parse("git:a/b@refs/heads/main").unwrap();
        let ctx = ContextInput { duration_ms: 120_000, ..ContextInput::default() };
        let d = policy.decide("p", &[], "request", &s, &ctx);
        assert!(!d.allowed && d.errors.iter().any(|e| e.contains("overflow")), "{d:?}");
        // With nothing to overflow, the permit holds.
        let d = policy.decide("p", &[], "request", &s, &ContextInput::default());
        assert!(d.allowed && d.determining == ["anyone"], "{d:?}");
        let r = policy.decide_request(&request("p", &[], &["git:a/b@refs/heads/main"], &["push"], "2m"));
        assert!(!r.allowed && r.denials().next().unwrap().to_string().contains("evaluation failed"), "{r:?}");
        // An action outside the schema, or on the wrong kind of scope, is an error too.
        let d = policy.decide("p", &[], "merge", &s, &ctx);
        assert!(!d.allowed && d.errors[0].contains("unknown action \"merge\""), "{d:?}");
        let d = policy.decide("p", &[], "deploy", &s, &ctx);
        assert!(!d.allowed && !d.errors.is_empty(), "{d:?}");
    }
}
