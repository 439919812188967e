//! Loading a policy set: parsing and strict validation against the schema,
//! the annotations breakglass reads (`@id`, `@approvals`, `@max_duration`),
//! every problem reported with its file and line, and the permits that
//! amount to a standing backdoor.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr as _;

use cedar_policy::{
    ActionConstraint, Authorizer, Effect, EntityUid, PolicyId, PolicySet, PrincipalConstraint, ValidationMode,
    Validator,
};
use serde::Serialize;

use super::cache::{BuildCache, CONTEXT_CACHE_CAPACITY, ENTITIES_CACHE_CAPACITY};
use super::{ACTIONS, Names, Policy, schema};
use crate::grant;

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
}

#[cfg(test)]
mod tests {
    use super::super::EXAMPLE_POLICY;
    use super::super::testing::{load, load_err};
    use super::*;

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
}
