//! Who is calling: the principal or token name, the role, and what kind of
//! credential was presented.
//!
//! Security: a credential's name is chosen by whoever made it (an API
//! token's creator, a CI account), so authorisation goes by the kind as well
//! as by the name: only a person's own session acts as that person.

use serde_json::json;

use super::error::{Result, ServiceError};
use crate::auth::Role;

/// What kind of credential a caller presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// A session from an SSH-key login: the person themselves.
    Session,
    /// An API token (admin, service or reader), named by whoever created it.
    ApiToken,
    /// A CI job's OIDC ID token.
    CiOidc,
    /// One of this server's grant tokens, used as a bearer token.
    GrantToken,
    /// breakglass itself (timers, periodic checks).
    System,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Session => "session",
            CredentialKind::ApiToken => "api-token",
            CredentialKind::CiOidc => "ci-oidc",
            CredentialKind::GrantToken => "grant-token",
            CredentialKind::System => "system",
        }
    }
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

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The principal (sessions, CI jobs, grant tokens) or the API token's name.
    pub name: String,
    pub role: Role,
    /// The kind of credential presented.
    pub kind: CredentialKind,
    pub groups: Vec<String>,
    /// The credential's id, for the log (session or API-token id, grant
    /// token id, CI token subject).
    pub credential: String,
    /// For a CI job: its verified pipeline identity.
    pub ci: Option<CiIdentity>,
    /// For a caller holding only a grant token: that grant (nothing else counts).
    pub grant: Option<String>,
}

impl Caller {
    /// breakglass itself, for its own periodic work (never from a request).
    pub(crate) fn system() -> Caller {
        Caller {
            name: "breakglass".into(),
            role: Role::Admin,
            kind: CredentialKind::System,
            groups: Vec::new(),
            credential: String::new(),
            ci: None,
            grant: None,
        }
    }

    /// A person's own session (any principal).
    pub(crate) fn is_user(&self) -> bool {
        self.role == Role::User && self.kind == CredentialKind::Session
    }

    /// Whether this caller is `principal` in person: their own session.
    /// A grant token, a CI job or an API token that carries the same name
    /// never is.
    pub fn is_person(&self, principal: &str) -> bool {
        self.is_user() && self.name == principal
    }

    /// Whether this is an admin API token.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin && matches!(self.kind, CredentialKind::ApiToken | CredentialKind::System)
    }

    /// What the log records of the credential that acted: its kind and id.
    pub fn credential_json(&self) -> serde_json::Value {
        json!({ "kind": self.kind.as_str(), "id": self.credential })
    }

    pub(crate) fn require_user(&self, what: &str) -> Result<()> {
        if self.is_user() {
            return Ok(());
        }
        Err(ServiceError::Forbidden(format!(
            "only a logged-in principal may {what} (this is the {} API token {:?})",
            self.role.as_str(),
            self.name
        )))
    }

    /// People, and API tokens of any role: not CI jobs or grant tokens,
    /// which see only their own pipeline and grant.
    pub(crate) fn require_reader(&self, what: &str) -> Result<()> {
        if matches!(self.kind, CredentialKind::Session | CredentialKind::ApiToken | CredentialKind::System) {
            return Ok(());
        }
        Err(ServiceError::Forbidden(format!("a {} credential may not {what}", self.kind.as_str())))
    }

    pub(crate) fn require_admin(&self, what: &str) -> Result<()> {
        if self.is_admin() {
            return Ok(());
        }
        Err(ServiceError::Forbidden(format!("only an admin API token may {what}")))
    }
}
