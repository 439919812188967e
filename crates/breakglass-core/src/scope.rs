//! The vocabulary of what a grant may cover: scopes and capabilities.
//!
//! - `git:<repo>@<ref>`, e.g. `git:payments/api@refs/heads/main`, with the
//!   capabilities `push`, `force-push` and `delete`;
//! - `pipeline:<project>/<stage>[@<environment>]`, e.g.
//!   `pipeline:payments/api/deploy@production`, with `skip-gate:<name>`,
//!   `advisory-gate:<name>` and `deploy`.
//!
//! Security: a requester names the scopes and a pusher or CI job the target;
//! [`Scope::covers`] decides whether a grant reaches the thing being done.
//! Nothing is implied. A grant's scope covers a target only if it is the same
//! kind and names the same repository (or project and stage) exactly; the
//! only pattern is a trailing `*` on the ref or the environment
//! (`refs/heads/release/*`, `@*`), which matches within that part only. So
//! `git:payments/api@…` never covers `git:payments/api-internal@…`, and a
//! pipeline scope with no environment covers only the stage without one.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {input:?}: {problem}")]
pub struct ScopeError {
    pub input: String,
    pub problem: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid capability {input:?}: {problem}")]
pub struct CapabilityError {
    pub input: String,
    pub problem: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Git { repo: String, reference: String },
    Pipeline { project: String, stage: String, environment: Option<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    Git,
    Pipeline,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A `/`-separated path of names: no empty or dot-only segments.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    for seg in path.split('/') {
        if seg.is_empty() {
            return Err(format!("{path:?} has an empty path segment"));
        }
        if seg == "." || seg == ".." {
            return Err(format!("{path:?} has a {seg:?} segment"));
        }
        if let Some(c) = seg.chars().find(|c| !is_name_char(*c)) {
            return Err(format!("{path:?} contains {c:?}; use letters, digits, '.', '_' and '-'"));
        }
    }
    Ok(())
}

/// A pattern part: a path, optionally ending in `*` (which must follow `/`
/// or stand alone).
fn check_pattern(part: &str, what: &str) -> Result<(), String> {
    let body = match part.strip_suffix('*') {
        Some("") => return Ok(()),
        Some(rest) => rest.strip_suffix('/').ok_or_else(|| format!("{what} {part:?}: '*' may only follow '/'"))?,
        None => part,
    };
    if body.contains('*') {
        return Err(format!("{what} {part:?}: '*' is only allowed at the end"));
    }
    check_path(body).map_err(|e| format!("{what} {e}"))
}

fn matches_pattern(pattern: &str, target: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => target.starts_with(prefix) && !target.contains('*'),
        None => pattern == target,
    }
}

impl Scope {
    pub fn parse(input: &str) -> Result<Scope, ScopeError> {
        let err = |problem: String| ScopeError { input: input.to_owned(), problem };
        if let Some(rest) = input.strip_prefix("git:") {
            let (repo, reference) = rest
                .split_once('@')
                .ok_or_else(|| err("expected git:<repo>@<ref>, e.g. git:payments/api@refs/heads/main".into()))?;
            check_path(repo).map_err(|e| err(format!("repository {e}")))?;
            if !reference.starts_with("refs/") && reference != "*" {
                return Err(err(format!("ref {reference:?} must be a full ref name starting with refs/")));
            }
            check_pattern(reference, "ref").map_err(err)?;
            return Ok(Scope::Git { repo: repo.to_owned(), reference: reference.to_owned() });
        }
        if let Some(rest) = input.strip_prefix("pipeline:") {
            let (path, environment) = match rest.split_once('@') {
                Some((p, e)) => (p, Some(e)),
                None => (rest, None),
            };
            check_path(path).map_err(|e| err(format!("pipeline path {e}")))?;
            let Some((project, stage)) = path.rsplit_once('/') else {
                return Err(err("expected pipeline:<project>/<stage>[@<environment>]".into()));
            };
            if let Some(env) = environment {
                check_pattern(env, "environment").map_err(err)?;
            }
            return Ok(Scope::Pipeline {
                project: project.to_owned(),
                stage: stage.to_owned(),
                environment: environment.map(str::to_owned),
            });
        }
        Err(err("expected git:<repo>@<ref> or pipeline:<project>/<stage>[@<environment>]".into()))
    }

    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Git { .. } => ScopeKind::Git,
            Scope::Pipeline { .. } => ScopeKind::Pipeline,
        }
    }

    /// Whether this (granted) scope covers `target`, a concrete scope with no pattern.
    pub fn covers(&self, target: &Scope) -> bool {
        match (self, target) {
            (Scope::Git { repo, reference }, Scope::Git { repo: t_repo, reference: t_ref }) => {
                repo == t_repo && matches_pattern(reference, t_ref)
            }
            (
                Scope::Pipeline { project, stage, environment },
                Scope::Pipeline { project: t_project, stage: t_stage, environment: t_env },
            ) => {
                project == t_project
                    && stage == t_stage
                    && match (environment, t_env) {
                        (None, None) => true,
                        (Some(p), Some(t)) => matches_pattern(p, t),
                        _ => false,
                    }
            }
            _ => false,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Git { repo, reference } => write!(f, "git:{repo}@{reference}"),
            Scope::Pipeline { project, stage, environment: None } => write!(f, "pipeline:{project}/{stage}"),
            Scope::Pipeline { project, stage, environment: Some(e) } => write!(f, "pipeline:{project}/{stage}@{e}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Push,
    ForcePush,
    Delete,
    SkipGate(String),
    AdvisoryGate(String),
    Deploy,
}

impl Capability {
    pub fn parse(input: &str) -> Result<Capability, CapabilityError> {
        let err = |problem: &str| CapabilityError { input: input.to_owned(), problem: problem.to_owned() };
        let gate = |name: &str| {
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(err("a gate name is 1 or more of letters, digits, '.', '_' and '-'"));
            }
            Ok(name.to_owned())
        };
        Ok(match input {
            "push" => Capability::Push,
            "force-push" => Capability::ForcePush,
            "delete" => Capability::Delete,
            "deploy" => Capability::Deploy,
            _ => {
                if let Some(name) = input.strip_prefix("skip-gate:") {
                    Capability::SkipGate(gate(name)?)
                } else if let Some(name) = input.strip_prefix("advisory-gate:") {
                    Capability::AdvisoryGate(gate(name)?)
                } else {
                    return Err(err(
                        "expected push, force-push, delete (git) or skip-gate:<name>, advisory-gate:<name>, deploy (pipeline)",
                    ));
                }
            }
        })
    }

    /// The kind of scope this capability belongs to.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Capability::Push | Capability::ForcePush | Capability::Delete => ScopeKind::Git,
            _ => ScopeKind::Pipeline,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Push => f.write_str("push"),
            Capability::ForcePush => f.write_str("force-push"),
            Capability::Delete => f.write_str("delete"),
            Capability::Deploy => f.write_str("deploy"),
            Capability::SkipGate(g) => write!(f, "skip-gate:{g}"),
            Capability::AdvisoryGate(g) => write!(f, "advisory-gate:{g}"),
        }
    }
}

