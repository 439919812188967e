//! Logging in (an SSH signature over a server challenge) and the sessions
//! it makes: listing them, ending them (logout, by their
//! owner, by an admin, all of a principal's at once), ending those whose SSH
//! key or principal left the principals file, and the record of failed logins.
//!
//! Security: a session token is a bearer secret good for hours. Whoever holds
//! one acts as its principal, so ending it must be possible from the server
//! side (a stolen laptop, a key removed from the principals file), must be
//! final (putting the name or the key back never revives it), and must be in
//! the log. Failed logins come from unauthenticated callers, so they are
//! recorded at a bounded rate: a flood cannot fill the log.

use std::sync::Mutex;

use breakglass_core::api::{ChallengeResponse, LoginResponse, SessionView, SessionsEnded};
use breakglass_core::entry::EntryDraft;
use breakglass_core::login;
use breakglass_core::sshsig;
use breakglass_core::time::Timestamp;
use breakglass_store::ledger::AppendError;
use serde_json::json;

use super::kernel::credentials::Session;
use super::kernel::state::{filter, marker, mutation};
use super::kernel::{Caller, CredentialKind, MAX_RETRIES, Result, Service, ServiceError, Versioned, internal};
use crate::auth::{self, CHALLENGE_KIND, Role, SESSION_KIND, SESSION_PREFIX, StoredCredential};

/// At most this many `login.failed` entries per window and server; the rest
/// are counted and reported with the next one recorded.
pub const FAILED_LOGINS_PER_WINDOW: u32 = 20;
pub const FAILED_LOGIN_WINDOW_MS: i64 = 60_000;

/// The rate limit on recording failed logins.
#[derive(Debug, Default)]
pub struct FailedLogins {
    window_start: i64,
    recorded: u32,
    suppressed: u64,
}

