//! The grant service: what the HTTP handlers call. It authenticates callers,
//! asks policy, moves grants through their state machine, and writes every
//! change as log entries together with the new state in one transaction.
//!
//! This is a pretty important and security sensitive part of the code. Its
//! rules: a grant is honoured only while [`Grant::is_effective`] says so at
//! the current time, whatever the stored state (the expiry timer may be
//! late; the server may have been down); a change is acknowledged only after
//! its log entry is durable; a state change whose object moved underneath it
//! (another request, another server) is re-read and re-decided, never
//! applied blindly.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use breakglass_core::api::{
    ApiTokenView, CheckResponse, CiGrant, CiStatus, CreateApiToken, CreatedApiToken, EventRecorded, EventRequest,
    GateDecision, GrantRequest, GrantStatus, GrantView, LoginResponse, PolicyReloaded, RefRecord, RepoRegistration,
    TokenResponse, WhoAmI,
};
use breakglass_core::entry::{EntryDraft, SecretDigester};
use breakglass_core::grant::{Grant, GrantError, GrantState, Request, parse_duration};
use breakglass_core::login::{self, ChallengeKey};
use breakglass_core::policy::{ContextInput, Policy, RequestInput};
use breakglass_core::principals::Principals;
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::sshsig;
use breakglass_core::time::{Clock, Timestamp};
use breakglass_core::token::{IssueRequest, KeySet, TokenSigner};
use breakglass_store::ledger::{AppendError, Ledger};
use breakglass_store::{LogStore, Mutation, ObjectFilter, StateObject, StoreError};
use serde_json::json;

use crate::auth::{
    self, API_PREFIX, API_TOKEN_KIND, CHALLENGE_KIND, Role, SESSION_KIND, SESSION_PREFIX, StoredCredential,
};
use crate::refs::{REF_KIND, ref_id, ref_mutation};

pub const GRANT_KIND: &str = "grant";
/// Event ids already recorded (so a spooled event is recorded once).
pub const EVENT_KIND: &str = "event";
pub const REPO_KIND: &str = "repo";

/// The kinds of event services may report.
pub const EVENT_KINDS: &[&str] = &["git.push.decision", "git.push", "ci.gate", "ci.deploy"];

/// Server settings the service needs.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The server's public URL: the `iss` of grant tokens and the origin of
    /// login challenges.
    pub issuer: String,
    pub policy_dir: PathBuf,
    pub principals_file: PathBuf,
    pub session_ttl_ms: i64,
    pub pending_ttl_ms: i64,
    pub challenge_ttl_ms: i64,
    /// The CI systems whose OIDC ID tokens are accepted, and their projects.
    pub ci: crate::ci::CiConfig,
    /// The incident receivers, and what incidents do to grants.
    pub incidents: crate::incidents::IncidentConfig,
    /// Where notifications go.
    pub notify: crate::notify::NotifyConfig,
    /// Post-event reviews.
    pub review: crate::reviews::ReviewConfig,
}

/// The server's secrets.
pub struct Keys {
    pub token_signer: TokenSigner,
    pub challenge_key: ChallengeKey,
    pub digester: SecretDigester,
}

/// Why a call failed, as the HTTP layer maps it to a status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    PolicyDenied { message: String, reasons: Vec<String> },
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        tracing::error!(error = %e, "storage failure");
        ServiceError::Unavailable("the database failed; nothing was changed".into())
    }
}

impl From<AppendError> for ServiceError {
    fn from(e: AppendError) -> ServiceError {
        match e {
            AppendError::Conflict { kind, id } => ServiceError::Conflict(format!("{kind} {id} changed concurrently")),
            AppendError::Invalid(e) => ServiceError::BadRequest(e.to_string()),
            other => {
                tracing::error!(error = %other, "audit log append failed");
                ServiceError::Unavailable(format!("the audit log could not record this, so nothing was done: {other}"))
            }
        }
    }
}

fn grant_error(e: GrantError) -> ServiceError {
    match e {
        GrantError::MissingReason
        | GrantError::NothingRequested
        | GrantError::BadDuration { .. }
        | GrantError::OverMaximum { .. }
        | GrantError::ExtensionOverMaximum { .. }
        | GrantError::BadText(_)
        | GrantError::Duplicate { .. }
        | GrantError::BadIncident { .. } => ServiceError::BadRequest(e.to_string()),
        GrantError::SelfApproval { .. } => ServiceError::Forbidden(e.to_string()),
        GrantError::WrongState { .. }
        | GrantError::DuplicateApproval { .. }
        | GrantError::RequestLapsed { .. }
        | GrantError::AlreadyExpired { .. }
        | GrantError::EndingEarly { .. } => ServiceError::Conflict(e.to_string()),
    }
}

pub(crate) fn internal(what: &str, e: impl std::fmt::Display) -> ServiceError {
    tracing::error!(error = %e, "{what}");
    ServiceError::Internal(format!("{what}; nothing was changed"))
}

/// What kind of credential a caller presented. Authorisation goes by this
/// as well as by name: only a person's session acts as that person.
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
    pub ci: Option<crate::ci::CiIdentity>,
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

    fn is_user(&self) -> bool {
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

    fn require_user(&self, what: &str) -> Result<()> {
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
    fn require_reader(&self, what: &str) -> Result<()> {
        if matches!(self.kind, CredentialKind::Session | CredentialKind::ApiToken | CredentialKind::System) {
            return Ok(());
        }
        Err(ServiceError::Forbidden(format!("a {} credential may not {what}", self.kind.as_str())))
    }

    fn require_admin(&self, what: &str) -> Result<()> {
        if self.is_admin() {
            return Ok(());
        }
        Err(ServiceError::Forbidden(format!("only an admin API token may {what}")))
    }
}

/// The policy and principals in force, swapped as a whole on reload.
pub struct Loaded {
    pub policy: Policy,
    pub principals: Principals,
    pub files: Vec<(String, String)>,
    /// (principal, SHA-256 fingerprint) of every SSH key in the principals
    /// file: a session lasts only while the key that made it is here.
    pub session_keys: std::collections::HashSet<(String, String)>,
}

impl Loaded {
    /// Whether the key that made a session is still its principal's.
    pub fn holds_key(&self, principal: &str, fingerprint: Option<&str>) -> bool {
        fingerprint.is_some_and(|fp| self.session_keys.contains(&(principal.to_owned(), fp.to_owned())))
    }
}

/// Every `*.cedar` file in `dir`, sorted by name, as (path, text): what
/// `Policy::load` takes, for the server and for `breakglass policy`.
pub fn read_policy_dir(dir: &Path) -> std::result::Result<Vec<(String, String)>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read the policy directory {}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| format!("cannot read the policy directory {}: {e}", dir.display()))?;
        let path = ent.path();
        if path.extension().is_some_and(|x| x == "cedar") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(format!("no *.cedar files in {}", dir.display()));
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read policy {}: {e}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// A path as a shell word, so that a printed fix runs as printed.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b)) {
        return s;
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Refuses a file or directory that decides who may break glass when
/// someone other than its owner may write it: a local user who can edit the
/// principals file or a policy gives themselves break-glass rights.
#[cfg(unix)]
fn check_not_writable_by_others(what: &str, path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} {} is writable by group or others (mode {mode:04o}): whoever can write it can give themselves break-glass rights (fix: chmod go-w {})",
            path.display(),
            shell_word(path)
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_not_writable_by_others(_what: &str, _path: &Path) -> std::result::Result<(), String> {
    Ok(())
}

