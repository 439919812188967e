//! Who a bearer token is: a session, an API token, a CI job's OIDC ID
//! token or one of this server's grant tokens (the last two in
//! [`super::ci`]), as a [`Caller`].
//!
//! Security: the token is whatever the caller sends, stolen or made up. A
//! session counts only while its principal is in the principals file and
//! the SSH key that made it is still theirs; a session that loses either
//! ends for good, with an entry.

use breakglass_core::api::WhoAmI;

use super::kernel::{Caller, CredentialKind, Result, Service, ServiceError};
use crate::auth::{self, Role, SESSION_KIND};

impl Service {
    /// The caller behind a bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        if super::ci::looks_like_jwt(token) {
            return self.authenticate_ci(token).await;
        }
        let unauthorized = |why: &str| ServiceError::Unauthorized(format!("invalid bearer token: {why}"));
        let (kind, id) = auth::parse_token(token).map_err(unauthorized)?;
        let now = self.now();
        let Some(cred) = self.credential(kind, id, now).await? else {
            return Err(unauthorized("unknown token"));
        };
        cred.accepts(token, now).map_err(unauthorized)?;
        if kind == SESSION_KIND {
            // A principal removed from the principals file loses its sessions at once.
            let loaded = self.loaded();
            let why = match loaded.principals.get(&cred.name) {
                None => "the principal is no longer in the principals file",
                Some(_) if !loaded.holds_key(&cred.name, cred.key_fingerprint.as_deref()) => {
                    "the SSH key that made this session is no longer the principal's in the principals file"
                }
                Some(p) => {
                    let groups = p.groups.clone();
                    return Ok(Caller {
                        name: cred.name,
                        role: Role::User,
                        kind: CredentialKind::Session,
                        groups,
                        credential: cred.id,
                        ci: None,
                        grant: None,
                    });
                }
            };
            // Ended for good, with an entry, so that putting the name or the
            // key back never revives it.
            if let Err(e) = self.end_session(&cred, why, &Caller::system()).await {
                tracing::warn!(error = %e, session = %cred.id, "could not record the end of an orphaned session");
            }
            return Err(unauthorized(&format!("{why}; log in again")));
        }
        Ok(Caller {
            name: cred.name,
            role: cred.role,
            kind: CredentialKind::ApiToken,
            groups: Vec::new(),
            credential: cred.id,
            ci: None,
            grant: None,
        })
    }

    pub fn whoami(&self, caller: &Caller) -> WhoAmI {
        WhoAmI {
            name: caller.name.clone(),
            kind: caller.kind.as_str().into(),
            role: caller.role.as_str().into(),
            groups: caller.groups.clone(),
        }
    }
}
