//! CI jobs as callers: OIDC ID tokens from GitHub Actions and GitLab CI,
//! verified against the configured issuers' JWKS (cached, refreshed when a
//! token names a key the cache does not know: key rotation), mapped to a
//! pipeline project (by the repository's immutable id claim and its name)
//! and to the principal who triggered the job.
//!
//! Also what a job may learn and do: its pipeline scope's break-glass status
//! and what each gate does under the relaxations its person's grant brings.
//!
//! Security: the token, every claim in it and the scope it asks about are
//! the job's (an attacker who controls a pipeline controls them all). A job
//! that can pass for another project, or for another person, could use
//! their grant to skip gates. Rules: only configured issuers; the
//! audience must be ours; RS256/ES256 only (see `breakglass_core::oidc`);
//! a project matches only if both its id and its name claims match the
//! configuration; the triggering person is a principal only through an
//! `accounts` entry in the principals file, and only by their account's
//! immutable id (`actor_id` on GitHub, `user_id` on GitLab), written
//! `<issuer>:id:<id>` (`github:id:4242`). A login (`actor`, `user_login`) can
//! be renamed and then registered by someone else, who would inherit the
//! grants; it is kept for display only, and an `accounts` entry naming a
//! login maps nobody.

use std::collections::HashMap;
use std::sync::Mutex;

use breakglass_core::api::{CiGrant, CiStatus, GateDecision};
use breakglass_core::grant::Grant;
use breakglass_core::oidc::{self, IssuerExpect, OidcClaims, OidcError, OidcKeys};
use breakglass_core::policy::ContextInput;
use breakglass_core::scope::{Capability, Scope, ScopeKind};
use breakglass_core::time::Timestamp;
use breakglass_core::token::KeySet;

use super::kernel::config::{CiConfig, OidcIssuer};
use super::kernel::{Caller, CiIdentity, CredentialKind, Result, Service, ServiceError, internal};
use crate::auth::Role;

/// How long fetched keys are used before they are fetched again (ms).
const JWKS_TTL_MS: i64 = 600_000;
/// A token naming an unknown key makes the server refetch the keys, at most
/// this often (ms): a flood of made-up key ids costs one fetch per interval.
const REFETCH_MIN_MS: i64 = 10_000;

/// The issuers' keys, fetched on demand and cached (the service keeps one:
/// [`Service::local`]).
#[derive(Default)]
pub struct JwksCache {
    /// Keys by issuer name, with when (service clock) they were fetched.
    keys: Mutex<HashMap<String, (std::sync::Arc<OidcKeys>, Timestamp)>>,
}

impl JwksCache {
    async fn fetch(&self, issuer: &OidcIssuer, now: Timestamp) -> Result<std::sync::Arc<OidcKeys>, String> {
        let text = breakglass_client::fetch_jwks(&issuer.jwks_url)
            .await
            .map_err(|e| format!("cannot fetch the keys of issuer {} from {}: {e}", issuer.name, issuer.jwks_url))?;
        let keys = std::sync::Arc::new(
            OidcKeys::from_jwks(&text).map_err(|e| format!("the keys of issuer {} are unusable: {e}", issuer.name))?,
        );
        self.keys.lock().expect("jwks lock").insert(issuer.name.clone(), (keys.clone(), now));
        Ok(keys)
    }

    fn cached(&self, issuer: &OidcIssuer) -> Option<(std::sync::Arc<OidcKeys>, Timestamp)> {
        self.keys.lock().expect("jwks lock").get(&issuer.name).cloned()
    }

    /// Verifies `token` from `issuer`: with the cached keys if fresh, else
    /// fetched ones; a token naming a key the cache lacks triggers one refetch.
    pub async fn verify(
        &self,
        issuer: &OidcIssuer,
        token: &str,
        expect: &IssuerExpect,
        now: Timestamp,
    ) -> Result<OidcClaims, VerifyError> {
        let age = |at: Timestamp| now.0 - at.0;
        let (keys, fetched) = match self.cached(issuer) {
            Some((k, at)) if age(at) < JWKS_TTL_MS => (k, at),
            // Stale keys are refreshed; if the issuer cannot be reached they
            // serve on (a key's retirement reaches us at the next fetch).
            Some((k, at)) => match self.fetch(issuer, now).await {
                Ok(fresh) => (fresh, now),
                Err(e) => {
                    tracing::warn!(issuer = %issuer.name, error = %e, "using cached keys");
                    (k, at)
                }
            },
            None => (self.fetch(issuer, now).await.map_err(VerifyError::KeysUnavailable)?, now),
        };
        match oidc::verify(token, &keys, expect, now) {
            Err(OidcError::UnknownKey { .. }) if age(fetched) >= REFETCH_MIN_MS => {
                let keys = self.fetch(issuer, now).await.map_err(VerifyError::KeysUnavailable)?;
                oidc::verify(token, &keys, expect, now).map_err(|e| e.to_string().into())
            }
            other => other.map_err(|e| e.to_string().into()),
        }
    }
}