/// Checks that every capability applies to at least one of the scopes, so a
/// grant never carries a capability that means nothing for what it covers.
pub fn check_request(scopes: &[Scope], caps: &[Capability]) -> Result<(), CapabilityError> {
    for cap in caps {
        if !scopes.iter().any(|s| s.kind() == cap.kind()) {
            return Err(CapabilityError {
                input: cap.to_string(),
                problem: match cap.kind() {
                    ScopeKind::Git => "applies to git: scopes, and none was requested".into(),
                    ScopeKind::Pipeline => "applies to pipeline: scopes, and none was requested".into(),
                },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Scope {
        Scope::parse(x).unwrap()
    }

    #[test]
    fn scopes_parse_and_print_back() {
        for ok in [
            "git:payments/api@refs/heads/main",
            "git:payments/api@refs/heads/release/*",
            "git:mono@refs/tags/v1.2.3",
            "git:payments/api@*",
            "pipeline:payments/api/deploy@production",
            "pipeline:payments/api/deploy@*",
            "pipeline:payments/api/test",
        ] {
            assert_eq!(s(ok).to_string(), ok);
        }
        for (bad, says) in [
            ("payments/api@refs/heads/main", "expected git:"),
            ("git:payments/api", "expected git:<repo>@<ref>"),
            ("git:payments/api@main", "starting with refs/"),
            ("git:payments//api@refs/heads/main", "empty path segment"),
            ("git:../etc@refs/heads/main", "\"..\" segment"),
            ("git:pay ments@refs/heads/main", "contains ' '"),
            ("git:payments/api@refs/heads/ma*n", "only allowed at the end"),
            ("git:payments/api@refs/heads/main*", "'*' may only follow '/'"),
            ("git:payments/api@refs/*/main", "only allowed at the end"),
            ("pipeline:deploy", "expected pipeline:<project>/<stage>"),
            ("pipeline:payments/api/deploy@prod uction", "contains ' '"),
            ("", "expected git:"),
        ] {
            let err = Scope::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn coverage_is_exact_except_for_a_trailing_star() {
        for (grant, target, covered) in [
            ("git:payments/api@refs/heads/main", "git:payments/api@refs/heads/main", true),
            ("git:payments/api@refs/heads/main", "git:payments/api@refs/heads/main2", false),
            ("git:payments/api@refs/heads/main", "git:payments/api-internal@refs/heads/main", false),
            ("git:payments/api@refs/heads/release/*", "git:payments/api@refs/heads/release/1.2", true),
            ("git:payments/api@refs/heads/release/*", "git:payments/api@refs/heads/release", false),
            ("git:payments/api@refs/heads/release/*", "git:payments/api@refs/heads/releases/1", false),
            ("git:payments/api@*", "git:payments/api@refs/heads/anything", true),
            ("git:payments/api@*", "git:payments/api2@refs/heads/main", false),
            ("git:payments/api@refs/heads/main", "pipeline:payments/api/main", false),
            ("pipeline:payments/api/deploy@production", "pipeline:payments/api/deploy@production", true),
            ("pipeline:payments/api/deploy@production", "pipeline:payments/api/deploy@staging", false),
            ("pipeline:payments/api/deploy@*", "pipeline:payments/api/deploy@staging", true),
            ("pipeline:payments/api/deploy", "pipeline:payments/api/deploy@production", false),
            ("pipeline:payments/api/deploy@production", "pipeline:payments/api/deploy", false),
            ("pipeline:payments/api/deploy", "pipeline:payments/api/deploy", true),
            ("pipeline:payments/api/deploy@*", "pipeline:payments/api/test@staging", false),
            ("pipeline:payments/api/deploy@*", "pipeline:payments/api2/deploy@staging", false),
            ("pipeline:payments/api/deploy@*", "git:payments/api@refs/heads/main", false),
        ] {
            assert_eq!(s(grant).covers(&s(target)), covered, "{grant} covers {target}");
        }
        // A pattern target is never covered: targets are concrete things being done.
        assert!(!s("git:a@*").covers(&s("git:a@refs/heads/*")));
    }

    #[test]
    fn capabilities() {
        for ok in ["push", "force-push", "delete", "deploy", "skip-gate:tests", "advisory-gate:secret-scan"] {
            assert_eq!(Capability::parse(ok).unwrap().to_string(), ok);
        }
        for bad in ["PUSH", "skip-gate:", "skip-gate:a b", "admin", "advisory-gate:x/y", ""] {
            let err = Capability::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        let git = [s("git:a@refs/heads/main")];
        assert!(check_request(&git, &[Capability::Push, Capability::ForcePush]).is_ok());
        let err = check_request(&git, &[Capability::SkipGate("tests".into())]).unwrap_err();
        assert!(err.to_string().contains("pipeline: scopes"), "{err}");
        assert_ne!(Capability::SkipGate("tests".into()), Capability::SkipGate("secret-scan".into()));
    }
}
