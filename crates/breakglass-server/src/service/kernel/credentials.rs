//! Sessions and API tokens as stored state objects, and the short-lived
//! cache authentication reads them through. The token itself is never
//! stored: only its SHA-256 (`crate::auth`), checked on every use together
//! with the expiry, whatever the cache holds.

use std::collections::HashMap;
use std::sync::Mutex;

use breakglass_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use super::Service;
use super::state::{Stored, json_body};
use crate::auth::{API_TOKEN_KIND, SESSION_KIND, StoredCredential};

/// How long a credential read from the database is trusted without reading
/// it again. Revocation on this server takes effect at once (the entry is
/// dropped); on another server over the same database, within this time.
pub const CREDENTIAL_CACHE_MS: i64 = 2_000;
const CREDENTIAL_CACHE_MAX: usize = 10_000;

macro_rules! credential_kind {
    ($name:ident, $kind:expr, $noun:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub StoredCredential);

        impl Stored for $name {
            const KIND: &'static str = $kind;
            const NOUN: &'static str = $noun;

            fn id(&self) -> &str {
                &self.0.id
            }
            fn status(&self) -> &str {
                if self.0.revoked_at.is_some() { "revoked" } else { "active" }
            }
            fn owner(&self) -> &str {
                &self.0.name
            }
            fn due(&self) -> Option<Timestamp> {
                self.0.expires_at
            }
            json_body!();
        }
    };
}

credential_kind!(Session, SESSION_KIND, "session", "A login session (`bgs_…`), owned by its principal.");
credential_kind!(ApiToken, API_TOKEN_KIND, "API token", "An API token (`bgk_…`), owned by its name.");

/// Credentials by (kind, id), with when they were read.
type CredentialMap = HashMap<(&'static str, String), (StoredCredential, Timestamp)>;

/// The cache authentication reads credentials through.
#[derive(Default)]
pub(crate) struct CredentialCache {
    entries: Mutex<CredentialMap>,
}

impl CredentialCache {
    fn get(&self, kind: &'static str, id: &str, now: Timestamp) -> Option<StoredCredential> {
        let map = self.entries.lock().expect("credential cache lock");
        let (cred, at) = map.get(&(kind, id.to_owned()))?;
        (now.0 - at.0 < CREDENTIAL_CACHE_MS && now >= *at).then(|| cred.clone())
    }

    fn put(&self, kind: &'static str, cred: StoredCredential, now: Timestamp) {
        let mut map = self.entries.lock().expect("credential cache lock");
        if map.len() >= CREDENTIAL_CACHE_MAX {
            map.retain(|_, (_, at)| now.0 - at.0 < CREDENTIAL_CACHE_MS);
            if map.len() >= CREDENTIAL_CACHE_MAX {
                map.clear();
            }
        }
        map.insert((kind, cred.id.clone()), (cred, now));
    }
}

impl Service {
    /// The stored credential `id` of `kind` (a session or an API token), read
    /// through the cache.
    pub(crate) async fn credential(
        &self,
        kind: &'static str,
        id: &str,
        now: Timestamp,
    ) -> super::Result<Option<StoredCredential>> {
        let cache = self.local::<CredentialCache>();
        if let Some(c) = cache.get(kind, id, now) {
            return Ok(Some(c));
        }
        let found = match kind {
            SESSION_KIND => self.find::<Session>(id).await?.map(|v| v.value.0),
            _ => self.find::<ApiToken>(id).await?.map(|v| v.value.0),
        };
        if let Some(c) = &found {
            cache.put(kind, c.clone(), now);
        }
        Ok(found)
    }

    /// Drops a credential from this server's cache, so a revocation takes
    /// effect here at once.
    pub(crate) fn forget_credential(&self, kind: &'static str, id: &str) {
        self.local::<CredentialCache>().entries.lock().expect("credential cache lock").remove(&(kind, id.to_owned()));
    }

    /// Drops every cached credential (the principals changed).
    pub(crate) fn forget_credentials(&self) {
        self.local::<CredentialCache>().entries.lock().expect("credential cache lock").clear();
    }
}
