//! Bearer credentials: session tokens (from SSH-key login) and API tokens
//! (for hooks, CI runners and automation).
//!
//! Security: any caller may present any bearer token, stolen or guessed. A
//! token is `bgs_<id>_<secret>` or `bgk_<id>_<secret>`: the id (16 hex
//! digits) finds the stored record, the secret is 32 random bytes, and the
//! server stores only the SHA-256 of the whole token, compared in constant
//! time. The secrets are high-entropy, so a plain hash (no salt, no stretch)
//! is what keeps a stolen database from yielding usable tokens.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use breakglass_core::time::Timestamp;

pub const SESSION_PREFIX: &str = "bgs";
pub const API_PREFIX: &str = "bgk";

/// The state-object kinds that hold credentials.
pub const SESSION_KIND: &str = "session";
pub const API_TOKEN_KIND: &str = "api_token";
/// Used login challenges (their nonces), so that each is used once.
pub const CHALLENGE_KIND: &str = "login_challenge";

/// What an API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A logged-in human: requests, approvals, their own grants.
    User,
    /// Everything, including API tokens and policy reloads.
    Admin,
    /// Hooks and CI runners: grant status and checks, reads.
    Service,
    /// Reads only.
    Reader,
    /// A CI job, by its OIDC ID token: its pipeline's status, and reporting
    /// its gates and deployments.
    Ci,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Service => "service",
            Role::Reader => "reader",
            Role::Ci => "ci",
        }
    }

    /// The roles an admin may give an API token.
    pub fn parse_api(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "service" => Ok(Role::Service),
            "reader" => Ok(Role::Reader),
            _ => Err(format!("invalid role {s:?}: expected admin, service or reader")),
        }
    }
}

/// A stored credential (the body of a `session` or `api_token` object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    pub id: String,
    /// The principal (sessions) or the token's name (API tokens).
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the whole token.
    pub hash: String,
    pub created_at: Timestamp,
    pub created_by: String,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// For sessions: the fingerprint of the SSH key that logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
}

impl StoredCredential {
    /// Whether `token` is this credential's secret and it may be used at `now`.
    pub fn accepts(&self, token: &str, now: Timestamp) -> Result<(), &'static str> {
        let given = hash_token(token);
        if !bool::from(given.as_bytes().ct_eq(self.hash.as_bytes())) {
            return Err("unknown token");
        }
        if self.revoked_at.is_some() {
            return Err("the token was revoked");
        }
        if self.expires_at.is_some_and(|at| now >= at) {
            return Err("the token has expired");
        }
        Ok(())
    }
}

/// A new random token of `prefix`: (id, token).
pub fn new_token(prefix: &str) -> Result<(String, String), getrandom::Error> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = hex::encode(id);
    let token = format!("{prefix}_{id}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    secret.fill(0);
    Ok((id, token))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Splits a bearer token into its kind and id, or says why it is not one.
pub fn parse_token(token: &str) -> Result<(&'static str, &str), &'static str> {
    if token.len() > 200 {
        return Err("the token is too long");
    }
    let mut parts = token.splitn(3, '_');
    let (Some(prefix), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a breakglass token");
    };
    let kind = match prefix {
        SESSION_PREFIX => SESSION_KIND,
        API_PREFIX => API_TOKEN_KIND,
        _ => return Err("not a breakglass token"),
    };
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) || secret.len() != 43 {
        return Err("not a breakglass token");
    }
    Ok((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(token: &str) -> StoredCredential {
        StoredCredential {
            id: "x".into(),
            name: "ci".into(),
            role: Role::Service,
            hash: hash_token(token),
            created_at: Timestamp(0),
            created_by: "admin".into(),
            expires_at: Some(Timestamp(1000)),
            revoked_at: None,
            key_fingerprint: None,
        }
    }

    #[test]
    fn tokens_round_trip_and_only_their_secret_is_accepted() {
        let (id, token) = new_token(API_PREFIX).unwrap();
        assert_eq!(parse_token(&token).unwrap(), (API_TOKEN_KIND, id.as_str()));
        let c = cred(&token);
        assert_eq!(c.accepts(&token, Timestamp(10)), Ok(()));
        // Same id, another secret.
        let (_, other) = new_token(API_PREFIX).unwrap();
        let forged = format!("{API_PREFIX}_{id}_{}", &other[21..]);
        assert_eq!(c.accepts(&forged, Timestamp(10)), Err("unknown token"));
        assert_eq!(c.accepts(&token, Timestamp(1000)), Err("the token has expired"));
        let revoked = StoredCredential { revoked_at: Some(Timestamp(5)), ..c };
        assert_eq!(revoked.accepts(&token, Timestamp(10)), Err("the token was revoked"));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (_, token) = new_token(SESSION_PREFIX).unwrap();
        assert_eq!(parse_token(&token).unwrap().0, SESSION_KIND);
        for bad in ["", "bgk", "bgk_", "bgx_0123456789abcdef_x", &token[..token.len() - 1], &"a".repeat(500)] {
            assert!(parse_token(bad).is_err(), "{bad:?}");
        }
        let upper = token.replacen(&token[4..20], &token[4..20].to_uppercase(), 1);
        if upper != token {
            assert!(parse_token(&upper).is_err());
        }
    }
}