/// Why a CI token was not accepted: the token (401), or the issuer's keys
/// could not be had at all (503: the job may retry; nothing is decided).
#[derive(Debug)]
pub enum VerifyError {
    Refused(String),
    KeysUnavailable(String),
}

impl From<String> for VerifyError {
    fn from(e: String) -> VerifyError {
        VerifyError::Refused(e)
    }
}

impl CiConfig {
    pub fn issuer(&self, iss: &str) -> Option<&OidcIssuer> {
        self.issuers.iter().find(|i| i.issuer == iss)
    }

    /// Maps verified claims to a project, or says why not.
    pub fn identify(&self, issuer: &OidcIssuer, claims: &OidcClaims) -> Result<CiIdentity, String> {
        let repo = claims.str_claim(&issuer.repository_claim).map(str::to_owned);
        let repo_id = claims.id_claim(&issuer.repository_id_claim);
        let (Some(repo), Some(repo_id)) = (repo, repo_id) else {
            return Err(format!(
                "the token has no {} and {} claims to name its repository",
                issuer.repository_claim, issuer.repository_id_claim
            ));
        };
        // Both the immutable id and the name must match: a renamed or
        // re-created repository with the old name is not the same project.
        let Some(project) = self
            .projects
            .iter()
            .find(|p| p.issuer == issuer.name && p.repository_id == repo_id && p.repository == repo)
        else {
            return Err(format!(
                "repository {repo} (id {repo_id}) of {} is not a configured pipeline project",
                issuer.name
            ));
        };
        // The person by the id of their account, never by the login: a login
        // can be renamed and then registered by someone else.
        let Some(actor_id) = actor_id(claims, &issuer.actor_id_claim) else {
            return Err(format!(
                "the token has no usable {} claim (the immutable id of the account that triggered the job)",
                issuer.actor_id_claim
            ));
        };
        let login = claims.str_claim(&issuer.actor_claim).map(str::to_owned);
        let account = account_of(&issuer.name, &actor_id);
        tracing::debug!(issuer = %issuer.name, %account, login = ?login, "CI job identified");
        Ok(CiIdentity {
            issuer: issuer.name.clone(),
            project: project.project.clone(),
            environment: claims.str_claim(&issuer.environment_claim).map(str::to_owned),
            account,
            login,
            subject: claims.subject.clone(),
        })
    }
}

/// The principals-file account of an issuer's user id: `github:id:4242`.
pub fn account_of(issuer: &str, id: &str) -> String {
    format!("{issuer}:id:{id}")
}

/// The actor's immutable id: a canonical decimal id (what GitHub and GitLab
/// send, as a string of digits), or for other issuers a plain string id of
/// at most 128 letters, digits, `-`, `_` and `.`. Anything else is no id.
fn actor_id(claims: &OidcClaims, name: &str) -> Option<String> {
    claims.id_claim(name).or_else(|| {
        claims
            .str_claim(name)
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 128
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
            .map(str::to_owned)
    })
}

/// Whether a bearer token looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with("bg")
}

