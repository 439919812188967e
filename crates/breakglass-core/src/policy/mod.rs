//! Policy as code: who may break glass on what, for how long, approved how,
//! decided by Cedar policies over the schema in `policy/schema.cedarschema`.
//!
//! Security: the requester chooses every field a decision reads, and a
//! local user may try to slip in a policy file; every grant starts with [`Policy::decide_request`]. It fails closed: a request is
//! allowed only when Cedar allows every pair it is made of without an error,
//! and a policy set that does not parse or validate strictly is never loaded
//! at all ([`Policy::load`] returns every problem, and the caller keeps the
//! policy it had).
//!
//! # The model
//!
//! Principals (`Breakglass::Principal::"alice"`, with `name` and their
//! groups as parents) act on resources built from scopes: a
//! `git:payments/api@refs/heads/main` scope is
//! `Breakglass::GitRef::"payments/api@refs/heads/main"` (`repo`, `ref`; its
//! parent the `GitRepo`), a `pipeline:payments/api/deploy@production` scope
//! is `Breakglass::PipelineStage::"payments/api/deploy@production"`
//! (`project`, `stage`, `environment`, "" when none; its parent the
//! `Pipeline`). A pattern scope is passed as written, pattern and all.
//!
//! A request for scopes S and capabilities C is allowed iff, for every scope,
//! `request` is permitted, and every capability of the scope's kind is
//! permitted on it (`push`, `force-push`, `delete`, `skip-gate`,
//! `advisory-gate`, `deploy`; the gate's name is `context.gate`). Nothing is
//! implied. It is auto-approved iff `auto-approve` is permitted on every
//! scope. Permits of `request` may carry two annotations that Cedar cannot
//! return: `@approvals("N")` (approvals needed without auto-approval; default
//! 1; a request needs the largest among the permits that determined it) and
//! `@max_duration("1h")` (the most a grant may last, extensions included;
//! the smallest among them; without one the grant may last what was asked
//! and no more). `@id("...")` names a policy in explanations; without it a
//! policy is `<file name>#<n>`, its 1-based position in the file. Any other
//! annotation is refused, so a typo (`@approval`) cannot silently lower a
//! requirement; `@description` is allowed for prose.
//!
//! # Test tables
//!
//! `breakglass policy test` and [`run_tests`] read TOML tables of cases:
//!
//! ```toml
//! [[case]]
//! name = "on-call may request push to main"   # required, for the report
//! principal = "alice"                          # required
//! groups = ["oncall"]                          # default []
//! action = "request"                           # required: any action of the schema
//! scope = "git:payments/api@refs/heads/main"   # required
//! capability = "push"                          # optional, see below
//! duration = "30m"                             # default 30m
//! reason = "INC-42"                            # default "test case"
//! incident_severity = 1                        # an incident is open only when this is set
//! incident_status = "triggered"                # default "triggered"; or acknowledged, resolved
//! responder = true                             # the requester responds to it; default false
//! overdue_reviews = 0                          # default 0
//! hour_utc = 12                                # default 12 (the day is a Monday)
//! weekday = 0                                  # default 0 = Monday
//! requester = "bob"                            # approve/review: whose grant; default "requester"
//! expect = "allow"                             # required: "allow" or "deny"
//! ```
//!
//! With `action = "request"` and a `capability`, the case is a whole request
//! ([`Policy::decide_request`] of that scope and capability); without one,
//! only the `request` action on the scope. With a capability action
//! (`skip-gate`, …) the capability, if given, must be of that action and
//! names the gate. `approve` and `review` cases go through
//! [`Policy::decide_approval`] and [`Policy::decide_review`], so approving
//! one's own request is denied whatever the policies say.

mod cache;
mod decide;
mod load;
mod tables;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;

use cedar_policy::{Authorizer, Context, EntityId, EntityTypeName, EntityUid, PolicySet, Schema};

use cache::{BuildCache, BuiltEntities, ContextKey, EntitiesKey};

pub use decide::{
    ContextInput, Decision, Explanation, IncidentInput, RequestDecision, RequestInput, capability_action,
};
pub use load::{PolicyInfo, PolicyLoadError, PolicyProblem};
pub use tables::{CaseResult, TestTableError, run_tests};

/// The schema every policy is validated against.
pub const SCHEMA: &str = include_str!("../../policy/schema.cedarschema");
/// The example policy written on first run, and its test table.
pub const EXAMPLE_POLICY: &str = include_str!("../../policy/example/breakglass.cedar");
pub const EXAMPLE_TESTS: &str = include_str!("../../policy/example/breakglass.test.toml");

/// Every action of the schema.
pub const ACTIONS: [&str; 10] = [
    "request",
    "auto-approve",
    "approve",
    "review",
    "push",
    "force-push",
    "delete",
    "skip-gate",
    "advisory-gate",
    "deploy",
];

/// Type names and action ids, built once per policy rather than per decision.
struct Names {
    principal: EntityTypeName,
    group: EntityTypeName,
    git_repo: EntityTypeName,
    git_ref: EntityTypeName,
    pipeline: EntityTypeName,
    stage: EntityTypeName,
    actions: HashMap<&'static str, EntityUid>,
}

impl Names {
    fn new() -> Names {
        let ty = |n: &str| EntityTypeName::from_str(&format!("Breakglass::{n}")).expect("a valid type name");
        let action = ty("Action");
        Names {
            principal: ty("Principal"),
            group: ty("Group"),
            git_repo: ty("GitRepo"),
            git_ref: ty("GitRef"),
            pipeline: ty("Pipeline"),
            stage: ty("PipelineStage"),
            actions: ACTIONS
                .iter()
                .map(|a| (*a, EntityUid::from_type_name_and_id(action.clone(), EntityId::new(a))))
                .collect(),
        }
    }
}

/// A loaded, strictly validated policy set.
pub struct Policy {
    /// The policies that can apply to each action ("policy slicing"): Cedar
    /// evaluates every policy of the set it is given, and most policies are
    /// about other actions. The union of the slices is the validated set.
    slices: HashMap<&'static str, PolicySet>,
    authorizer: Authorizer,
    names: Names,
    infos: HashMap<String, PolicyInfo>,
    order: Vec<String>,
    /// Entities and contexts already built, by what they were built from:
    /// building them costs more than Cedar's evaluation (`Entities` computes
    /// the transitive closure of the hierarchy every time). They depend only
    /// on their inputs, never on the policies.
    entities_cache: BuildCache<EntitiesKey<'static>, Arc<BuiltEntities>>,
    context_cache: BuildCache<ContextKey<'static>, Context>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy").field("policies", &self.order).finish_non_exhaustive()
    }
}

/// The schema, parsed; it ships with the binary, so failing to parse it is a bug.
pub fn schema() -> Schema {
    Schema::from_cedarschema_str(SCHEMA).expect("the shipped schema parses").0
}

#[cfg(test)]
mod tests {
    use super::testing::example;
    use super::*;

    #[test]
    fn the_schema_parses_and_the_example_policy_passes_its_tests() {
        let policy = example();
        assert_eq!(policy.len(), 10);
        let results = run_tests(&policy, EXAMPLE_TESTS).unwrap();
        assert!(results.len() >= 20);
        let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
        assert!(failed.is_empty(), "{failed:#?}");
        // Allow and deny are both exercised, so a policy that says one thing always fails.
        assert!(results.iter().any(|r| r.allowed) && results.iter().any(|r| !r.allowed));
    }
}
