//! API tokens: made by an admin (or once, at setup, for the first admin),
//! listed, revoked. A token is shown once, when it is made; the server
//! keeps its SHA-256 and the log a keyed digest.
//!
//! Security: a token's name is chosen by the admin who makes it, so it may
//! not be a principal's name: entries and messages would read as that
//! person's own act.

use breakglass_core::api::{ApiTokenView, CreateApiToken, CreatedApiToken};
use breakglass_core::entry::EntryDraft;
use breakglass_core::time::Timestamp;
use breakglass_store::ObjectFilter;
use breakglass_store::ledger::AppendError;
use serde_json::json;

use super::kernel::credentials::ApiToken;
use super::kernel::state::mutation;
use super::kernel::{Caller, MAX_RETRIES, Result, Service, ServiceError, Versioned, internal};
use crate::auth::{self, API_PREFIX, API_TOKEN_KIND, Role, StoredCredential};

impl Service {
    /// Creates an API token. `by` is `None` only for the bootstrap admin
    /// token made at setup.
    pub async fn create_api_token(&self, by: Option<&Caller>, req: &CreateApiToken) -> Result<CreatedApiToken> {
        if let Some(c) = by {
            c.require_admin("create API tokens")?;
        }
        let name = req.name.trim();
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
        {
            return Err(ServiceError::BadRequest(format!(
                "invalid token name {:?}: 1-64 characters of letters, digits, '.', '_', '@' and '-'",
                req.name
            )));
        }
        let role = Role::parse_api(&req.role).map_err(ServiceError::BadRequest)?;
        // A token named like a person would read, in the log and in every
        // message, as that person's own act.
        if self.loaded().principals.get(name).is_some() {
            return Err(ServiceError::BadRequest(format!(
                "invalid token name {name:?}: it is a principal's name in the principals file; name API tokens after what uses them (e.g. {name}-ci)"
            )));
        }
        let now = self.now();
        let expires_at = match &req.expires_in {
            None => None,
            Some(s) => Some(Timestamp(now.0 + parse_token_lifetime(s).map_err(ServiceError::BadRequest)?)),
        };
        let (id, token) = auth::new_token(API_PREFIX).map_err(|e| internal("no randomness available", e))?;
        let created_by = by.map_or_else(|| "breakglass-setup".to_owned(), |c| c.name.clone());
        let cred = StoredCredential {
            id: id.clone(),
            name: name.to_owned(),
            role,
            hash: auth::hash_token(&token),
            created_at: now,
            created_by: created_by.clone(),
            expires_at,
            revoked_at: None,
            key_fingerprint: None,
        };
        let entry = EntryDraft::new(
            created_by,
            "api_token.created",
            json!({
                "id": id,
                "name": name,
                "role": role.as_str(),
                "expires_at": expires_at.map(|t| t.to_rfc3339()),
                "token_digest": self.keys().digester.digest("api-token", token.as_bytes()),
            }),
        );
        let mutations = vec![mutation(&ApiToken(cred.clone()), 0)?];
        match by {
            Some(c) => self.append_by(c, vec![entry], mutations).await?,
            None => self.append_with(vec![entry], mutations).await?,
        };
        Ok(CreatedApiToken { token, view: token_view(&cred) })
    }

    pub async fn list_api_tokens(&self, caller: &Caller) -> Result<Vec<ApiTokenView>> {
        caller.require_admin("list API tokens")?;
        let stored = self.objects::<ApiToken>(&ObjectFilter::default()).await?;
        Ok(stored.iter().map(|v| token_view(&v.value.0)).collect())
    }

    pub async fn revoke_api_token(&self, caller: &Caller, id: &str) -> Result<ApiTokenView> {
        caller.require_admin("revoke API tokens")?;
        for _ in 0..MAX_RETRIES {
            let Versioned { value: ApiToken(mut cred), version } = self.read::<ApiToken>(id).await?;
            if cred.revoked_at.is_some() {
                return Err(ServiceError::Conflict(format!("API token {id:?} is already revoked")));
            }
            cred.revoked_at = Some(self.now());
            let entry = EntryDraft::new(&caller.name, "api_token.revoked", json!({ "id": id, "name": cred.name }));
            match self.append_by(caller, vec![entry], vec![mutation(&ApiToken(cred.clone()), version)?]).await {
                Ok(_) => {
                    // Refused at once on this server; on others within CREDENTIAL_CACHE_MS.
                    self.forget_credential(API_TOKEN_KIND, id);
                    return Ok(token_view(&cred));
                }
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("API token {id:?} kept changing; try again")))
    }
}

fn token_view(c: &StoredCredential) -> ApiTokenView {
    ApiTokenView {
        id: c.id.clone(),
        name: c.name.clone(),
        role: c.role.as_str().into(),
        created_at: c.created_at,
        created_by: c.created_by.clone(),
        expires_at: c.expires_at,
        revoked_at: c.revoked_at,
    }
}

/// API-token lifetimes: `12h`, `720h`, `90d`; at most ten years.
fn parse_token_lifetime(s: &str) -> std::result::Result<i64, String> {
    let bad = || format!("invalid token lifetime {s:?}: expected a number of hours or days, like 720h or 90d");
    let (num, unit) = s.trim().split_at(s.trim().len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| bad())?;
    let ms = match unit {
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    }
    .filter(|ms| *ms > 0 && *ms <= 3650 * 86_400_000)
    .ok_or_else(bad)?;
    Ok(ms)
}