impl Service {
    /// A CI job's OIDC ID token: a configured issuer, verified, mapped to a
    /// project and (through `accounts`) to the principal who triggered it.
    pub(crate) async fn authenticate_ci(&self, token: &str) -> Result<Caller> {
        let refused = |why: String| ServiceError::Unauthorized(format!("CI identity token refused: {why}"));
        let (iss, _) = breakglass_core::oidc::peek_issuer_and_kid(token).map_err(|e| refused(e.to_string()))?;
        if iss == self.config().issuer {
            return self.authenticate_grant_token(token).await;
        }
        let Some(issuer) = self.config().ci.issuer(&iss) else {
            return Err(refused(format!("issuer {iss:?} is not configured ([[ci.issuer]] in breakglass.toml)")));
        };
        let expect = breakglass_core::oidc::IssuerExpect {
            issuer: issuer.issuer.clone(),
            audience: issuer.audience.clone(),
            max_lifetime: self.config().ci.max_token_lifetime,
            leeway: std::time::Duration::from_secs(60),
        };
        let claims = match self.local::<JwksCache>().verify(issuer, token, &expect, self.now()).await {
            Ok(c) => c,
            Err(VerifyError::Refused(why)) => return Err(refused(why)),
            Err(VerifyError::KeysUnavailable(why)) => {
                return Err(ServiceError::unavailable(format!("cannot check CI identity tokens now: {why}")));
            }
        };
        let id = self.config().ci.identify(issuer, &claims).map_err(refused)?;
        let loaded = self.loaded();
        let (name, groups) = match loaded.principals.by_account(&id.account) {
            Some(p) => (p.name.clone(), p.groups.clone()),
            // Unmapped people hold no grants: the job runs in normal mode.
            None => (format!("ci:{}", id.account), Vec::new()),
        };
        metrics::counter!("breakglass_ci_authentications_total", "issuer" => id.issuer.clone()).increment(1);
        Ok(Caller {
            name,
            role: Role::Ci,
            kind: CredentialKind::CiOidc,
            groups,
            credential: id.subject.clone(),
            ci: Some(id),
            grant: None,
        })
    }

    /// One of this server's own grant tokens, presented by a CI job that has
    /// nothing else: it speaks for that grant only, which counts only while
    /// it is effective (so revocation reaches jobs that can reach the server).
    async fn authenticate_grant_token(&self, token: &str) -> Result<Caller> {
        let refused = |why: String| ServiceError::Unauthorized(format!("grant token refused: {why}"));
        let keys = KeySet::new([self.keys().token_signer.public_key().clone()])
            .map_err(|e| internal("key set", e.to_string()))?;
        let expect =
            breakglass_core::token::Expect::new(&self.config().issuer, std::time::Duration::from_secs(7 * 24 * 3600));
        let now = self.now();
        let claims = breakglass_core::token::verify(token, &keys, &expect, now).map_err(|e| refused(e.to_string()))?;
        let grant = self.read_grant(&claims.grant_id).await.map_err(|_| refused("unknown grant".into()))?.value;
        if grant.principal != claims.principal {
            return Err(refused("the grant is not the token's principal's".into()));
        }
        // A grant that has ended still identifies its holder (to report a
        // gate that ran in normal mode), but relaxes nothing: `ci_status`
        // counts only effective grants.
        let groups = self.loaded().principals.get(&grant.principal).map(|p| p.groups.clone()).unwrap_or_default();
        Ok(Caller {
            name: grant.principal.clone(),
            role: Role::Ci,
            kind: CredentialKind::GrantToken,
            groups,
            credential: claims.token_id,
            ci: None,
            grant: Some(grant.id),
        })
    }

    // ---- pipeline status and gates ----------------------------------------

    /// Parses a job's pipeline scope and, for a CI caller, checks that it is
    /// its own project (and environment, when the scope names one).
    pub(crate) fn ci_scope(&self, caller: &Caller, scope: &str) -> Result<Scope> {
        let parsed = Scope::parse(scope).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let Scope::Pipeline { project, environment, .. } = &parsed else {
            return Err(ServiceError::BadRequest(format!("{scope:?} is not a pipeline: scope")));
        };
        if scope.ends_with('*') {
            return Err(ServiceError::BadRequest(format!("{scope:?} is a pattern; a job has one concrete scope")));
        }
        if let Some(id) = &caller.ci {
            if *project != id.project {
                return Err(ServiceError::Forbidden(format!(
                    "this job belongs to project {}, not {project}",
                    id.project
                )));
            }
            if let Some(env) = environment
                && id.environment.as_deref() != Some(env.as_str())
            {
                return Err(ServiceError::Forbidden(format!(
                    "the scope names environment {env}, but this job runs in {}",
                    id.environment.as_deref().unwrap_or("no environment")
                )));
            }
        }
        Ok(parsed)
    }

