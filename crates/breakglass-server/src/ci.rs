//! CI jobs as callers: OIDC ID tokens from GitHub Actions and GitLab CI,
//! verified against the configured issuers' JWKS (cached, refreshed when a
//! token names a key the cache does not know: key rotation), mapped to a
//! pipeline project (by the repository's immutable id claim and its name)
//! and to the principal who triggered the job.
//!
//! This is a pretty important and security sensitive part of the code: a
//! CI job that can pass for another project, or for another person, could
//! use their grant to skip gates. Rules: only configured issuers; the
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
use std::time::Duration;

use breakglass_core::oidc::{self, IssuerExpect, OidcClaims, OidcError, OidcKeys};
use breakglass_core::time::Timestamp;

/// One accepted OIDC issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIssuer {
    /// A short name: the `<issuer>` of principals' `accounts` and of projects.
    pub name: String,
    /// The exact `iss` claim.
    pub issuer: String,
    /// The `aud` tokens must carry for breakglass.
    pub audience: String,
    /// Where the issuer's keys are.
    pub jwks_url: String,
    /// The claims that name the triggering person (the login, for display,
    /// and the account's immutable id, which maps it to a principal), the
    /// repository (name and immutable id) and the deployment environment.
    pub actor_claim: String,
    pub actor_id_claim: String,
    pub repository_claim: String,
    pub repository_id_claim: String,
    pub environment_claim: String,
}

impl OidcIssuer {
    /// GitHub Actions' issuer and claim names.
    pub fn github(audience: &str) -> OidcIssuer {
        let issuer = "https://token.actions.githubusercontent.com".to_owned();
        OidcIssuer {
            name: "github".into(),
            jwks_url: format!("{issuer}/.well-known/jwks"),
            issuer,
            audience: audience.into(),
            actor_claim: "actor".into(),
            actor_id_claim: "actor_id".into(),
            repository_claim: "repository".into(),
            repository_id_claim: "repository_id".into(),
            environment_claim: "environment".into(),
        }
    }

    /// A GitLab instance's issuer and claim names.
    pub fn gitlab(issuer: &str, audience: &str) -> OidcIssuer {
        let issuer = issuer.trim_end_matches('/').to_owned();
        OidcIssuer {
            name: "gitlab".into(),
            jwks_url: format!("{issuer}/oauth/discovery/keys"),
            issuer,
            audience: audience.into(),
            actor_claim: "user_login".into(),
            actor_id_claim: "user_id".into(),
            repository_claim: "project_path".into(),
            repository_id_claim: "project_id".into(),
            environment_claim: "environment".into(),
        }
    }
}

/// A pipeline project: which repository of which issuer it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiProject {
    /// The project in `pipeline:<project>/<stage>` scopes.
    pub project: String,
    /// The issuer's name.
    pub issuer: String,
    /// The repository's name claim value (`acme/payments-api`).
    pub repository: String,
    /// The repository's immutable id claim value (`123456`).
    pub repository_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiConfig {
    pub issuers: Vec<OidcIssuer>,
    pub projects: Vec<CiProject>,
    /// The longest ID-token lifetime accepted.
    pub max_token_lifetime: Duration,
}

/// Who a verified CI job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiIdentity {
    pub issuer: String,
    pub project: String,
    /// The environment the job runs in, if the token says.
    pub environment: Option<String>,
    /// `<issuer>:id:<the actor's immutable id>`, as principals' `accounts`
    /// write it.
    pub account: String,
    /// The actor's login as the token names it, for display only: it never
    /// identifies anyone.
    pub login: Option<String>,
    pub subject: String,
}

/// How long fetched keys are used before they are fetched again (ms).
const JWKS_TTL_MS: i64 = 600_000;
/// A token naming an unknown key makes the server refetch the keys, at most
/// this often (ms): a flood of made-up key ids costs one fetch per interval.
const REFETCH_MIN_MS: i64 = 10_000;

/// The issuers' keys, fetched on demand and cached.
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