/// Loads the policy directory and the principals file, all or nothing.
pub fn load(config: &ServiceConfig) -> std::result::Result<Loaded, Vec<String>> {
    let mut loose = Vec::new();
    for (what, path) in [("the policy directory", &config.policy_dir), ("the principals file", &config.principals_file)]
    {
        if let Err(e) = check_not_writable_by_others(what, path) {
            loose.push(e);
        }
    }
    let sources = read_policy_dir(&config.policy_dir).map_err(|e| vec![e])?;
    for (name, _) in &sources {
        if let Err(e) = check_not_writable_by_others("the policy file", Path::new(name)) {
            loose.push(e);
        }
    }
    if !loose.is_empty() {
        return Err(loose);
    }
    let policy = Policy::load(&sources).map_err(|e| e.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
    let source = config.principals_file.display().to_string();
    let text = std::fs::read_to_string(&config.principals_file)
        .map_err(|e| vec![format!("cannot read the principals file {source}: {e}")])?;
    let principals = Principals::parse(&text, &source).map_err(|e| vec![e.to_string()])?;
    let mut files: Vec<(String, String)> =
        sources.iter().map(|(name, text)| (name.clone(), sha256_hex(text.as_bytes()))).collect();
    files.push((source, sha256_hex(text.as_bytes())));
    let session_keys = principals
        .iter()
        .flat_map(|p| p.ssh_keys.iter().map(|k| (p.name.clone(), k.fingerprint(ssh_key::HashAlg::Sha256).to_string())))
        .collect();
    Ok(Loaded { policy, principals, files, session_keys })
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| internal("no randomness available", e))?;
    Ok(hex::encode(buf))
}

/// `<prefix>_<time base36, 9 digits><8 hex>`: unique, and sorts by time.
pub(crate) fn new_id(prefix: &str, now: Timestamp) -> Result<String> {
    let mut t = now.0.max(0) as u64;
    let mut digits = [b'0'; 9];
    for d in digits.iter_mut().rev() {
        *d = b"0123456789abcdefghijklmnopqrstuvwxyz"[(t % 36) as usize];
        t /= 36;
    }
    Ok(format!("{prefix}_{}{}", String::from_utf8_lossy(&digits), random_hex(4)?))
}

pub(crate) const MAX_RETRIES: usize = 8;

/// How long a credential read from the database is trusted without reading
/// it again. Revocation on this server takes effect at once (the entry is
/// dropped); on another server over the same database, within this time.
pub const CREDENTIAL_CACHE_MS: i64 = 2_000;
const CREDENTIAL_CACHE_MAX: usize = 10_000;