    /// Whether break-glass mode applies to a CI job's scope: the effective
    /// grant of the person who triggered it that covers the scope, the
    /// relaxations it brings there, and for `gate`, what to do with it.
    pub async fn ci_status(
        &self,
        caller: &Caller,
        scope: &str,
        principal: Option<&str>,
        gate: Option<&str>,
    ) -> Result<CiStatus> {
        let target = self.ci_scope(caller, scope)?;
        let principal = match caller.role {
            Role::Ci => caller.name.clone(),
            Role::Service | Role::Admin => principal
                .ok_or_else(|| ServiceError::BadRequest("a service token must name the principal".into()))?
                .to_owned(),
            _ => return Err(ServiceError::Forbidden("only CI jobs and service tokens ask for pipeline status".into())),
        };
        let now = self.now();
        let mut best: Option<(Grant, Vec<String>)> = None;
        for grant in self.effective_grants(&principal, now).await? {
            if caller.grant.as_ref().is_some_and(|g| *g != grant.id) {
                continue;
            }
            if !grant.scopes.iter().any(|s| Scope::parse(s).is_ok_and(|s| s.covers(&target))) {
                continue;
            }
            let caps: Vec<String> = grant
                .capabilities
                .iter()
                .filter(|c| Capability::parse(c).is_ok_and(|c| c.kind() == ScopeKind::Pipeline))
                .cloned()
                .collect();
            if caps.is_empty() {
                continue;
            }
            if best.as_ref().is_none_or(|(b, _)| b.expires_at < grant.expires_at) {
                best = Some((grant, caps));
            }
        }
        // Relaxations of never-skippable gates are not relaxations: leave them out.
        if let Some((_, caps)) = &mut best {
            let mut kept = Vec::new();
            for c in caps.drain(..) {
                let gate_name = match Capability::parse(&c) {
                    Ok(Capability::SkipGate(g) | Capability::AdvisoryGate(g)) => Some(g),
                    _ => None,
                };
                match gate_name {
                    Some(g) if self.gate_decision(&principal, &target, &g, None, now)?.never_skippable => {}
                    _ => kept.push(c),
                }
            }
            *caps = kept;
        }
        let gate = match gate {
            None => None,
            Some(name) => Some(self.gate_decision(&principal, &target, name, best.as_ref().map(|b| &b.1), now)?),
        };
        Ok(CiStatus {
            scope: target.to_string(),
            principal,
            active: best.is_some(),
            grant: best.as_ref().map(|(g, _)| CiGrant {
                id: g.id.clone(),
                principal: g.principal.clone(),
                reason: g.reason.clone(),
                expires_at: g.expires_at.unwrap_or(now),
            }),
            relaxations: best.map(|b| b.1).unwrap_or_default(),
            gate,
        })
    }

    /// What a gate does under the relaxations: skipped, advisory, or run;
    /// never relaxed when policy forbids relaxing it (never-skippable).
    fn gate_decision(
        &self,
        principal: &str,
        target: &Scope,
        name: &str,
        relaxations: Option<&Vec<String>>,
        now: Timestamp,
    ) -> Result<GateDecision> {
        let cap = |kind: &str| Capability::parse(&format!("{kind}:{name}"));
        let (skip, advisory) = match (cap("skip-gate"), cap("advisory-gate")) {
            (Ok(s), Ok(a)) => (s.to_string(), a.to_string()),
            (Err(e), _) | (_, Err(e)) => return Err(ServiceError::BadRequest(e.to_string())),
        };
        let loaded = self.loaded();
        let groups = loaded.principals.get(principal).map(|p| p.groups.clone()).unwrap_or_default();
        // Never-skippable: a policy forbids relaxing this gate for this
        // principal and scope (a forbid decided it), whatever the grant says.
        let forbidden = |action: &str| {
            let ctx =
                ContextInput { requester: principal.to_owned(), gate: name.to_owned(), now, ..ContextInput::default() };
            let d = loaded.policy.decide(principal, &groups, action, target, &ctx);
            !d.allowed && (!d.determining.is_empty() || !d.errors.is_empty())
        };
        let never_skippable = forbidden("skip-gate") && forbidden("advisory-gate");
        let has = |c: &str| relaxations.is_some_and(|r| r.iter().any(|x| x == c));
        let mode = if never_skippable {
            "run"
        } else if has(&skip) {
            "skip"
        } else if has(&advisory) {
            "advisory"
        } else {
            "run"
        };
        Ok(GateDecision { name: name.to_owned(), mode: mode.into(), never_skippable })
    }
}