impl FailedLogins {
    /// Whether to record a failure at `now`; when yes, how many went
    /// unrecorded before it.
    pub fn admit(&mut self, now: Timestamp) -> Option<u64> {
        if now.0 - self.window_start >= FAILED_LOGIN_WINDOW_MS || now.0 < self.window_start {
            self.window_start = now.0;
            self.recorded = 0;
        }
        if self.recorded >= FAILED_LOGINS_PER_WINDOW {
            self.suppressed += 1;
            return None;
        }
        self.recorded += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

fn view(cred: &StoredCredential, now: Timestamp, current: Option<&str>) -> SessionView {
    let state = if cred.revoked_at.is_some() {
        "ended"
    } else if cred.expires_at.is_some_and(|t| now >= t) {
        "expired"
    } else {
        "active"
    };
    SessionView {
        id: cred.id.clone(),
        principal: cred.name.clone(),
        key_fingerprint: cred.key_fingerprint.clone(),
        created_at: cred.created_at,
        expires_at: cred.expires_at,
        ended_at: cred.revoked_at,
        state: state.into(),
        current: current == Some(cred.id.as_str()),
    }
}

impl Service {
    /// A challenge for any well-formed name, known or not: the answer must
    /// not tell an unauthenticated caller who holds break-glass rights. Why a
    /// login of an unknown name fails goes to the server's own diagnostics.
    pub fn login_challenge(&self, principal: &str) -> Result<ChallengeResponse> {
        let loaded = self.loaded();
        match loaded.principals.get(principal) {
            None => tracing::info!(principal, "login challenge for a name not in the principals file"),
            Some(p) if p.ssh_keys.is_empty() => {
                tracing::info!(principal, "login challenge for a principal with no SSH keys")
            }
            Some(_) => {}
        }
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| internal("no randomness available", e))?;
        let now = self.now();
        let config = self.config();
        let challenge =
            login::issue(&self.keys().challenge_key, &config.issuer, principal, nonce, now, config.challenge_ttl_ms)
                .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        Ok(ChallengeResponse {
            challenge,
            namespace: sshsig::LOGIN_NAMESPACE.into(),
            expires_at: Timestamp(now.0 + config.challenge_ttl_ms),
        })
    }

    pub async fn login(&self, principal: &str, challenge: &str, signature: &str) -> Result<LoginResponse> {
        let now = self.now();
        let refused = |why: String| ServiceError::Unauthorized(format!("login refused: {why}"));
        let claims = match login::open(&self.keys().challenge_key, challenge, &self.config().issuer, principal, now) {
            Ok(c) => c,
            Err(e) => {
                self.record_failed_login(principal, "challenge", None).await;
                return Err(refused(e.to_string()));
            }
        };
        let loaded = self.loaded();
        // An unknown name, a name with no keys and a wrong key fail alike:
        // the signature is checked against the name's keys, which may be none.
        let keys = loaded.principals.get(principal).map_or(&[][..], |p| p.ssh_keys.as_slice());
        let verified = match sshsig::verify(signature, challenge.as_bytes(), sshsig::LOGIN_NAMESPACE, keys) {
            Ok(v) => v,
            Err(e) => {
                let why = match &e {
                    sshsig::SshSigError::KeyNotAllowed { .. } if loaded.principals.get(principal).is_none() => {
                        "unknown principal"
                    }
                    sshsig::SshSigError::KeyNotAllowed { .. } => "key not listed",
                    _ => "bad signature",
                };
                tracing::info!(principal, reason = why, error = %e, "login refused");
                let fingerprint = match &e {
                    sshsig::SshSigError::KeyNotAllowed { fingerprint, .. }
                    | sshsig::SshSigError::BadSignature { fingerprint, .. } => Some(fingerprint.clone()),
                    _ => None,
                };
                self.record_failed_login(principal, why, fingerprint.as_deref()).await;
                return Err(refused(e.to_string()));
            }
        };
        let fingerprint = verified.fingerprint.to_string();
        let (id, token) = auth::new_token(SESSION_PREFIX).map_err(|e| internal("no randomness available", e))?;
        let expires_at = Timestamp(now.0 + self.config().session_ttl_ms);
        let cred = StoredCredential {
            id: id.clone(),
            name: principal.to_owned(),
            role: Role::User,
            hash: auth::hash_token(&token),
            created_at: now,
            created_by: principal.to_owned(),
            expires_at: Some(expires_at),
            revoked_at: None,
            key_fingerprint: Some(fingerprint.clone()),
        };
        // Used once: a second login with the same challenge fails this marker.
        let used = marker(CHALLENGE_KIND, &claims.nonce, "used", principal, Some(claims.expires_at));
        let session = mutation(&Session(cred), 0)?;
        let entry = EntryDraft::new(
            principal,
            "login",
            json!({
                "session": id,
                "key_fingerprint": fingerprint,
                "key_type": verified.algorithm.to_string(),
                "user_verified": verified.security_key.map(|k| k.user_verified()),
                "expires_at": expires_at.to_rfc3339(),
            }),
        );
        match self.append_with(vec![entry], vec![used, session]).await {
            Ok(_) => {}
            Err(AppendError::Conflict { kind, .. }) if kind == CHALLENGE_KIND => {
                self.record_failed_login(principal, "challenge reused", Some(&fingerprint)).await;
                return Err(refused("this challenge was already used; ask for a new one".into()));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(LoginResponse { token, principal: principal.to_owned(), expires_at, key_fingerprint: fingerprint })
    }

    // ---- sessions ----------------------------------------------------------

    /// Ends one session for `why`, with a `session.ended` entry. Ending one
    /// that has already ended changes nothing.
    pub(crate) async fn end_session(&self, cred: &StoredCredential, why: &str, by: &Caller) -> Result<SessionView> {
        for _ in 0..MAX_RETRIES {
            let Versioned { value: Session(mut stored), version } = self.read::<Session>(&cred.id).await?;
            let now = self.now();
            if stored.revoked_at.is_some() {
                self.forget_credential(SESSION_KIND, &stored.id);
                return Ok(view(&stored, now, None));
            }
            stored.revoked_at = Some(now);
            let entry = EntryDraft::new(
                &by.name,
                "session.ended",
                json!({ "session": stored.id, "principal": stored.name, "reason": why }),
            );
            let m = mutation(&Session(stored.clone()), version)?;
            match self.append_by(by, vec![entry], vec![m]).await {
                Ok(_) => {
                    self.forget_credential(SESSION_KIND, &stored.id);
                    metrics::counter!("breakglass_sessions_ended_total").increment(1);
                    return Ok(view(&stored, now, None));
                }
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("session {} kept changing; try again", cred.id)))
    }

    /// Stored sessions, of one principal or everyone's; with `live_only`,
    /// only those not ended (the store's status), which is what the
    /// scans that end sessions need, so ended ones never crowd them out.
    async fn stored_sessions(&self, principal: Option<&str>, live_only: bool) -> Result<Vec<StoredCredential>> {
        let statuses: &[&str] = if live_only { &["active"] } else { &[] };
        let stored = self.objects::<Session>(&filter(statuses, principal, 10_000)).await?;
        Ok(stored.into_iter().map(|v| v.value.0).collect())
    }

    /// `GET /v1/sessions`: a person's own sessions; for an admin API token,
    /// everyone's (or one principal's). Ended and expired ones only with `all`.
    pub async fn list_sessions(&self, caller: &Caller, principal: Option<&str>, all: bool) -> Result<Vec<SessionView>> {
        let whose = match caller.kind {
            CredentialKind::Session => {
                if principal.is_some_and(|p| p != caller.name) {
                    return Err(ServiceError::Forbidden(format!(
                        "{} may list only their own sessions (an admin API token lists others')",
                        caller.name
                    )));
                }
                Some(caller.name.as_str())
            }
            _ if caller.is_admin() => principal,
            _ => return Err(ServiceError::Forbidden("only a person or an admin API token may list sessions".into())),
        };
        let now = self.now();
        let current = (caller.kind == CredentialKind::Session).then_some(caller.credential.as_str());
        let mut out: Vec<SessionView> = self
            .stored_sessions(whose, !all)
            .await?
            .iter()
            .map(|c| view(c, now, current))
            .filter(|v| all || v.state == "active")
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `POST /v1/logout`: ends the calling session on the server.
    pub async fn logout(&self, caller: &Caller) -> Result<SessionsEnded> {
        if caller.kind != CredentialKind::Session {
            return Err(ServiceError::BadRequest(format!(
                "logout ends a login session; this is a {} credential",
                caller.kind.as_str()
            )));
        }
        let cred = self.session(&caller.credential).await?;
        Ok(SessionsEnded { ended: vec![self.end_session(&cred, "logout", caller).await?] })
    }

    async fn session(&self, id: &str) -> Result<StoredCredential> {
        Ok(self.read::<Session>(id).await?.value.0)
    }

    /// `DELETE /v1/sessions/{id}`: its owner or an admin ends a session.
    pub async fn revoke_session(&self, caller: &Caller, id: &str) -> Result<SessionsEnded> {
        if !caller.is_admin() && caller.kind != CredentialKind::Session {
            return Err(ServiceError::Forbidden("only a person or an admin API token may end sessions".into()));
        }
        // Someone else's session is "not found" to a person, so session ids
        // cannot be probed.
        let cred = match self.session(id).await {
            Ok(c) if caller.is_admin() || caller.is_person(&c.name) => c,
            Ok(_) => return Err(ServiceError::NotFound(format!("{} has no session with id {id:?}", caller.name))),
            Err(e) => return Err(e),
        };
        let why = if caller.is_admin() { "revoked by an admin" } else { "revoked by its owner" };
        Ok(SessionsEnded { ended: vec![self.end_session(&cred, why, caller).await?] })
    }

    /// `DELETE /v1/sessions?principal=NAME`: an admin ends every session of a
    /// principal at once.
    pub async fn revoke_sessions_of(&self, caller: &Caller, principal: &str) -> Result<SessionsEnded> {
        if !caller.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin API token may end all of a principal's sessions (end your own with 'breakglass sessions revoke ID')".into(),
            ));
        }
        let now = self.now();
        let mut ended = Vec::new();
        for cred in self.stored_sessions(Some(principal), true).await? {
            if view(&cred, now, None).state == "active" {
                ended.push(self.end_session(&cred, "all sessions of the principal revoked by an admin", caller).await?);
            }
        }
        Ok(SessionsEnded { ended })
    }

    /// Ends every live session whose principal or SSH key is no longer in the
    /// principals file in force (after a reload). Returns how many.
    pub(crate) async fn end_orphaned_sessions(&self) -> Result<usize> {
        let loaded = self.loaded();
        let now = self.now();
        let mut n = 0;
        for cred in self.stored_sessions(None, true).await? {
            if view(&cred, now, None).state != "active" {
                continue;
            }
            let why = if loaded.principals.get(&cred.name).is_none() {
                "the principal left the principals file"
            } else if !loaded.holds_key(&cred.name, cred.key_fingerprint.as_deref()) {
                "the SSH key that made it left the principals file"
            } else {
                continue;
            };
            self.end_session(&cred, why, &Caller::system()).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Records a refused login: counted always, logged at a bounded rate.
    /// `principal` is what the caller sent, kept only when it is a
    /// well-formed name.
    pub(crate) async fn record_failed_login(&self, principal: &str, reason: &str, fingerprint: Option<&str>) {
        metrics::counter!("breakglass_login_failures_total", "reason" => reason.to_owned()).increment(1);
        let now = self.now();
        let Some(suppressed) = self.local::<Mutex<FailedLogins>>().lock().expect("failed-login lock").admit(now) else {
            return;
        };
        let name_ok = breakglass_core::principals::is_valid_name(principal);
        let entry = EntryDraft::new(
            "breakglass",
            "login.failed",
            json!({
                "principal": if name_ok { json!(principal) } else { json!(null) },
                "reason": reason,
                "key_fingerprint": fingerprint,
                "unrecorded_before": suppressed,
            }),
        );
        if let Err(e) = self.append(entry).await {
            tracing::warn!(error = %e, "could not record a failed login");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_are_recorded_at_a_bounded_rate_and_the_rest_counted() {
        let mut f = FailedLogins::default();
        let t0 = Timestamp(1_000_000);
        for _ in 0..FAILED_LOGINS_PER_WINDOW {
            assert_eq!(f.admit(t0), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(f.admit(Timestamp(t0.0 + 10)), None);
        }
        // The next window records again and says how many went unrecorded.
        assert_eq!(f.admit(Timestamp(t0.0 + FAILED_LOGIN_WINDOW_MS)), Some(5));
        assert_eq!(f.admit(Timestamp(t0.0 + FAILED_LOGIN_WINDOW_MS + 1)), Some(0));
    }
}