/// Credentials by (kind, id), as read at a time; the token is still checked
/// against the stored hash, and the expiry against the clock, on every use.
type CredentialMap = std::collections::HashMap<(&'static str, String), (StoredCredential, Timestamp)>;

#[derive(Default)]
struct CredentialCache {
    entries: std::sync::Mutex<CredentialMap>,
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

    fn forget(&self, kind: &'static str, id: &str) {
        self.entries.lock().expect("credential cache lock").remove(&(kind, id.to_owned()));
    }

    fn clear(&self) {
        self.entries.lock().expect("credential cache lock").clear();
    }
}

impl Service {
    /// Drops a credential from this server's cache, so a revocation takes
    /// effect here at once.
    pub(crate) fn forget_credential(&self, kind: &'static str, id: &str) {
        self.credentials.forget(kind, id);
    }
}

pub struct Service {
    ledger: Ledger,
    store: Arc<dyn LogStore>,
    clock: Arc<dyn Clock>,
    keys: Keys,
    config: ServiceConfig,
    loaded: RwLock<Arc<Loaded>>,
    credentials: CredentialCache,
    jwks: crate::ci::JwksCache,
    /// Wakes the expiry timer when a grant's due time may have moved earlier.
    pub(crate) wake: tokio::sync::Notify,
    /// Wakes the notification worker when something was queued.
    pub(crate) notify_wake: tokio::sync::Notify,
    /// The log's size and root when the drift check last found it
    /// consistent with what it had seen before.
    pub(crate) drift_seen: std::sync::Mutex<Option<(u64, breakglass_tlog::hash::Hash)>>,
    /// The rate limit on recording failed logins.
    pub(crate) failed_logins: std::sync::Mutex<crate::sessions::FailedLogins>,
}

impl Service {
    /// A service over an open ledger; fails when the policy or the
    /// principals do not load.
    pub fn new(
        ledger: Ledger,
        store: Arc<dyn LogStore>,
        clock: Arc<dyn Clock>,
        keys: Keys,
        config: ServiceConfig,
    ) -> std::result::Result<Service, Vec<String>> {
        let loaded = load(&config)?;
        Ok(Service {
            ledger,
            store,
            clock,
            keys,
            config,
            loaded: RwLock::new(Arc::new(loaded)),
            credentials: CredentialCache::default(),
            jwks: crate::ci::JwksCache::default(),
            wake: tokio::sync::Notify::new(),
            notify_wake: tokio::sync::Notify::new(),
            drift_seen: std::sync::Mutex::new(None),
            failed_logins: std::sync::Mutex::default(),
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Appends entries with state changes, as one commit. Every append of
    /// the service goes through here, so entries naming a drill grant are
    /// marked `"drill": true` whoever wrote them.
    pub(crate) async fn append_with(
        &self,
        mut drafts: Vec<EntryDraft>,
        mutations: Vec<Mutation>,
    ) -> std::result::Result<breakglass_store::ledger::Receipt, AppendError> {
        crate::drills::mark(&mut drafts);
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
    ) -> std::result::Result<breakglass_store::ledger::Receipt, AppendError> {
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
    pub(crate) async fn append(
        &self,
        draft: EntryDraft,
    ) -> std::result::Result<breakglass_store::ledger::Receipt, AppendError> {
        self.append_with(vec![draft], Vec::new()).await
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

    pub fn loaded(&self) -> Arc<Loaded> {
        self.loaded.read().expect("policy lock").clone()
    }

    pub fn jwks(&self) -> String {
        KeySet::new([self.keys.token_signer.public_key().clone()]).expect("one key").to_jwks()
    }

    // ---- authentication ------------------------------------------------

    /// The caller behind a bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        if crate::ci::looks_like_jwt(token) {
            return self.authenticate_ci(token).await;
        }
        let unauthorized = |why: &str| ServiceError::Unauthorized(format!("invalid bearer token: {why}"));
        let (kind, id) = auth::parse_token(token).map_err(unauthorized)?;
        let now = self.now();
        let cred = match self.credentials.get(kind, id, now) {
            Some(c) => c,
            None => {
                let Some(obj) = self.store.object(kind, id).await? else {
                    return Err(unauthorized("unknown token"));
                };
                let cred: StoredCredential =
                    serde_json::from_str(&obj.body).map_err(|e| internal("a stored credential is unreadable", e))?;
                self.credentials.put(kind, cred.clone(), now);
                cred
            }
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

    /// A CI job's OIDC ID token: a configured issuer, verified, mapped to a
    /// project and (through `accounts`) to the principal who triggered it.
    async fn authenticate_ci(&self, token: &str) -> Result<Caller> {
        let refused = |why: String| ServiceError::Unauthorized(format!("CI identity token refused: {why}"));
        let (iss, _) = breakglass_core::oidc::peek_issuer_and_kid(token).map_err(|e| refused(e.to_string()))?;
        if iss == self.config.issuer {
            return self.authenticate_grant_token(token).await;
        }
        let Some(issuer) = self.config.ci.issuer(&iss) else {
            return Err(refused(format!("issuer {iss:?} is not configured ([[ci.issuer]] in breakglass.toml)")));
        };
        let expect = breakglass_core::oidc::IssuerExpect {
            issuer: issuer.issuer.clone(),
            audience: issuer.audience.clone(),
            max_lifetime: self.config.ci.max_token_lifetime,
            leeway: std::time::Duration::from_secs(60),
        };
        let claims = match self.jwks.verify(issuer, token, &expect, self.now()).await {
            Ok(c) => c,
            Err(crate::ci::VerifyError::Refused(why)) => return Err(refused(why)),
            Err(crate::ci::VerifyError::KeysUnavailable(why)) => {
                return Err(ServiceError::Unavailable(format!("cannot check CI identity tokens now: {why}")));
            }
        };
        let id = self.config.ci.identify(issuer, &claims).map_err(refused)?;
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
        let keys = KeySet::new([self.keys.token_signer.public_key().clone()]).map_err(|e| internal("key set", e))?;
        let expect =
            breakglass_core::token::Expect::new(&self.config.issuer, std::time::Duration::from_secs(7 * 24 * 3600));
        let now = self.now();
        let claims = breakglass_core::token::verify(token, &keys, &expect, now).map_err(|e| refused(e.to_string()))?;
        let (grant, _) = self.read_grant(&claims.grant_id).await.map_err(|_| refused("unknown grant".into()))?;
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

    pub fn whoami(&self, caller: &Caller) -> WhoAmI {
        WhoAmI {
            name: caller.name.clone(),
            kind: caller.kind.as_str().into(),
            role: caller.role.as_str().into(),
            groups: caller.groups.clone(),
        }
    }

    // ---- login -----------------------------------------------------------

    /// A challenge for any well-formed name, known or not: the answer must
    /// not tell an unauthenticated caller who holds break-glass rights. Why a
    /// login of an unknown name fails goes to the server's own diagnostics.
    pub fn login_challenge(&self, principal: &str) -> Result<breakglass_core::api::ChallengeResponse> {
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
        let challenge = login::issue(
            &self.keys.challenge_key,
            &self.config.issuer,
            principal,
            nonce,
            now,
            self.config.challenge_ttl_ms,
        )
        .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        Ok(breakglass_core::api::ChallengeResponse {
            challenge,
            namespace: sshsig::LOGIN_NAMESPACE.into(),
            expires_at: Timestamp(now.0 + self.config.challenge_ttl_ms),
        })
    }

    pub async fn login(&self, principal: &str, challenge: &str, signature: &str) -> Result<LoginResponse> {
        let now = self.now();
        let refused = |why: String| ServiceError::Unauthorized(format!("login refused: {why}"));
        let claims = match login::open(&self.keys.challenge_key, challenge, &self.config.issuer, principal, now) {
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
        let expires_at = Timestamp(now.0 + self.config.session_ttl_ms);
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
        let used = Mutation {
            kind: CHALLENGE_KIND.into(),
            id: claims.nonce.clone(),
            expected_version: 0,
            status: "used".into(),
            owner: principal.to_owned(),
            due: Some(claims.expires_at.0),
            body: "{}".into(),
        };
        let session = credential_mutation(SESSION_KIND, &cred, 0)?;
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

    // ---- API tokens ------------------------------------------------------

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
                "token_digest": self.keys.digester.digest("api-token", token.as_bytes()),
            }),
        );
        let mutations = vec![credential_mutation(API_TOKEN_KIND, &cred, 0)?];
        match by {
            Some(c) => self.append_by(c, vec![entry], mutations).await?,
            None => self.append_with(vec![entry], mutations).await?,
        };
        Ok(CreatedApiToken { token, view: token_view(&cred) })
    }

    pub async fn list_api_tokens(&self, caller: &Caller) -> Result<Vec<ApiTokenView>> {
        caller.require_admin("list API tokens")?;
        let objs = self.store.objects(API_TOKEN_KIND, &ObjectFilter::default()).await?;
        objs.iter().map(|o| Ok(token_view(&parse_credential(o)?))).collect()
    }

    pub async fn revoke_api_token(&self, caller: &Caller, id: &str) -> Result<ApiTokenView> {
        caller.require_admin("revoke API tokens")?;
        for _ in 0..MAX_RETRIES {
            let Some(obj) = self.store.object(API_TOKEN_KIND, id).await? else {
                return Err(ServiceError::NotFound(format!("no API token with id {id:?}")));
            };
            let mut cred = parse_credential(&obj)?;
            if cred.revoked_at.is_some() {
                return Err(ServiceError::Conflict(format!("API token {id:?} is already revoked")));
            }
            cred.revoked_at = Some(self.now());
            let entry = EntryDraft::new(&caller.name, "api_token.revoked", json!({ "id": id, "name": cred.name }));
            match self
                .append_by(caller, vec![entry], vec![credential_mutation(API_TOKEN_KIND, &cred, obj.version)?])
                .await
            {
                Ok(_) => {
                    // Refused at once on this server; on others within CREDENTIAL_CACHE_MS.
                    self.credentials.forget(API_TOKEN_KIND, id);
                    return Ok(token_view(&cred));
                }
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("API token {id:?} kept changing; try again")))
    }

    // ---- policy ----------------------------------------------------------

    /// Reloads the policy and the principals; on any problem the old ones
    /// stay in force and the problems are returned.
    pub async fn reload(&self, by: &str) -> Result<PolicyReloaded> {
        let mut system = Caller::system();
        by.clone_into(&mut system.name);
        self.reload_by(&system).await
    }

    /// [`Service::reload`] asked by `caller` (an admin API token).
    pub async fn reload_by(&self, caller: &Caller) -> Result<PolicyReloaded> {
        let by = caller.name.as_str();
        let new = load(&self.config).map_err(|problems| {
            tracing::warn!(problems = problems.len(), "policy reload refused; the old policy stays in force");
            ServiceError::PolicyDenied {
                message: "the new policy or principals file is invalid; the old one stays in force".into(),
                reasons: problems,
            }
        })?;
        let out = PolicyReloaded {
            policies: new.policy.len(),
            principals: new.principals.len(),
            files: new.files.iter().map(|f| f.0.clone()).collect(),
        };
        let files: serde_json::Map<String, serde_json::Value> =
            new.files.iter().map(|(n, d)| (n.clone(), json!(d))).collect();
        // Logged before it takes effect: a policy nobody can see in the log never decides.
        let entry = EntryDraft::new(
            by,
            "policy.reloaded",
            json!({ "policies": out.policies, "principals": out.principals, "sha256": files }),
        );
        self.append_by(caller, vec![entry], Vec::new()).await?;
        *self.loaded.write().expect("policy lock") = Arc::new(new);
        self.credentials.clear();
        // Sessions whose key or principal is gone end now, each with an
        // entry (they are refused already: authentication checks the key).
        match self.end_orphaned_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "ended sessions whose key or principal left the principals file"),
            Err(e) => tracing::warn!(error = %e, "could not end the sessions of removed keys; they stay refused"),
        }
        Ok(out)
    }

    // ---- grants ----------------------------------------------------------

    async fn read_grant(&self, id: &str) -> Result<(Grant, u64)> {
        let Some(obj) = self.store.object(GRANT_KIND, id).await? else {
            return Err(ServiceError::NotFound(format!("no grant with id {id:?}")));
        };
        let grant: Grant = serde_json::from_str(&obj.body).map_err(|e| internal("a stored grant is unreadable", e))?;
        Ok((grant, obj.version))
    }

    fn view(&self, grant: &Grant, log: Vec<u64>) -> GrantView {
        GrantView::of(grant, self.now(), log)
    }

    pub async fn request(&self, caller: &Caller, req: &GrantRequest) -> Result<GrantView> {
        caller.require_user("request a grant")?;
        if req.reason.trim().is_empty() {
            return Err(ServiceError::BadRequest("a reason is required: say why you need to break glass".into()));
        }
        if req.reason.len() > 2000 {
            return Err(ServiceError::BadRequest("the reason is longer than 2000 characters".into()));
        }
        breakglass_core::grant::check_request_fields(&req.reason, &req.scopes, &req.capabilities)
            .map_err(grant_error)?;
        let scopes = req
            .scopes
            .iter()
            .map(|s| Scope::parse(s).map_err(|e| ServiceError::BadRequest(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let caps = req
            .capabilities
            .iter()
            .map(|c| Capability::parse(c).map_err(|e| ServiceError::BadRequest(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        if scopes.is_empty() || caps.is_empty() {
            return Err(ServiceError::BadRequest("a request names at least one scope and one capability".into()));
        }
        if req.drill
            && let Some(s) = scopes.iter().find(|s| !crate::drills::is_drill_scope(s))
        {
            return Err(ServiceError::BadRequest(format!(
                "a drill may name only drill scopes (repository or project breakglass-drill or breakglass-drill/...), not {s}"
            )));
        }
        let duration_ms = parse_duration(&req.duration).map_err(ServiceError::BadRequest)?;
        let now = self.now();
        let loaded = self.loaded();
        let mut input = RequestInput {
            principal: caller.name.clone(),
            groups: caller.groups.clone(),
            scopes: scopes.clone(),
            capabilities: caps.clone(),
            duration_ms,
            reason: req.reason.clone(),
            incident: None,
            overdue_reviews: self.overdue_reviews(&caller.name).await?,
            now,
            pending_ttl_ms: self.config.pending_ttl_ms,
        };
        // The incident the request rides on: the one it names, else the first
        // open one (most severe first) under which policy auto-approves it.
        let mut incident_id = req.incident.clone();
        let mut picked = false;
        let decision = match &req.incident {
            Some(named) => {
                if let Some(found) = self.find_incident(named).await? {
                    input.incident = Some(found.policy_input(&caller.name, &loaded.principals));
                    incident_id = Some(found.id);
                }
                loaded.policy.decide_request(&input)
            }
            None => {
                let plain = loaded.policy.decide_request(&input);
                let mut chosen = None;
                if !plain.auto_approve {
                    for open in self.open_incidents().await? {
                        input.incident = Some(open.policy_input(&caller.name, &loaded.principals));
                        let d = loaded.policy.decide_request(&input);
                        if d.allowed && d.auto_approve {
                            chosen = Some((open.id, d));
                            break;
                        }
                    }
                }
                match chosen {
                    Some((id, d)) => {
                        incident_id = Some(id);
                        picked = true;
                        d
                    }
                    None => {
                        input.incident = None;
                        plain
                    }
                }
            }
        };
        metrics::counter!("breakglass_policy_decisions_total", "action" => "request", "decision" => if decision.allowed { "allow" } else { "deny" }).increment(1);
        let reasons: Vec<String> = decision.reasons.iter().map(|r| r.to_string()).collect();
        let terms = if decision.allowed { decision.terms.clone() } else { None };
        let Some(terms) = terms else {
            let denials: Vec<String> = decision.denials().map(|r| r.to_string()).collect();
            // The refusal is part of the record: who asked for what, and why not.
            self.append_by(
                caller,
                vec![EntryDraft::new(
                    &caller.name,
                    "grant.refused",
                    json!({
                        "scopes": req.scopes,
                        "capabilities": req.capabilities,
                        "duration_ms": duration_ms,
                        "reason": req.reason,
                        "denials": denials,
                    }),
                )],
                Vec::new(),
            )
            .await?;
            metrics::counter!("breakglass_grant_requests_total", "outcome" => "refused").increment(1);
            return Err(ServiceError::PolicyDenied {
                message: format!("policy does not allow {} this request", caller.name),
                reasons: if denials.is_empty() { reasons } else { denials },
            });
        };
        let id = new_id(if req.drill { crate::drills::DRILL_GRANT_PREFIX } else { "gr" }, now)?;
        let (grant, mut drafts) = Grant::request(
            Request {
                id: id.clone(),
                principal: caller.name.clone(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                capabilities: caps.iter().map(|c| c.to_string()).collect(),
                duration_ms,
                reason: req.reason.clone(),
                incident: incident_id,
            },
            &terms,
            now,
        )
        .map_err(grant_error)?;
        if let Some(first) = drafts.first_mut() {
            first.data["policy"] = json!(reasons);
            first.data["session"] = json!(caller.credential);
            if let Some(inc) = &input.incident {
                first.data["incident_context"] = json!({
                    "severity": inc.severity,
                    "status": inc.status,
                    "requester_is_responder": inc.requester_is_responder,
                    "picked_by_server": picked,
                });
            }
        }
        let mut mutations = vec![grant_mutation(&grant, 0)?];
        mutations.extend(self.notifications_for(&grant, &drafts, now, &loaded)?);
        let receipt = self.append_by(caller, drafts, mutations).await?;
        self.notify_wake.notify_one();
        metrics::counter!("breakglass_grant_requests_total", "outcome" => if grant.state == GrantState::Active { "activated" } else { "pending" }).increment(1);
        self.wake.notify_one();
        Ok(self.view(&grant, (receipt.index..receipt.index + receipt.count).collect()))
    }

    /// Re-reads the grant, applies `change`, and commits it with its entries;
    /// retries when another writer changed the grant in between.
    pub(crate) async fn change_grant<F>(&self, id: &str, change: F) -> Result<GrantView>
    where
        F: FnMut(&mut Grant, Timestamp, &Loaded) -> Result<Vec<EntryDraft>>,
    {
        self.change_grant_by(&Caller::system(), id, change).await
    }

    /// [`Service::change_grant`] for what `caller` asked: its entries name
    /// the credential that acted.
    pub(crate) async fn change_grant_by<F>(&self, caller: &Caller, id: &str, mut change: F) -> Result<GrantView>
    where
        F: FnMut(&mut Grant, Timestamp, &Loaded) -> Result<Vec<EntryDraft>>,
    {
        for _ in 0..MAX_RETRIES {
            let (mut grant, version) = self.read_grant(id).await?;
            let before = grant.state;
            let now = self.now();
            let loaded = self.loaded();
            let mut drafts = change(&mut grant, now, &loaded)?;
            if drafts.is_empty() {
                // Nothing to change (an idempotent repeat).
                let log = self.store.object_log(GRANT_KIND, id).await?;
                return Ok(self.view(&grant, log));
            }
            let mut mutations = vec![grant_mutation(&grant, version)?];
            mutations.extend(self.notifications_for(&grant, &drafts, now, &loaded)?);
            if let Some((entry, review)) = self.review_on_end(before, &grant, now)? {
                drafts.push(entry);
                mutations.push(review);
            }
            match self.append_by(caller, drafts, mutations).await {
                Ok(_) => {
                    self.wake.notify_one();
                    self.notify_wake.notify_one();
                    let log = self.store.object_log(GRANT_KIND, id).await?;
                    return Ok(self.view(&grant, log));
                }
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("grant {id} kept changing; try again")))
    }

    fn approval_context(grant: &Grant, now: Timestamp) -> ContextInput {
        ContextInput {
            requester: grant.principal.clone(),
            duration_ms: grant.duration_ms,
            reason: grant.reason.clone(),
            now,
            ..ContextInput::default()
        }
    }

    fn may_approve(loaded: &Loaded, caller: &Caller, grant: &Grant, now: Timestamp) -> Result<()> {
        let scopes = grant
            .scopes
            .iter()
            .map(|s| Scope::parse(s).map_err(|e| internal("a stored grant has a bad scope", e)))
            .collect::<Result<Vec<_>>>()?;
        let d =
            loaded.policy.decide_approval(&caller.name, &caller.groups, &scopes, &Self::approval_context(grant, now));
        metrics::counter!("breakglass_policy_decisions_total", "action" => "approve", "decision" => if d.allowed { "allow" } else { "deny" }).increment(1);
        if d.allowed {
            return Ok(());
        }
        let mut reasons = d.errors.clone();
        if reasons.is_empty() {
            reasons.push(format!("no policy permits {} to approve grants on {}", caller.name, grant.scopes.join(", ")));
        }
        Err(ServiceError::PolicyDenied {
            message: format!("{} may not approve grant {}", caller.name, grant.id),
            reasons,
        })
    }

    pub async fn approve(&self, caller: &Caller, id: &str, comment: Option<&str>) -> Result<GrantView> {
        caller.require_user("approve a grant")?;
        comment.map(breakglass_core::grant::check_comment).transpose().map_err(grant_error)?;
        self.change_grant_by(caller, id, |grant, now, loaded| {
            if grant.principal == caller.name {
                return Err(ServiceError::Forbidden(format!(
                    "{} requested grant {} and cannot approve it",
                    caller.name, grant.id
                )));
            }
            Self::may_approve(loaded, caller, grant, now)?;
            let mut drafts = grant.approve(&caller.name, now).map_err(grant_error)?;
            if let (Some(c), Some(first)) = (comment, drafts.first_mut()) {
                first.data["comment"] = json!(c);
            }
            Ok(drafts)
        })
        .await
    }

    pub async fn deny(&self, caller: &Caller, id: &str, reason: &str) -> Result<GrantView> {
        caller.require_user("deny a grant")?;
        self.change_grant_by(caller, id, |grant, now, loaded| {
            if grant.principal == caller.name {
                return Err(ServiceError::Forbidden(format!(
                    "{} requested grant {} and cannot deny it (revoke it instead)",
                    caller.name, grant.id
                )));
            }
            Self::may_approve(loaded, caller, grant, now)?;
            grant.deny(&caller.name, reason, now).map_err(grant_error)
        })
        .await
    }

    /// The grantee, an admin, or anyone policy lets approve it may revoke a grant.
    pub async fn revoke(&self, caller: &Caller, id: &str, reason: &str) -> Result<GrantView> {
        self.change_grant_by(caller, id, |grant, now, loaded| {
            if !caller.is_admin() && !caller.is_person(&grant.principal) {
                if !caller.is_user() {
                    return Err(ServiceError::Forbidden(format!(
                        "a {} credential ({} {:?}) may not revoke grants: only the grantee's session, an approver's session or an admin API token may",
                        caller.kind.as_str(),
                        caller.role.as_str(),
                        caller.name
                    )));
                }
                Self::may_approve(loaded, caller, grant, now)?;
            }
            grant.revoke(&caller.name, reason, now).map_err(grant_error)
        })
        .await
    }

    /// Only the grantee extends a grant, with a reason, within the maximum
    /// policy gave it at request time.
    pub async fn extend(&self, caller: &Caller, id: &str, by: &str, reason: &str) -> Result<GrantView> {
        let added = parse_duration(by).map_err(ServiceError::BadRequest)?;
        self.change_grant_by(caller, id, |grant, now, _| {
            if !caller.is_person(&grant.principal) {
                return Err(ServiceError::Forbidden(format!(
                    "only {} may extend grant {}, logged in as themselves (this is a {} credential)",
                    grant.principal,
                    grant.id,
                    caller.kind.as_str()
                )));
            }
            grant.extend(&caller.name, added, reason, now).map_err(grant_error)
        })
        .await
    }

    pub async fn show(&self, caller: &Caller, id: &str) -> Result<GrantView> {
        caller.require_reader("read grants")?;
        let (grant, _) = self.read_grant(id).await?;
        let log = self.store.object_log(GRANT_KIND, id).await?;
        Ok(self.view(&grant, log))
    }

    pub async fn status(&self, caller: &Caller, id: &str) -> Result<GrantStatus> {
        // A grant token reads its own grant's status and nothing else.
        if let Some(own) = &caller.grant
            && own != id
        {
            return Err(ServiceError::Forbidden(format!("a grant token reads only its own grant's status ({own})")));
        }
        let (grant, _) = self.read_grant(id).await?;
        // A CI job reads the grants of the person who triggered it only.
        if caller.kind == CredentialKind::CiOidc && grant.principal != caller.name {
            return Err(ServiceError::Forbidden(format!(
                "a CI job reads only the grants of the person who triggered it ({})",
                caller.name
            )));
        }
        Ok(status_of(&grant, self.now()))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        state: Option<&str>,
        principal: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantView>> {
        caller.require_reader("list grants")?;
        let now = self.now();
        let mut statuses = Vec::new();
        if let Some(s) = state {
            if !["pending", "active", "expired", "revoked", "denied", "lapsed"].contains(&s) {
                return Err(ServiceError::BadRequest(format!(
                    "invalid state {s:?}: expected pending, active, expired, revoked, denied or lapsed"
                )));
            }
            // A grant past its time may still be stored as active or pending.
            statuses.push(s.to_owned());
            match s {
                "expired" => statuses.push("active".into()),
                "lapsed" => statuses.push("pending".into()),
                _ => {}
            }
        }
        let filter = ObjectFilter { statuses, owner: principal.map(str::to_owned), limit };
        let objs = self.store.objects(GRANT_KIND, &filter).await?;
        let mut out = Vec::with_capacity(objs.len());
        for o in &objs {
            let grant: Grant =
                serde_json::from_str(&o.body).map_err(|e| internal("a stored grant is unreadable", e))?;
            let v = GrantView::of(&grant, now, Vec::new());
            if state.is_none_or(|s| v.state.as_str() == s) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Is there a grant, effective now, held by `principal`, covering
    /// `scope` with `capability`? For hooks and CI steps.
    pub async fn check(
        &self,
        caller: &Caller,
        principal: &str,
        scope: &str,
        capability: &str,
    ) -> Result<CheckResponse> {
        // Hooks and automation ask this about anyone; people and jobs ask
        // about themselves through `status` and `ci/status`.
        if !(matches!(caller.role, Role::Service | Role::Admin) && caller.kind == CredentialKind::ApiToken) {
            return Err(ServiceError::Forbidden(format!(
                "only a service or admin API token may check grants (this is a {} credential)",
                caller.kind.as_str()
            )));
        }
        let scope = Scope::parse(scope).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let cap = Capability::parse(capability).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let filter = ObjectFilter { statuses: vec!["active".into()], owner: Some(principal.to_owned()), limit: 1000 };
        let now = self.now();
        let mut best: Option<Grant> = None;
        for o in self.store.objects(GRANT_KIND, &filter).await? {
            let grant: Grant =
                serde_json::from_str(&o.body).map_err(|e| internal("a stored grant is unreadable", e))?;
            let covers = grant.scopes.iter().any(|s| Scope::parse(s).is_ok_and(|s| s.covers(&scope)));
            let has = grant.capabilities.iter().any(|c| Capability::parse(c).is_ok_and(|c| c == cap));
            if grant.is_effective(now) && covers && has && best.as_ref().is_none_or(|b| b.expires_at < grant.expires_at)
            {
                best = Some(grant);
            }
        }
        Ok(CheckResponse { allowed: best.is_some(), grant: best.map(|g| status_of(&g, now)) })
    }

    /// Signs a grant token for an effective grant, for its holder (or an admin).
    pub async fn token(&self, caller: &Caller, id: &str) -> Result<TokenResponse> {
        let (grant, _) = self.read_grant(id).await?;
        if !caller.is_admin() && !caller.is_person(&grant.principal) {
            return Err(ServiceError::Forbidden(format!(
                "only {} (logged in as themselves) or an admin API token may get a token for grant {id} (this is a {} credential)",
                grant.principal,
                caller.kind.as_str()
            )));
        }
        let now = self.now();
        if !grant.is_effective(now) {
            let v = GrantView::of(&grant, now, Vec::new());
            return Err(ServiceError::Conflict(format!("grant {id} is {}, not active", v.state.as_str())));
        }
        let jti = random_hex(16)?;
        let issue =
            IssueRequest::for_grant(&grant, &self.config.issuer, &jti).map_err(|e| internal("cannot issue", e))?;
        let token = self.keys.token_signer.issue(&issue, now).map_err(|e| ServiceError::Conflict(e.to_string()))?;
        let expires_at = grant.expires_at.unwrap_or(now);
        let issued = EntryDraft::new(
            &caller.name,
            "grant.token_issued",
            json!({ "jti": jti, "key_id": self.keys.token_signer.key_id(), "expires_at": expires_at.to_rfc3339() }),
        )
        .with_grant(id);
        self.append_by(caller, vec![issued], Vec::new()).await?;
        Ok(TokenResponse { token, key_id: self.keys.token_signer.key_id().to_owned(), expires_at })
    }

    // ---- events reported by hooks and CI steps ----------------------------

    /// Records an event reported by a service (a Git hook, a CI step),
    /// at most once per event id: a second delivery of a spooled event is
    /// acknowledged as a duplicate and writes nothing.
    pub async fn record_event(&self, caller: &Caller, ev: &EventRequest) -> Result<EventRecorded> {
        if !matches!(caller.role, Role::Service | Role::Admin | Role::Ci) {
            return Err(ServiceError::Forbidden(
                "only a service or admin API token or a CI job may report events".into(),
            ));
        }
        if caller.role == Role::Ci {
            // A CI job reports only its own pipeline's gates and deployments, as itself.
            if !ev.kind.starts_with("ci.") {
                return Err(ServiceError::Forbidden(format!("a CI job may not report {} events", ev.kind)));
            }
            // As itself, or (for events spooled under a grant and delivered
            // by a later job) as the grant's holder.
            let holder = match &ev.grant {
                Some(g) => self.store.object(GRANT_KIND, g).await?.map(|o| o.owner),
                None => None,
            };
            if ev.actor != caller.name && holder.as_deref() != Some(ev.actor.as_str()) {
                return Err(ServiceError::Forbidden(format!(
                    "a CI job reports as {} (or as the holder of the event's grant), not as {}",
                    caller.name, ev.actor
                )));
            }
            let scope = ev.data.get("scope").and_then(|v| v.as_str()).unwrap_or_default();
            self.ci_scope(caller, scope)?;
            if let Some(g) = &caller.grant
                && ev.grant.as_ref().is_some_and(|eg| eg != g)
            {
                return Err(ServiceError::Forbidden(format!("a grant token reports only events of grant {g}")));
            }
        }
        let id_ok = !ev.id.is_empty()
            && ev.id.len() <= 64
            && ev.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(ServiceError::BadRequest(format!(
                "invalid event id {:?}: 1-64 letters, digits, '-' or '_'",
                ev.id
            )));
        }
        let kind_ok = EVENT_KINDS.iter().any(|k| ev.kind == *k);
        if !kind_ok {
            return Err(ServiceError::BadRequest(format!(
                "invalid event kind {:?}: expected one of {}",
                ev.kind,
                EVENT_KINDS.join(", ")
            )));
        }
        let serde_json::Value::Object(mut data) = ev.data.clone() else {
            return Err(ServiceError::BadRequest("event data must be a JSON object".into()));
        };
        if ev.actor.trim().is_empty() || ev.actor.len() > 256 {
            return Err(ServiceError::BadRequest("an event names its actor (1-256 characters)".into()));
        }
        if let Some(g) = &ev.grant
            && self.store.object(GRANT_KIND, g).await?.is_none()
        {
            return Err(ServiceError::BadRequest(format!("event {} names grant {g:?}, which does not exist", ev.id)));
        }
        data.insert("event_id".into(), json!(ev.id));
        data.insert("reported_by".into(), json!(caller.name));
        data.insert("reported_with".into(), caller.credential_json());
        data.insert("reported_at".into(), json!(ev.at.to_rfc3339()));
        // A push that landed moves what the log accounts for of its ref.
        let moved = match ev.kind.as_str() {
            "git.push" => {
                let field = |k: &str| data.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                let (repo, refname, value) = (field("repo"), field("ref"), field("new"));
                if repo.is_empty() || !refname.starts_with("refs/") || value.is_empty() {
                    return Err(ServiceError::BadRequest(
                        "a git.push event names its repo, its ref (refs/...) and the new value".into(),
                    ));
                }
                let rec = RefRecord {
                    refname,
                    value,
                    at: ev.at,
                    source: ev.kind.clone(),
                    by: ev.actor.clone(),
                    grant: ev.grant.clone(),
                };
                Some((repo, rec))
            }
            _ => None,
        };
        let mut entry = EntryDraft::new(&ev.actor, &ev.kind, serde_json::Value::Object(data));
        if let Some(g) = &ev.grant {
            entry = entry.with_grant(g);
        }
        let seen = Mutation {
            kind: EVENT_KIND.into(),
            id: ev.id.clone(),
            expected_version: 0,
            status: "recorded".into(),
            owner: ev.grant.clone().unwrap_or_default(),
            due: None,
            body: "{}".into(),
        };
        for _ in 0..MAX_RETRIES {
            let mut mutations = vec![seen.clone()];
            if let Some((repo, rec)) = &moved {
                let existing = self.store.object(REF_KIND, &ref_id(repo, &rec.refname)).await?;
                mutations.push(ref_mutation(existing.as_ref(), repo, rec.clone())?);
            }
            match self.append_with(vec![entry.clone()], mutations).await {
                Ok(r) => return Ok(EventRecorded { id: ev.id.clone(), duplicate: false, index: Some(r.index) }),
                Err(AppendError::Conflict { kind, .. }) if kind == EVENT_KIND => {
                    return Ok(EventRecorded { id: ev.id.clone(), duplicate: true, index: None });
                }
                // Another push of the same ref was recorded meanwhile.
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("event {}: its ref kept changing; deliver it again", ev.id)))
    }

    /// Registers (or updates) a repository whose hooks `git install` wrote.
    pub async fn register_repo(&self, caller: &Caller, reg: &RepoRegistration) -> Result<RepoRegistration> {
        if !matches!(caller.role, Role::Service | Role::Admin) {
            return Err(ServiceError::Forbidden("only a service or admin API token may register repositories".into()));
        }
        let probe = format!("git:{}@refs/heads/x", reg.name);
        Scope::parse(&probe)
            .map_err(|_| ServiceError::BadRequest(format!("invalid repository name {:?}", reg.name)))?;
        for p in &reg.protected {
            Scope::parse(&format!("git:{}@{p}", reg.name))
                .map_err(|e| ServiceError::BadRequest(format!("invalid protected ref pattern {p:?}: {e}")))?;
        }
        for (r, value) in &reg.refs {
            let covered = reg.protected.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => r.starts_with(prefix),
                None => r == p,
            });
            if !covered || value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ServiceError::BadRequest(format!(
                    "baseline ref {r:?} = {value:?}: expected a protected ref and its object id in hex"
                )));
            }
        }
        let now = self.now();
        for _ in 0..MAX_RETRIES {
            let existing = self.store.object(REPO_KIND, &reg.name).await?;
            let version = existing.as_ref().map_or(0, |o| o.version);
            let body = serde_json::to_string(reg).map_err(|e| internal("cannot encode a repository", e))?;
            if existing.as_ref().is_some_and(|o| o.body == body) {
                return Ok(reg.clone());
            }
            let mut mutations = Vec::new();
            for (r, value) in &reg.refs {
                let existing = self.store.object(REF_KIND, &ref_id(&reg.name, r)).await?;
                let rec = RefRecord {
                    refname: r.clone(),
                    value: value.clone(),
                    at: now,
                    source: "git.repo.installed".into(),
                    by: caller.name.clone(),
                    grant: None,
                };
                mutations.push(ref_mutation(existing.as_ref(), &reg.name, rec)?);
            }
            let m = Mutation {
                kind: REPO_KIND.into(),
                id: reg.name.clone(),
                expected_version: version,
                status: if reg.installed { "installed" } else { "uninstalled" }.into(),
                owner: reg.host.clone(),
                due: None,
                body,
            };
            let kind = if reg.installed { "git.repo.installed" } else { "git.repo.uninstalled" };
            let entry = EntryDraft::new(
                &caller.name,
                kind,
                json!({
                    "repo": reg.name,
                    "protected": reg.protected,
                    "updaters": reg.updaters,
                    "path": reg.path,
                    "host": reg.host,
                    "hooks": reg.hooks,
                    "refs": reg.refs,
                }),
            );
            mutations.push(m);
            match self.append_with(vec![entry], mutations).await {
                Ok(_) => return Ok(reg.clone()),
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("repository {} kept changing; try again", reg.name)))
    }

    pub async fn repos(&self, _caller: &Caller) -> Result<Vec<RepoRegistration>> {
        let objs = self.store.objects(REPO_KIND, &ObjectFilter::default()).await?;
        objs.iter()
            .map(|o| serde_json::from_str(&o.body).map_err(|e| internal("a stored repository is unreadable", e)))
            .collect()
    }

    // ---- CI ------------------------------------------------------------------

    /// Parses a job's pipeline scope and, for a CI caller, checks that it is
    /// its own project (and environment, when the scope names one).
    fn ci_scope(&self, caller: &Caller, scope: &str) -> Result<Scope> {
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
        let filter = ObjectFilter { statuses: vec!["active".into()], owner: Some(principal.clone()), limit: 1000 };
        let mut best: Option<(Grant, Vec<String>)> = None;
        for o in self.store.objects(GRANT_KIND, &filter).await? {
            let grant: Grant =
                serde_json::from_str(&o.body).map_err(|e| internal("a stored grant is unreadable", e))?;
            if !grant.is_effective(now) || caller.grant.as_ref().is_some_and(|g| *g != grant.id) {
                continue;
            }
            if !grant.scopes.iter().any(|s| Scope::parse(s).is_ok_and(|s| s.covers(&target))) {
                continue;
            }
            let caps: Vec<String> = grant
                .capabilities
                .iter()
                .filter(|c| Capability::parse(c).is_ok_and(|c| c.kind() == breakglass_core::scope::ScopeKind::Pipeline))
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

    // ---- expiry ----------------------------------------------------------

    /// Ends every grant whose time is up at `now` (expiry or lapse), each
    /// with its entry, at its exact time. Returns how many it ended; another
    /// server ending one first is not an error.
    pub async fn expire_due(&self) -> Result<usize> {
        let now = self.now();
        let due = self.store.due_objects(GRANT_KIND, &["active", "pending"], now.0, 100).await?;
        let mut ended = 0;
        for obj in due {
            let mut grant: Grant =
                serde_json::from_str(&obj.body).map_err(|e| internal("a stored grant is unreadable", e))?;
            let before = grant.state;
            let Some((draft, _)) = grant.expire(now) else { continue };
            let mut drafts = vec![draft];
            let mut mutations = vec![grant_mutation(&grant, obj.version)?];
            mutations.extend(self.notifications_for(&grant, &drafts, now, &self.loaded())?);
            // The review opens in the same commit as the end it reviews.
            if let Some((entry, review)) = self.review_on_end(before, &grant, now)? {
                drafts.push(entry);
                mutations.push(review);
            }
            match self.append_with(drafts, mutations).await {
                Ok(_) => {
                    ended += 1;
                    self.notify_wake.notify_one();
                    metrics::counter!("breakglass_grants_ended_total", "state" => grant.state.as_str()).increment(1);
                }
                Err(AppendError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Reviews fall due on the same timer.
        ended += self.escalate_reviews().await?;
        Ok(ended)
    }

    /// When the next grant is due to end, or review to escalate, if any.
    pub async fn next_due(&self) -> Result<Option<Timestamp>> {
        let grant = self.store.next_due(GRANT_KIND, &["active", "pending"]).await?.map(Timestamp);
        let review = self.next_review_due().await?;
        Ok(match (grant, review) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Counts of grants by stored state, for metrics.
    pub async fn grant_counts(&self) -> Result<Vec<(&'static str, usize)>> {
        let mut out = Vec::new();
        for s in ["pending", "active", "expired", "revoked", "denied", "lapsed"] {
            let f = ObjectFilter { statuses: vec![s.into()], owner: None, limit: 10_000 };
            out.push((s, self.store.objects(GRANT_KIND, &f).await?.len()));
        }
        Ok(out)
    }
}

fn status_of(grant: &Grant, now: Timestamp) -> GrantStatus {
    let v = GrantView::of(grant, now, Vec::new());
    GrantStatus {
        id: grant.id.clone(),
        principal: grant.principal.clone(),
        state: v.state,
        effective: v.effective,
        expires_at: v.expires_at,
    }
}

fn grant_mutation(grant: &Grant, expected_version: u64) -> Result<Mutation> {
    let due = match grant.state {
        GrantState::Pending => Some(grant.pending_until.0),
        GrantState::Active => grant.expires_at.map(|t| t.0),
        _ => None,
    };
    Ok(Mutation {
        kind: GRANT_KIND.into(),
        id: grant.id.clone(),
        expected_version,
        status: grant.state.as_str().into(),
        owner: grant.principal.clone(),
        due,
        body: serde_json::to_string(grant).map_err(|e| internal("cannot encode a grant", e))?,
    })
}

pub(crate) fn credential_mutation(kind: &str, cred: &StoredCredential, expected_version: u64) -> Result<Mutation> {
    Ok(Mutation {
        kind: kind.into(),
        id: cred.id.clone(),
        expected_version,
        status: if cred.revoked_at.is_some() { "revoked" } else { "active" }.into(),
        owner: cred.name.clone(),
        due: cred.expires_at.map(|t| t.0),
        body: serde_json::to_string(cred).map_err(|e| internal("cannot encode a credential", e))?,
    })
}

pub(crate) fn parse_credential(obj: &StateObject) -> Result<StoredCredential> {
    serde_json::from_str(&obj.body).map_err(|e| internal("a stored credential is unreadable", e))
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
