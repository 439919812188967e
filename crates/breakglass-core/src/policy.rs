//! Policy as code: who may break glass on what, for how long, approved how,
//! decided by Cedar policies over the schema in `policy/schema.cedarschema`.
//!
//! This is a pretty important and security sensitive part of the code: every
//! grant starts with [`Policy::decide_request`]. It fails closed: a request is
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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, PrincipalConstraint, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use serde::{Deserialize, Serialize};

use crate::grant::{self, Terms};
use crate::scope::{self, Capability, Scope, ScopeKind};
use crate::time::Timestamp;

/// The schema every policy is validated against.
pub const SCHEMA: &str = include_str!("../policy/schema.cedarschema");
/// The example policy written on first run, and its test table.
pub const EXAMPLE_POLICY: &str = include_str!("../policy/example/breakglass.cedar");
pub const EXAMPLE_TESTS: &str = include_str!("../policy/example/breakglass.test.toml");

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

const KNOWN_ANNOTATIONS: [&str; 4] = ["id", "approvals", "max_duration", "description"];
/// More approvals than this is a typo, not a process.
const MAX_APPROVALS: u32 = 20;

/// One thing wrong with a policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    pub file: String,
    /// 1-based line and column, when Cedar points at a place.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The policy's id, when the problem is in one policy.
    pub policy: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if let Some(id) = &self.policy {
            write!(f, "policy {id}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a policy set was not loaded: every problem found, in every file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyLoadError {
    pub problems: Vec<PolicyProblem>,
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid policy ({} problem{})",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// What breakglass knows about one loaded policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    pub id: String,
    /// What makes this policy a standing backdoor, if anything (see
    /// [`Policy::standing_risks`]).
    pub risks: Vec<String>,
    /// Its place in the set: files in the order given, policies in file order.
    pub position: usize,
    pub file: String,
    pub effect: &'static str,
    pub approvals: Option<u32>,
    pub max_duration_ms: Option<i64>,
}

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

/// How many entity sets and contexts a policy keeps built (each about a
/// kilobyte); beyond that, one is dropped to make room for the next.
const ENTITIES_CACHE_CAPACITY: usize = 512;
const CONTEXT_CACHE_CAPACITY: usize = 256;

/// A small bounded map from the inputs something was built from to what was
/// built. Entries are found by a keyed hash of the inputs and then compared
/// with them in full, so a hit is always for equal inputs: a collision is a
/// miss, never someone else's value. When full, an arbitrary entry is
/// dropped to make room; with a capacity of 0 nothing is kept. Nothing is
/// built while the lock is held.
struct BuildCache<K, V> {
    map: Mutex<HashMap<u64, (K, V)>>,
    hasher: RandomState,
    capacity: usize,
}

impl<K, V: Clone> BuildCache<K, V> {
    fn new(capacity: usize) -> Self {
        BuildCache { map: Mutex::new(HashMap::new()), hasher: RandomState::new(), capacity }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, (K, V)>> {
        // Nothing that can panic runs under the lock, and every entry is
        // inserted whole, so a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value built from inputs equal to `key` (`matches`), or `build`'s,
    /// which is kept unless it failed (`build` returns the owned key too).
    fn get_or_build<Q: Hash, E>(
        &self,
        key: &Q,
        matches: impl Fn(&K, &Q) -> bool,
        build: impl FnOnce() -> Result<(K, V), E>,
    ) -> Result<V, E> {
        let hash = self.hasher.hash_one(key);
        if let Some((k, v)) = self.lock().get(&hash)
            && matches(k, key)
        {
            return Ok(v.clone());
        }
        let (k, v) = build()?;
        if self.capacity == 0 {
            return Ok(v);
        }
        let mut map = self.lock();
        if map.len() >= self.capacity
            && !map.contains_key(&hash)
            && let Some(evict) = map.keys().next().copied()
        {
            map.remove(&evict);
        }
        map.insert(hash, (k, v.clone()));
        Ok(v)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What the entities of a decision are built from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EntitiesKey<'a> {
    principal: Cow<'a, str>,
    groups: Cow<'a, [String]>,
    scopes: Cow<'a, [Scope]>,
}

impl EntitiesKey<'_> {
    fn into_owned(self) -> EntitiesKey<'static> {
        EntitiesKey {
            principal: Cow::Owned(self.principal.into_owned()),
            groups: Cow::Owned(self.groups.into_owned()),
            scopes: Cow::Owned(self.scopes.into_owned()),
        }
    }
}

/// The principal, one resource per scope (in order), and the entities.
struct BuiltEntities {
    principal: EntityUid,
    resources: Vec<EntityUid>,
    entities: Entities,
}

/// Everything a context is built from: a [`ContextInput`] reduced to what
/// the context says (the hour and weekday of `now`, the duration in whole
/// minutes), so that inputs giving equal contexts have equal keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ContextKey<'a> {
    minutes: i64,
    hour: i64,
    weekday: i64,
    overdue_reviews: u32,
    requester: Cow<'a, str>,
    reason: Cow<'a, str>,
    gate: Cow<'a, str>,
    incident: Option<Cow<'a, IncidentInput>>,
}

impl<'a> ContextKey<'a> {
    fn new(ctx: &'a ContextInput) -> ContextKey<'a> {
        ContextKey::from_parts(
            &ctx.requester,
            ctx.overdue_reviews,
            ctx.duration_ms,
            &ctx.reason,
            &ctx.gate,
            ctx.incident.as_ref(),
            ctx.now,
        )
    }

    /// The fields of a [`ContextInput`], borrowed.
    fn from_parts(
        requester: &'a str,
        overdue_reviews: u32,
        duration_ms: i64,
        reason: &'a str,
        gate: &'a str,
        incident: Option<&'a IncidentInput>,
        now: Timestamp,
    ) -> ContextKey<'a> {
        let day_ms = 86_400_000;
        let days = now.0.div_euclid(day_ms);
        ContextKey {
            // Rounded up, so "at most 60 minutes" refuses 60 minutes and a second.
            minutes: (duration_ms.max(0) as u64).div_ceil(60_000) as i64,
            hour: now.0.rem_euclid(day_ms) / 3_600_000,
            // 1970-01-01 was a Thursday, day 3 of a week that starts on Monday.
            weekday: (days + 3).rem_euclid(7),
            overdue_reviews,
            requester: Cow::Borrowed(requester),
            reason: Cow::Borrowed(reason),
            gate: Cow::Borrowed(gate),
            incident: incident.map(Cow::Borrowed),
        }
    }

    fn into_owned(self) -> ContextKey<'static> {
        ContextKey {
            requester: Cow::Owned(self.requester.into_owned()),
            reason: Cow::Owned(self.reason.into_owned()),
            gate: Cow::Owned(self.gate.into_owned()),
            incident: self.incident.map(|i| Cow::Owned(i.into_owned())),
            ..self
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

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn problem(file: &str, text: &str, policy: Option<&str>, diag: &dyn miette::Diagnostic) -> PolicyProblem {
    let offset = diag.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let (line, column) = match offset {
        Some(o) => {
            let (l, c) = position(text, o);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let mut message = diag.to_string();
    // Cedar's validator starts with the policy id, which the problem already shows.
    if let Some(rest) = policy.and_then(|id| message.strip_prefix(&format!("for policy `{id}`, "))) {
        message = rest.to_owned();
    }
    if let Some(help) = diag.help() {
        message.push_str(&format!(" (hint: {help})"));
    }
    PolicyProblem { file: file.to_owned(), line, column, policy: policy.map(str::to_owned), message }
}

/// Whether a policy's scope can match `action`. The schema has no action
/// groups, so this is exact: a policy it excludes evaluates to false (the
/// action test comes before the conditions, so it cannot error either).
fn applies_to(p: &cedar_policy::Policy, action: &str) -> bool {
    let is = |uid: &EntityUid| uid.id().unescaped() == action;
    match p.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => is(&uid),
        ActionConstraint::In(uids) => uids.iter().any(is),
    }
}

/// What makes a permit a standing backdoor: it lets every principal break
/// glass (no principal in its scope, and no condition that names one), or
/// it permits requests with no time bound of its own.
fn standing_risks(p: &cedar_policy::Policy) -> Vec<String> {
    if p.effect() != Effect::Permit {
        return Vec::new();
    }
    const ELEVATING: [&str; 8] =
        ["request", "auto-approve", "push", "force-push", "delete", "skip-gate", "advisory-gate", "deploy"];
    let mut risks = Vec::new();
    let actions: Vec<&str> = ELEVATING.iter().copied().filter(|a| applies_to(p, a)).collect();
    let text = p.to_string();
    // The conditions, roughly: everything after the scope's closing parenthesis.
    let scope_start = text.find("permit").unwrap_or(0);
    let conditions = text[scope_start..].split_once(')').map_or("", |(_, rest)| rest);
    if !actions.is_empty()
        && matches!(p.principal_constraint(), PrincipalConstraint::Any)
        && !conditions.contains("principal")
    {
        risks.push(format!(
            "permits {} to every principal (no principal or group in its scope or conditions)",
            actions.join(", ")
        ));
    }
    if permits_request(p) && p.annotation("max_duration").is_none() {
        risks.push("permits requests with no @max_duration: grants may last up to the global cap of a week".into());
    }
    risks
}

fn permits_request(p: &cedar_policy::Policy) -> bool {
    p.effect() == Effect::Permit && applies_to(p, "request")
}

/// The kind of scope an action applies to (None: both), as in the schema.
fn action_kind(action: &str) -> Option<ScopeKind> {
    match action {
        "push" | "force-push" | "delete" => Some(ScopeKind::Git),
        "skip-gate" | "advisory-gate" | "deploy" => Some(ScopeKind::Pipeline),
        _ => None,
    }
}

impl Policy {
    /// Parses and strictly validates `(file name, text)` pairs. Either every
    /// file is good and the whole set loads, or nothing does and every
    /// problem is returned.
    pub fn load(sources: &[(String, String)]) -> Result<Policy, PolicyLoadError> {
        let schema = schema();
        let mut problems = Vec::new();
        let mut set = PolicySet::new();
        let mut infos: HashMap<String, PolicyInfo> = HashMap::new();
        let mut order = Vec::new();
        let mut texts: HashMap<String, (&str, &str)> = HashMap::new();
        for (file, text) in sources {
            let bad = |message: String, policy: Option<&str>| PolicyProblem {
                file: file.clone(),
                line: None,
                column: None,
                policy: policy.map(str::to_owned),
                message,
            };
            let parsed = match PolicySet::from_str(text) {
                Ok(p) => p,
                Err(errs) => {
                    problems.extend(errs.iter().map(|e| problem(file, text, None, e)));
                    continue;
                }
            };
            if parsed.templates().next().is_some() {
                problems.push(bad("templates (policies with ?principal or ?resource) are not supported".into(), None));
                continue;
            }
            // Cedar names a file's policies policy0, policy1, … in order.
            let mut policies: Vec<&cedar_policy::Policy> = parsed.policies().collect();
            policies.sort_by_key(|p| p.id().to_string().trim_start_matches("policy").parse::<usize>().unwrap_or(0));
            for (idx, p) in policies.into_iter().enumerate() {
                // Named by the file's name, not its path, so ids do not
                // depend on where the policies were read from.
                let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
                let fallback = format!("{base}#{}", idx + 1);
                let id = match p.annotation("id") {
                    Some(id) if !id.trim().is_empty() => id.to_owned(),
                    Some(_) => {
                        problems.push(bad("@id is empty".into(), Some(&fallback)));
                        fallback
                    }
                    None => fallback,
                };
                let mut info = PolicyInfo {
                    risks: standing_risks(p),
                    id: id.clone(),
                    position: order.len(),
                    file: file.clone(),
                    effect: if p.effect() == Effect::Permit { "permit" } else { "forbid" },
                    approvals: None,
                    max_duration_ms: None,
                };
                for (key, _) in p.annotations() {
                    if !KNOWN_ANNOTATIONS.contains(&key) {
                        problems.push(bad(
                            format!("unknown annotation @{key} (breakglass reads @id, @approvals, @max_duration and @description)"),
                            Some(&id),
                        ));
                    }
                }
                let request_permit = permits_request(p);
                if let Some(v) = p.annotation("approvals") {
                    match v.trim().parse::<u32>() {
                        _ if !request_permit => problems.push(bad(
                            "@approvals only means something on a permit of the request action".into(),
                            Some(&id),
                        )),
                        Ok(n) if (1..=MAX_APPROVALS).contains(&n) => info.approvals = Some(n),
                        _ => problems.push(bad(
                            format!("invalid @approvals({v:?}): expected a whole number from 1 to {MAX_APPROVALS} (to need no approval, permit auto-approve)"),
                            Some(&id),
                        )),
                    }
                }
                if let Some(v) = p.annotation("max_duration") {
                    if !request_permit {
                        problems.push(bad(
                            "@max_duration only means something on a permit of the request action".into(),
                            Some(&id),
                        ));
                    } else {
                        match grant::parse_duration(v) {
                            Ok(ms) => info.max_duration_ms = Some(ms),
                            Err(e) => problems.push(bad(format!("@max_duration: {e}"), Some(&id))),
                        }
                    }
                }
                if let Some(other) = infos.get(&id) {
                    problems.push(bad(format!("policy id {id:?} is already used in {}", other.file), Some(&id)));
                    continue;
                }
                if let Err(e) = set.add(p.new_id(PolicyId::new(&id))) {
                    problems.push(bad(e.to_string(), Some(&id)));
                    continue;
                }
                texts.insert(id.clone(), (file.as_str(), text.as_str()));
                order.push(id.clone());
                infos.insert(id, info);
            }
        }
        let validation = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for e in validation.validation_errors() {
            let id = e.policy_id().to_string();
            let (file, text) = texts.get(&id).copied().unwrap_or(("?", ""));
            problems.push(problem(file, text, Some(&id), e));
        }
        // Warnings are refused too: a policy that can never apply (push on a
        // pipeline stage) is a mistake, and an impossible forbid is a
        // protection its author believes in and does not have.
        for w in validation.validation_warnings() {
            let id = w.policy_id().to_string();
            let (file, text) = texts.get(&id).copied().unwrap_or(("?", ""));
            problems.push(problem(file, text, Some(&id), w));
        }
        if !problems.is_empty() {
            return Err(PolicyLoadError { problems });
        }
        let mut slices = HashMap::new();
        for action in ACTIONS {
            let mut slice = PolicySet::new();
            for p in set.policies().filter(|p| applies_to(p, action)) {
                slice.add(p.clone()).expect("ids are unique in the whole set");
            }
            slices.insert(action, slice);
        }
        Ok(Policy {
            slices,
            authorizer: Authorizer::new(),
            names: Names::new(),
            infos,
            order,
            entities_cache: BuildCache::new(ENTITIES_CACHE_CAPACITY),
            context_cache: BuildCache::new(CONTEXT_CACHE_CAPACITY),
        })
    }

    /// The permits that amount to a standing backdoor: (policy id, file, why).
    pub fn standing_risks(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for id in &self.order {
            if let Some(info) = self.infos.get(id) {
                for r in &info.risks {
                    out.push((info.id.clone(), info.file.clone(), r.clone()));
                }
            }
        }
        out
    }

    /// The number of policies.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The policies, in file order.
    pub fn policies(&self) -> impl Iterator<Item = &PolicyInfo> {
        self.order.iter().filter_map(|id| self.infos.get(id))
    }

    pub fn info(&self, id: &str) -> Option<&PolicyInfo> {
        self.infos.get(id)
    }

    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    fn resource(&self, scope: &Scope) -> Result<(EntityUid, Entity), String> {
        let s = RestrictedExpression::new_string;
        let (uid, attrs, parent) = match scope {
            Scope::Git { repo, reference } => (
                self.uid(&self.names.git_ref, &format!("{repo}@{reference}")),
                HashMap::from([("repo".to_owned(), s(repo.clone())), ("ref".to_owned(), s(reference.clone()))]),
                self.uid(&self.names.git_repo, repo),
            ),
            Scope::Pipeline { project, stage, environment } => {
                let id = match environment {
                    Some(env) => format!("{project}/{stage}@{env}"),
                    None => format!("{project}/{stage}"),
                };
                (
                    self.uid(&self.names.stage, &id),
                    HashMap::from([
                        ("project".to_owned(), s(project.clone())),
                        ("stage".to_owned(), s(stage.clone())),
                        ("environment".to_owned(), s(environment.clone().unwrap_or_default())),
                    ]),
                    self.uid(&self.names.pipeline, project),
                )
            }
        };
        let entity = Entity::new(uid.clone(), attrs, HashSet::from([parent])).map_err(|e| e.to_string())?;
        Ok((uid, entity))
    }

    /// The principal, its groups and one resource per scope: all a decision reads.
    fn entities(
        &self,
        principal: &str,
        groups: &[String],
        scopes: &[&Scope],
    ) -> Result<(EntityUid, Vec<EntityUid>, Entities), String> {
        let p_uid = self.uid(&self.names.principal, principal);
        let parents: HashSet<EntityUid> = groups.iter().map(|g| self.uid(&self.names.group, g)).collect();
        let attrs = HashMap::from([("name".to_owned(), RestrictedExpression::new_string(principal.to_owned()))]);
        let mut all = Vec::with_capacity(scopes.len() + 1);
        all.push(Entity::new(p_uid.clone(), attrs, parents).map_err(|e| e.to_string())?);
        let mut resources = Vec::with_capacity(scopes.len());
        let mut seen = HashSet::new();
        for scope in scopes {
            let (uid, entity) = self.resource(scope)?;
            if seen.insert(uid.clone()) {
                all.push(entity);
            }
            resources.push(uid);
        }
        let entities = Entities::from_entities(all, None).map_err(|e| e.to_string())?;
        Ok((p_uid, resources, entities))
    }

    /// The entities of [`Policy::entities`], built once for equal inputs.
    fn entities_cached(
        &self,
        principal: &str,
        groups: &[String],
        scopes: &[Scope],
    ) -> Result<Arc<BuiltEntities>, String> {
        let key = EntitiesKey {
            principal: Cow::Borrowed(principal),
            groups: Cow::Borrowed(groups),
            scopes: Cow::Borrowed(scopes),
        };
        self.entities_cache.get_or_build(
            &key,
            |cached, key| cached == key,
            || {
                let refs: Vec<&Scope> = scopes.iter().collect();
                let (principal, resources, entities) = self.entities(principal, groups, &refs)?;
                Ok((key.clone().into_owned(), Arc::new(BuiltEntities { principal, resources, entities })))
            },
        )
    }

    #[cfg(test)]
    fn context(ctx: &ContextInput) -> Result<Context, String> {
        Self::build_context(&ContextKey::new(ctx))
    }

    /// The context of [`Policy::context`], built once for equal inputs.
    fn context_cached(&self, key: &ContextKey<'_>) -> Result<Context, String> {
        self.context_cache.get_or_build(
            key,
            |cached, key| cached == key,
            || Ok((key.clone().into_owned(), Self::build_context(key)?)),
        )
    }

    fn build_context(key: &ContextKey<'_>) -> Result<Context, String> {
        let long = RestrictedExpression::new_long;
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let rec = |pairs: Vec<(&str, RestrictedExpression)>| {
            RestrictedExpression::new_record(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)))
                .map_err(|e| e.to_string())
        };
        let none = IncidentInput::default();
        let inc = key.incident.as_deref().unwrap_or(&none);
        Context::from_pairs([
            ("duration_minutes".to_owned(), long(key.minutes)),
            ("reason".to_owned(), string(&key.reason)),
            ("gate".to_owned(), string(&key.gate)),
            (
                "requester".to_owned(),
                rec(vec![("name", string(&key.requester)), ("overdue_reviews", long(key.overdue_reviews.into()))])?,
            ),
            (
                "incident".to_owned(),
                rec(vec![
                    ("present", RestrictedExpression::new_bool(key.incident.is_some())),
                    ("id", string(&inc.id)),
                    ("severity", long(inc.severity)),
                    ("status", string(&inc.status)),
                    ("services", RestrictedExpression::new_set(inc.services.iter().map(|s| string(s)))),
                    ("requester_is_responder", RestrictedExpression::new_bool(inc.requester_is_responder)),
                ])?,
            ),
            ("time".to_owned(), rec(vec![("hour_utc", long(key.hour)), ("weekday", long(key.weekday))])?),
        ])
        .map_err(|e| e.to_string())
    }

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
    fn decide_all(
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
const TEST_MONDAY_MS: i64 = 1_767_571_200_000;

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
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    fn load(files: &[(&str, &str)]) -> Result<Policy, PolicyLoadError> {
        Policy::load(&files.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect::<Vec<_>>())
    }

    fn example() -> Policy {
        load(&[("breakglass.cedar", EXAMPLE_POLICY)]).unwrap()
    }

    fn load_err(files: &[(&str, &str)]) -> String {
        load(files).unwrap_err().to_string()
    }

    fn scopes(s: &[&str]) -> Vec<Scope> {
        s.iter().map(|s| Scope::parse(s).unwrap()).collect()
    }

    fn caps(c: &[&str]) -> Vec<Capability> {
        c.iter().map(|c| Capability::parse(c).unwrap()).collect()
    }

    fn request(principal: &str, groups: &[&str], s: &[&str], c: &[&str], duration: &str) -> RequestInput {
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

    fn incident(severity: i64, status: &str, responder: bool) -> Option<IncidentInput> {
        Some(IncidentInput {
            id: "INC-1".into(),
            severity,
            status: status.into(),
            services: vec!["payments".into()],
            requester_is_responder: responder,
        })
    }

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

    const GOOD: &str =
        r#"@id("good") permit (principal, action == Breakglass::Action::"request", resource is Breakglass::GitRef);"#;

    #[test]
    fn strict_validation_rejects_bad_policies_naming_the_file() {
        let permit = |when: &str| {
            format!(
                "permit (principal, action == Breakglass::Action::\"request\", resource is Breakglass::GitRef) when {{ {when} }};"
            )
        };
        for (text, says) in [
            (permit("resource.branch == \"main\""), "branch"),
            (permit("context.reason > 3"), "type"),
            (permit("context.incident.severity == \"high\""), "type"),
            (r#"permit (principal, action == Breakglass::Action::"merge", resource);"#.to_owned(), "merge"),
            (r#"permit (principal in Breakglass::Team::"x", action, resource);"#.to_owned(), "Team"),
            (
                r#"permit (principal, action == Breakglass::Action::"push", resource is Breakglass::PipelineStage);"#
                    .to_owned(),
                "applicable action",
            ),
            (
                r#"forbid (principal, action == Breakglass::Action::"skip-gate", resource is Breakglass::GitRef);"#
                    .to_owned(),
                "applicable action",
            ),
            (permit("context.duration_minutes > 1 && false"), "policy is impossible"),
            ("permit (principal, action, resource)\nwhen { true }".to_owned(), "bad.cedar:2:"),
            (r#"permit (principal == ?principal, action, resource);"#.to_owned(), "templates"),
            (format!("@approvals(\"two\")\n{}", permit("true")), "invalid @approvals(\"two\")"),
            (format!("@approvals(\"0\")\n{}", permit("true")), "permit auto-approve"),
            (format!("@approvals(\"21\")\n{}", permit("true")), "1 to 20"),
            (format!("@max_duration(\"forever\")\n{}", permit("true")), "invalid duration \"forever\""),
            (format!("@max_duration(\"8d\")\n{}", permit("true")), "invalid duration \"8d\""),
            (format!("@approval(\"2\")\n{}", permit("true")), "unknown annotation @approval"),
            (
                r#"@approvals("2") forbid (principal, action == Breakglass::Action::"request", resource);"#.to_owned(),
                "only means something",
            ),
            (
                r#"@max_duration("1h") permit (principal, action == Breakglass::Action::"push", resource);"#.to_owned(),
                "only means something",
            ),
            (format!("{GOOD}\n{GOOD}"), "\"good\" is already used in bad.cedar"),
            (r#"@id("") permit (principal, action, resource);"#.to_owned(), "@id is empty"),
        ] {
            let Err(err) = load(&[("bad.cedar", &text)]).map_err(|e| e.to_string()) else { panic!("{text} loaded") };
            assert!(err.contains("bad.cedar") && err.contains(says), "{text}\n=> {err}");
        }
        // Validation errors point at the line of the problem.
        let err = load_err(&[("bad.cedar", &format!("{GOOD}\n\n{}", permit("resource.branch == \"main\"")))]);
        assert!(err.contains("bad.cedar:3:"), "{err}");
    }

    #[test]
    fn a_broken_file_fails_the_whole_load_and_every_problem_is_reported() {
        let good2 = r#"permit (principal, action == Breakglass::Action::"push", resource);"#;
        assert_eq!(load(&[("a.cedar", GOOD), ("b.cedar", good2)]).unwrap().len(), 2);
        let err = load(&[
            ("a.cedar", GOOD),
            ("broken.cedar", "permit (principal, action, resource"),
            ("b.cedar", good2),
            ("typo.cedar", r#"permit (principal, action, resource) when { resource.colour == "red" };"#),
        ])
        .unwrap_err();
        let files: Vec<&str> = err.problems.iter().map(|p| p.file.as_str()).collect();
        assert!(files.contains(&"broken.cedar") && files.contains(&"typo.cedar"), "{err}");
        assert!(!files.contains(&"a.cedar") && !files.contains(&"b.cedar"), "{err}");
        // The same id in two files is refused, naming the first.
        let err = load_err(&[("a.cedar", GOOD), ("b.cedar", GOOD)]);
        assert!(err.contains("b.cedar") && err.contains("already used in a.cedar"), "{err}");
        // Without @id, a policy is named by its file and position.
        let p = load(&[("policies/x.cedar", &format!("{good2}\n{good2}"))]).unwrap();
        assert_eq!(p.policies().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["x.cedar#1", "x.cedar#2"]);
    }

    const TERMS: &str = r#"
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
    fn standing_backdoors_are_named() {
        let load = |text: &str| Policy::load(&[("p.cedar".to_owned(), text.to_owned())]).unwrap();
        assert!(load(EXAMPLE_POLICY).standing_risks().is_empty(), "the example policy has none");
        let open = load(
            r#"@id("anyone") permit (principal, action == Breakglass::Action::"request", resource) when { context.reason != "" };"#,
        );
        let risks: Vec<String> = open.standing_risks().into_iter().map(|(id, _, why)| format!("{id}: {why}")).collect();
        assert_eq!(risks.len(), 2, "{risks:?}");
        assert!(risks[0].contains("anyone: permits request to every principal"), "{risks:?}");
        assert!(risks[1].contains("no @max_duration"), "{risks:?}");
        // A condition on the principal, or a group in the scope, is not everyone.
        let named = load(
            r#"@id("alice-only") @max_duration("1h") permit (principal, action == Breakglass::Action::"request", resource) when { principal.name == "alice" };"#,
        );
        assert!(named.standing_risks().is_empty());
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

    #[test]
    fn every_request_conforms_to_the_schema() {
        // Decisions skip Cedar's request check for speed; this is that check.
        let policy = example();
        let schema = schema();
        let scopes = scopes(&["git:a/b@refs/heads/*", "pipeline:a/b/deploy", "pipeline:a/b/deploy@prod"]);
        for incident in [None, incident(1, "triggered", true)] {
            let ctx = ContextInput {
                gate: "tests".into(),
                duration_ms: 1,
                incident: incident.clone(),
                ..ContextInput::default()
            };
            let (p, resources, _) =
                policy.entities("alice", &["oncall".into()], &scopes.iter().collect::<Vec<_>>()).unwrap();
            for action in ACTIONS {
                for (scope, r) in scopes.iter().zip(&resources) {
                    let req = cedar_policy::Request::new(
                        p.clone(),
                        policy.names.actions[action].clone(),
                        r.clone(),
                        Policy::context(&ctx).unwrap(),
                        Some(&schema),
                    );
                    let applies = action_kind(action).is_none_or(|k| k == scope.kind());
                    assert_eq!(req.is_ok(), applies, "{action} on {scope}: {req:?}");
                }
            }
        }
        // The entities conform too.
        let (_, _, entities) =
            policy.entities("alice", &["oncall".into()], &scopes.iter().collect::<Vec<_>>()).unwrap();
        let entities: Vec<Entity> = entities.iter().cloned().collect();
        Entities::from_entities(entities, Some(&schema)).unwrap();
    }

    #[test]
    fn the_context_carries_time_duration_and_the_resource() {
        let policy = load(&[(
            "hours.cedar",
            r#"
@id("office-hours") permit (principal, action == Breakglass::Action::"request", resource is Breakglass::PipelineStage)
when { context.time.weekday < 5 && context.time.hour_utc >= 9 && context.time.hour_utc < 17
       && context.duration_minutes <= 60 && resource.environment == "" && resource in Breakglass::Pipeline::"p/q"
       && principal.name == "pat" && context.requester.name == "pat" };
"#,
        )])
        .unwrap();
        let s = Scope::parse("pipeline:p/q/build").unwrap();
        for (at, duration_ms, allowed) in [
            ("2026-01-05T09:00:00Z", 3_600_000, true),  // Monday
            ("2026-01-09T16:59:59Z", 3_600_000, true),  // Friday
            ("2026-01-10T10:00:00Z", 3_600_000, false), // Saturday
            ("2026-01-04T10:00:00Z", 3_600_000, false), // Sunday
            ("2026-01-05T08:59:59Z", 3_600_000, false),
            ("2026-01-05T17:00:00Z", 3_600_000, false),
            ("2026-01-05T12:00:00Z", 3_600_001, false), // 61 minutes, rounded up
            ("1969-12-29T12:00:00Z", 60_000, true),     // a Monday before the epoch
        ] {
            let ctx = ContextInput {
                requester: "pat".into(),
                duration_ms,
                now: Timestamp::parse(at).unwrap(),
                ..ContextInput::default()
            };
            assert_eq!(policy.decide("pat", &[], "request", &s, &ctx).allowed, allowed, "{at} {duration_ms}");
        }
        assert_eq!(Timestamp::parse("2026-01-05T00:00:00Z").unwrap(), Timestamp(TEST_MONDAY_MS));
        assert_eq!(TEST_MONDAY_MS % DAY_MS, 0);
    }

    /// The same policy, building every decision's entities and context afresh.
    fn uncached(files: &[(&str, &str)]) -> Policy {
        let mut policy = load(files).unwrap();
        policy.entities_cache = BuildCache::new(0);
        policy.context_cache = BuildCache::new(0);
        policy
    }

    #[test]
    fn cached_decisions_equal_uncached_ones() {
        let files = [("breakglass.cedar", EXAMPLE_POLICY), ("terms.cedar", TERMS)];
        let fresh = uncached(&files);
        let warm = load(&files).unwrap();
        let scope_sets = [
            &["git:payments/api@refs/heads/main"][..],
            &["git:x/y@refs/heads/feature/a", "git:x/y@refs/heads/main"],
            &["pipeline:payments/api/deploy@production"],
            &["pipeline:p/deploy@prod", "git:x/y@refs/heads/main", "git:x/y@refs/heads/main"],
        ];
        let who: [(&str, &[&str]); 6] = [
            ("alice", &["oncall"]),
            ("alice", &[]),
            ("alice", &["oncall", "dev"]),
            ("bob", &["oncall"]),
            ("sam", &["sre"]),
            ("dana", &["dev"]),
        ];
        let contexts = [
            ContextInput {
                requester: "alice".into(),
                duration_ms: 1_800_000,
                reason: "INC-1".into(),
                ..ContextInput::default()
            },
            ContextInput {
                requester: "bob".into(),
                duration_ms: 1_800_000,
                reason: "INC-1".into(),
                ..ContextInput::default()
            },
            ContextInput {
                duration_ms: 3_600_001,
                reason: "INC-1".into(),
                gate: "secret-scan".into(),
                ..ContextInput::default()
            },
            ContextInput {
                requester: "alice".into(),
                duration_ms: 1_800_000,
                reason: "INC-1".into(),
                gate: "lint".into(),
                incident: incident(1, "triggered", true),
                overdue_reviews: 1,
                now: Timestamp(TEST_MONDAY_MS + 13 * 3_600_000),
            },
        ];
        for (principal, groups) in who {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            for s in scope_sets {
                let s = scopes(s);
                for ctx in &contexts {
                    for action in ACTIONS {
                        let expect = fresh.decide_all(principal, &groups, action, &s, ctx);
                        for _ in 0..2 {
                            assert_eq!(
                                warm.decide_all(principal, &groups, action, &s, ctx),
                                expect,
                                "{principal} {groups:?} {action} {s:?} {ctx:?}"
                            );
                        }
                    }
                    let expect = (
                        fresh.decide_approval(principal, &groups, &s, ctx),
                        fresh.decide_review(principal, &groups, &s, ctx),
                    );
                    assert_eq!(
                        (
                            warm.decide_approval(principal, &groups, &s, ctx),
                            warm.decide_review(principal, &groups, &s, ctx)
                        ),
                        expect
                    );
                }
                for c in
                    [&["push"][..], &["push", "force-push", "deploy"], &["skip-gate:lint", "advisory-gate:secret-scan"]]
                {
                    for inc in [None, incident(1, "triggered", true)] {
                        let mut r = request(principal, &[], &[], c, "30m");
                        r.groups = groups.clone();
                        r.scopes = s.clone();
                        r.incident = inc;
                        let expect = fresh.decide_request(&r);
                        for _ in 0..2 {
                            assert_eq!(warm.decide_request(&r), expect, "{r:?}");
                        }
                    }
                }
            }
        }
        // The uncached policy kept nothing; the other used both caches, bounded.
        assert_eq!((fresh.entities_cache.len(), fresh.context_cache.len()), (0, 0));
        assert!(warm.entities_cache.len() > 1 && warm.entities_cache.len() <= ENTITIES_CACHE_CAPACITY);
        assert!(warm.context_cache.len() > 1 && warm.context_cache.len() <= CONTEXT_CACHE_CAPACITY);
        // The example table, on a policy that has already decided all of the above.
        let results = run_tests(&warm, EXAMPLE_TESTS).unwrap();
        assert!(results.iter().all(|r| r.passed), "{results:#?}");
    }

    #[test]
    fn cached_entities_and_contexts_are_the_ones_built_from_the_same_inputs() {
        let policy = example();
        let s = scopes(&["git:a/b@refs/heads/main", "pipeline:a/b/deploy@prod"]);
        let groups = ["oncall".to_owned()];
        let built = policy.entities_cached("alice", &groups, &s).unwrap();
        assert!(Arc::ptr_eq(&built, &policy.entities_cached("alice", &groups, &s).unwrap()));
        let refs: Vec<&Scope> = s.iter().collect();
        let (p, resources, entities) = policy.entities("alice", &groups, &refs).unwrap();
        assert_eq!((&built.principal, &built.resources), (&p, &resources));
        let mut cached: Vec<String> = built.entities.iter().map(|e| e.to_string()).collect();
        let mut fresh: Vec<String> = entities.iter().map(|e| e.to_string()).collect();
        cached.sort();
        fresh.sort();
        assert_eq!(cached, fresh);
        // Anything else is built anew.
        for (principal, groups, s) in [
            ("alice", &[][..], &s[..]),
            ("alice", &["oncall".to_owned(), "sre".to_owned()][..], &s[..]),
            ("bob", &groups[..], &s[..]),
            ("alice", &groups[..], &s[..1]),
        ] {
            assert!(!Arc::ptr_eq(&built, &policy.entities_cached(principal, groups, s).unwrap()));
        }

        let ctx = ContextInput {
            requester: "alice".into(),
            duration_ms: 1_800_000,
            reason: "INC-1".into(),
            incident: incident(2, "acknowledged", true),
            now: Timestamp(TEST_MONDAY_MS + 9 * 3_600_000 + 1),
            ..ContextInput::default()
        };
        let cached = policy.context_cached(&ContextKey::new(&ctx)).unwrap();
        assert_eq!(cached, Policy::context(&ctx).unwrap());
        // Inputs that say the same thing share a context: the same hour,
        // the same whole minutes.
        let same = ContextInput { now: Timestamp(ctx.now.0 + 3_599_998), duration_ms: 1_740_001, ..ctx.clone() };
        assert_eq!(ContextKey::new(&same), ContextKey::new(&ctx));
        assert_eq!(policy.context_cached(&ContextKey::new(&same)).unwrap(), Policy::context(&same).unwrap());
        // And any difference is a different context.
        let other_incident = Some(IncidentInput { services: vec!["x".into()], ..ctx.incident.clone().unwrap() });
        for other in [
            ContextInput { now: Timestamp(ctx.now.0 + 3_599_999), ..ctx.clone() },
            ContextInput { now: Timestamp(ctx.now.0 + 86_400_000), ..ctx.clone() },
            ContextInput { duration_ms: 1_800_001, ..ctx.clone() },
            ContextInput { requester: "bob".into(), ..ctx.clone() },
            ContextInput { reason: "INC-2".into(), ..ctx.clone() },
            ContextInput { gate: "tests".into(), ..ctx.clone() },
            ContextInput { overdue_reviews: 1, ..ctx.clone() },
            ContextInput { incident: None, ..ctx.clone() },
            ContextInput { incident: other_incident, ..ctx.clone() },
        ] {
            assert_ne!(ContextKey::new(&other), ContextKey::new(&ctx), "{other:?}");
            let context = policy.context_cached(&ContextKey::new(&other)).unwrap();
            assert_eq!(context, Policy::context(&other).unwrap(), "{other:?}");
            assert_ne!(context, cached, "{other:?}");
        }
    }

    #[test]
    fn the_cache_never_lends_one_principals_groups_to_another() {
        let policy = load(&[(
            "who.cedar",
            r#"
@id("dev-request") permit (principal in Breakglass::Group::"dev", action == Breakglass::Action::"request", resource is Breakglass::GitRef);
@id("alice-push") permit (principal, action == Breakglass::Action::"push", resource is Breakglass::GitRef) when { principal.name == "alice" };
@id("main-only") forbid (principal, action == Breakglass::Action::"request", resource is Breakglass::GitRef) when { resource.ref != "refs/heads/main" };
"#,
        )])
        .unwrap();
        let main = Scope::parse("git:a/b@refs/heads/main").unwrap();
        let dev = Scope::parse("git:a/b@refs/heads/dev").unwrap();
        let ctx = ContextInput::default();
        let g = |gs: &[&str]| gs.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        // Interleaved, twice, so that each decision is made once with its
        // own entities built and once after everyone else's are cached.
        for _ in 0..2 {
            for (principal, groups, action, scope, allowed) in [
                ("alice", g(&["dev"]), "request", &main, true),
                ("bob", g(&[]), "request", &main, false),
                ("bob", g(&["dev"]), "request", &main, true),
                ("alice", g(&[]), "request", &main, false),
                ("alice", g(&["dev"]), "request", &dev, false),
                ("carol", g(&["devs"]), "request", &main, false),
                ("carol", g(&["de", "v"]), "request", &main, false),
                ("alice", g(&[]), "push", &main, true),
                ("bob", g(&["dev"]), "push", &main, false),
                ("alicе", g(&["dev"]), "push", &main, false), // a Cyrillic e
                ("alice ", g(&["dev"]), "push", &main, false),
            ] {
                let d = policy.decide(principal, &groups, action, scope, &ctx);
                assert_eq!(d.allowed, allowed, "{principal} {groups:?} {action} {scope}: {d:?}");
            }
            // Whole requests too: bob's request is decided with bob's groups only.
            let r = request("alice", &["dev"], &["git:a/b@refs/heads/main"], &["push"], "30m");
            assert!(policy.decide_request(&r).allowed);
            let r = request("bob", &["dev"], &["git:a/b@refs/heads/main"], &["push"], "30m");
            let d = policy.decide_request(&r);
            assert!(!d.allowed && d.denials().next().unwrap().to_string().contains("deny push"), "{d:?}");
            let r = request("alice", &[], &["git:a/b@refs/heads/main"], &["push"], "30m");
            assert!(!policy.decide_request(&r).allowed);
        }
    }

    /// A key whose hash is always the same, so that every lookup collides.
    #[derive(Debug, PartialEq)]
    struct Colliding(&'static str);

    impl Hash for Colliding {
        fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
    }

    #[test]
    fn the_cache_compares_whole_keys_and_stays_bounded() {
        let cache: BuildCache<&'static str, usize> = BuildCache::new(4);
        let builds = std::cell::Cell::new(0);
        let get = |key: &'static str| {
            cache
                .get_or_build(
                    &Colliding(key),
                    |k, q| *k == q.0,
                    || {
                        builds.set(builds.get() + 1);
                        Ok::<_, ()>((key, key.len()))
                    },
                )
                .unwrap()
        };
        // Same hash, different keys: each is built, never confused.
        assert_eq!((get("a"), get("bb"), get("a"), get("ccc")), (1, 2, 1, 3));
        assert_eq!(builds.get(), 4);
        // Failures are not kept.
        let failed = cache.get_or_build(&"x", |k, q| k == q, || Err::<(&str, usize), _>("no"));
        assert_eq!(failed, Err("no"));
        assert_eq!(cache.get_or_build(&"x", |k, q| k == q, || Ok::<_, ()>(("x", 9))), Ok(9));
        assert_eq!(cache.get_or_build(&"x", |k, q| k == q, || Ok::<_, ()>(("x", 0))), Ok(9));
        // Bounded.
        for key in ["d", "e", "f", "g", "h", "i", "j"] {
            cache.get_or_build(&key, |k, q| k == q, || Ok::<_, ()>((key, 1))).unwrap();
            assert!(cache.len() <= 4);
        }
    }
}
