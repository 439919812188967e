//! The kernel of the service: what every feature builds on, and nothing
//! that belongs to one feature. It holds the [`Service`] (the ledger, the
//! store, the clock, the keys, the settings, the policy in force), who is
//! calling ([`Caller`]), why a call failed ([`ServiceError`]), typed state
//! objects ([`state`]), the outbox ([`outbox`]), ids, and the one door every
//! write goes through ([`Service::append_with`]) together with the seam for
//! what a grant change sets off ([`effect`], [`Service::commit`]).
//!
//! The kernel imports no feature module (`service::grants`, `::sessions`, …);
//! features import the kernel. Its rules: a change is acknowledged only
//! after its log entry is durable; a state change whose object moved
//! underneath it (another request, another server) fails its
//! compare-and-swap and is re-read and re-decided by the caller, never
//! applied blindly; a feature's in-memory state is its own
//! ([`Service::local`]), reachable only from the module that defines its type.

pub mod caller;
pub mod config;
pub mod credentials;
pub mod effect;
pub mod error;
pub mod loaded;
pub mod outbox;
pub mod state;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::time::{Clock, Timestamp};
use breakglass_core::token::KeySet;
use breakglass_store::LogStore;
use breakglass_store::Mutation;
use breakglass_store::ledger::{AppendError, Ledger, Receipt};
use serde_json::json;

pub use caller::{Caller, CiIdentity, CredentialKind};
pub use config::{Keys, ServiceConfig};
pub use effect::{Consequences, Effect, Transition};
pub use error::{Result, ServiceError, internal};
pub use loaded::{Loaded, load, read_policy_dir};
pub use state::{Stored, Versioned};

/// How many times a change re-reads and re-decides when its object moved
/// underneath it before it gives up with a conflict.
pub const MAX_RETRIES: usize = 8;

fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| internal("no randomness available", e))?;
    Ok(hex::encode(buf))
}

/// `n` random bytes, hex: a token id, a nonce.
pub fn random_id(n: usize) -> Result<String> {
    random_hex(n)
}

/// `<prefix>_<time base36, 9 digits><8 hex>`: unique, and sorts by time.
pub fn new_id(prefix: &str, now: Timestamp) -> Result<String> {
    let mut t = now.0.max(0) as u64;
    let mut digits = [b'0'; 9];
    for d in digits.iter_mut().rev() {
        *d = b"0123456789abcdefghijklmnopqrstuvwxyz"[(t % 36) as usize];
        t /= 36;
    }
    Ok(format!("{prefix}_{}{}", String::from_utf8_lossy(&digits), random_hex(4)?))
}

/// Features' in-memory state, one value per type, made on first use.
#[derive(Default)]
struct Locals(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

pub struct Service {
    ledger: Ledger,
    store: Arc<dyn LogStore>,
    clock: Arc<dyn Clock>,
    keys: Keys,
    config: ServiceConfig,
    loaded: RwLock<Arc<Loaded>>,
    effects: Vec<Box<dyn Effect>>,
    /// Wakes the expiry timer when a due time may have moved earlier.
    timer: tokio::sync::Notify,
    /// Wakes the notification worker when something was queued.
    outbox: tokio::sync::Notify,
    locals: Locals,
}

impl Service {
    /// A service over an open ledger with these effects of grant changes
    /// (`service::effects::standard()` is the server's own list); fails
    /// when the policy or the principals do not load.
    pub fn with_effects(
        ledger: Ledger,
        store: Arc<dyn LogStore>,
        clock: Arc<dyn Clock>,
        keys: Keys,
        config: ServiceConfig,
        effects: Vec<Box<dyn Effect>>,
    ) -> std::result::Result<Service, Vec<String>> {
        let loaded = load(&config)?;
        Ok(Service {
            ledger,
            store,
            clock,
            keys,
            config,
            loaded: RwLock::new(Arc::new(loaded)),
            effects,
            timer: tokio::sync::Notify::new(),
            outbox: tokio::sync::Notify::new(),
            locals: Locals::default(),
        })
    }

    /// The time now. A request reads it once and decides everything it
    /// decides at that one time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The policy and principals in force.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.read().expect("policy lock").clone()
    }

    /// Puts `new` in force (after its reload was logged).
    pub(crate) fn install(&self, new: Loaded) {
        *self.loaded.write().expect("policy lock") = Arc::new(new);
    }

    /// The grant-token verification keys, as a JWKS document.
    pub fn jwks(&self) -> String {
        KeySet::new([self.keys.token_signer.public_key().clone()]).expect("one key").to_jwks()
    }

    /// The value of type `T` this service keeps for the feature that
    /// defines `T` (a cache, a rate limit, what a check saw last), made
    /// with `T::default()` on first use.
    pub(crate) fn local<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = self.locals.0.lock().unwrap_or_else(|p| p.into_inner());
        let any = map.entry(TypeId::of::<T>()).or_insert_with(|| Arc::new(T::default())).clone();
        drop(map);
        any.downcast::<T>().expect("one value per type")
    }

    // ---- waking the workers ---------------------------------------------

    /// Tells the expiry timer that a due time may have moved earlier.
    pub(crate) fn wake_timer(&self) {
        self.timer.notify_one();
    }

    /// Tells the notification worker that something was queued.
    pub(crate) fn wake_outbox(&self) {
        self.outbox.notify_one();
    }

    /// Resolves when [`Service::wake_timer`] is called.
    pub(crate) async fn timer_woken(&self) {
        self.timer.notified().await
    }

    /// Resolves when [`Service::wake_outbox`] is called.
    pub(crate) async fn outbox_woken(&self) {
        self.outbox.notified().await
    }

    // ---- writing ----------------------------------------------------------

    /// Appends entries with state changes, as one commit. Every append of
    /// the service goes through here, so every effect's [`Effect::mark`]
    /// sees every entry, whoever wrote it.
    pub(crate) async fn append_with(
        &self,
        mut drafts: Vec<EntryDraft>,
        mutations: Vec<Mutation>,
    ) -> std::result::Result<Receipt, AppendError> {
        for e in &self.effects {
            e.mark(&mut drafts);
        }
        self.ledger.append_with(drafts, mutations).await
    }

    /// [`Service::append_with`] for what `caller` did: every entry names the
    /// credential that acted (its kind and id) as well as the actor, so a
    /// token's act never reads as its namesake's.
    pub(crate) async fn append_by(
        &self,
        caller: &Caller,
        mut drafts: Vec<EntryDraft>,
        mutations: Vec<Mutation>,
    ) -> std::result::Result<Receipt, AppendError> {
        for d in &mut drafts {
            let own = d.actor == caller.name;
            let Some(data) = d.data.as_object_mut() else { continue };
            if own {
                data.entry("credential").or_insert_with(|| caller.credential_json());
            } else {
                // An entry this act set off in someone else's name (an
                // approval activates the grantee's grant) says who caused it.
                data.entry("caused_by")
                    .or_insert_with(|| json!({ "actor": caller.name, "credential": caller.credential_json() }));
            }
        }
        self.append_with(drafts, mutations).await
    }

    /// [`Service::append_with`] for one entry and no state change.
    pub(crate) async fn append(&self, draft: EntryDraft) -> std::result::Result<Receipt, AppendError> {
        self.append_with(vec![draft], Vec::new()).await
    }

    /// Commits a change concerning a grant together with everything its
    /// effects add, as one append, then lets the effects act on it.
    ///
    /// `version` is the grant's version as read (0 when the change creates
    /// it), or `None` when the change leaves the grant as it is (its review
    /// fell overdue). `by` is who asked (their credential is stamped on the
    /// entries); `None` for the service's own timers. `extra` are state
    /// objects the change itself writes beside the grant.
    ///
    /// `Ok(None)`: an object moved underneath the change (compare-and-swap
    /// failed) and nothing was written; re-read and decide again.
    pub(crate) async fn commit(
        &self,
        by: Option<&Caller>,
        change: &Transition<'_>,
        version: Option<u64>,
        extra: Vec<Mutation>,
    ) -> Result<Option<Receipt>> {
        let mut add = Consequences::default();
        for e in &self.effects {
            e.within(self, change, &mut add)?;
        }
        let mut drafts = change.entries.to_vec();
        drafts.extend(add.entries);
        let mut mutations = Vec::new();
        if let Some(v) = version {
            mutations.push(state::mutation(change.grant, v)?);
        }
        mutations.extend(extra);
        mutations.extend(add.mutations);
        let appended = match by {
            Some(caller) => self.append_by(caller, drafts, mutations).await,
            None => self.append_with(drafts, mutations).await,
        };
        match appended {
            Ok(receipt) => {
                for e in &self.effects {
                    e.after(self, change);
                }
                Ok(Some(receipt))
            }
            Err(AppendError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Grants are what transitions are about: the kernel stores them.
impl Stored for Grant {
    const KIND: &'static str = "grant";
    const NOUN: &'static str = "grant";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        self.state.as_str()
    }
    fn owner(&self) -> &str {
        &self.principal
    }
    /// A pending request lapses, an active grant expires; nothing else is due.
    fn due(&self) -> Option<Timestamp> {
        match self.state {
            GrantState::Pending => Some(self.pending_until),
            GrantState::Active => self.expires_at,
            _ => None,
        }
    }
    state::json_body!();
}
