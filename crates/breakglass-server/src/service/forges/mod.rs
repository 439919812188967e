//! Hosted forges: a grant on a forge-managed repository opens its protected
//! refs for exactly the grant's holder while the grant is effective.
//!
//! The grant's activation (or end) commits as any transition does; the
//! [`ForgeBypass`] effect adds, in that same append, one job per forge
//! repository the grant covers ("apply" on activation, "remove" on its end).
//! A worker ([`run`]) carries the jobs out right after the commit, claims
//! each by compare-and-swap with a lease (so two servers over one database
//! never run one job twice), and records every attempt and its result as a
//! log entry bound to the grant (`forge.bypass.applied`, `forge.bypass.removed`,
//! `forge.bypass.failed`), retrying with backoff until it succeeds. A removal
//! still failing half a minute after the grant ended is the `forge.bypass_lingering`
//! drift finding, recorded and notified at once. At start, [`Service::reconcile_forges`]
//! removes every bypass no effective grant covers.
//!
//! Security: the forge is outside breakglass, and anyone with enough rights
//! there can add a bypass behind its back; so a bypass is never assumed
//! gone (removals are checked), an apply for a grant that is no longer
//! effective is dropped, and what the forge holds is compared with what the
//! grants cover. A principal is a forge account only through the principals
//! file (`accounts = ["<forge>:<login>"]` or `"<forge>:id:<id>"`); the account's
//! numeric id is resolved at apply and kept, so a later rename cannot move a
//! removal to someone else.

mod github;
mod gitlab;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::time::Timestamp;
use breakglass_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kernel::config::{ForgeConfig, ForgeKind, ForgeRepo};
use super::kernel::state::{filter, json_body, mutation};
use super::kernel::{Consequences, Effect, Result, Service, ServiceError, Stored, Transition, Versioned};

/// A claimed job is someone else's to run again after this long (ms).
const LEASE_MS: i64 = 30_000;
/// A removal still failing this long after it was queued is lingering (ms).
/// Attempts are at most [`MAX_BACKOFF_MS`] apart, so a lingering bypass is
/// reported within a minute of the grant's end.
pub const LINGER_MS: i64 = 30_000;
/// The longest wait between two attempts of one job (ms).
const MAX_BACKOFF_MS: i64 = 30_000;
/// How often the worker looks for due jobs when nothing woke it.
const RESYNC: Duration = Duration::from_secs(15);

/// Why a forge call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("cannot set up the forge client: {0}")]
    Setup(String),
    #[error("the forge is unreachable: {0}")]
    Unreachable(String),
    #[error("the forge asks to wait {retry_after_ms} ms (rate limit)")]
    RateLimited { retry_after_ms: i64 },
    #[error("{0}")]
    Refused(String),
    #[error("the forge's answer has an unexpected shape: {0}")]
    Shape(String),
}

/// An account on a forge: its login now and its immutable id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeUser {
    pub login: String,
    pub id: u64,
}

/// A forge's API, as breakglass uses it: one implementation per kind.
#[async_trait::async_trait]
trait ForgeApi: Send + Sync {
    /// The account `login` names now.
    async fn user(&self, login: &str, now: Timestamp) -> std::result::Result<ForgeUser, ForgeError>;
    /// Gives `user` the bypass on `repo`; returns the forge's ids of it.
    async fn grant(&self, repo: &ForgeRepo, user: &ForgeUser, now: Timestamp)
    -> std::result::Result<Value, ForgeError>;
    /// Takes it away again, and checks it is gone.
    async fn revoke(
        &self,
        repo: &ForgeRepo,
        user: &ForgeUser,
        now: Timestamp,
    ) -> std::result::Result<Value, ForgeError>;
    /// Everyone who holds the bypass on `repo` now.
    async fn holders(&self, repo: &ForgeRepo, now: Timestamp) -> std::result::Result<Vec<ForgeUser>, ForgeError>;
    /// Checks or creates the protection breakglass owns; says whether it created it.
    async fn install(&self, repo: &ForgeRepo, now: Timestamp) -> std::result::Result<bool, ForgeError>;
    /// That protection, normalized (`None`: there is none).
    async fn protection(&self, repo: &ForgeRepo, now: Timestamp) -> std::result::Result<Option<Value>, ForgeError>;
    /// The commit `branch` points at now (`None`: no such branch).
    async fn branch_head(
        &self,
        repo: &ForgeRepo,
        branch: &str,
        now: Timestamp,
    ) -> std::result::Result<Option<String>, ForgeError>;
}

#[async_trait::async_trait]
impl ForgeApi for github::Github {
    async fn user(&self, login: &str, now: Timestamp) -> std::result::Result<ForgeUser, ForgeError> {
        github::Github::user(self, login, now).await
    }
    async fn grant(
        &self,
        repo: &ForgeRepo,
        user: &ForgeUser,
        now: Timestamp,
    ) -> std::result::Result<Value, ForgeError> {
        github::Github::grant(self, repo, user, now).await
    }
    async fn revoke(
        &self,
        repo: &ForgeRepo,
        user: &ForgeUser,
        now: Timestamp,
    ) -> std::result::Result<Value, ForgeError> {
        github::Github::revoke(self, repo, user, now).await
    }
    async fn holders(&self, repo: &ForgeRepo, now: Timestamp) -> std::result::Result<Vec<ForgeUser>, ForgeError> {
        github::Github::holders(self, repo, now).await
    }
    async fn install(&self, repo: &ForgeRepo, now: Timestamp) -> std::result::Result<bool, ForgeError> {
        github::Github::install(self, repo, now).await
    }
    async fn protection(&self, repo: &ForgeRepo, now: Timestamp) -> std::result::Result<Option<Value>, ForgeError> {
        github::Github::protection(self, repo, now).await
    }
    async fn branch_head(
        &self,
        repo: &ForgeRepo,
        branch: &str,
        now: Timestamp,
    ) -> std::result::Result<Option<String>, ForgeError> {
        github::Github::branch_head(self, repo, branch, now).await
    }
}

#[async_trait::async_trait]
impl ForgeApi for gitlab::Gitlab {
    async fn user(&self, login: &str, _now: Timestamp) -> std::result::Result<ForgeUser, ForgeError> {
        gitlab::Gitlab::user(self, login).await
    }
    async fn grant(
        &self,
        repo: &ForgeRepo,
        user: &ForgeUser,
        _now: Timestamp,
    ) -> std::result::Result<Value, ForgeError> {
        gitlab::Gitlab::grant(self, repo, user).await
    }
    async fn revoke(
        &self,
        repo: &ForgeRepo,
        user: &ForgeUser,
        _now: Timestamp,
    ) -> std::result::Result<Value, ForgeError> {
        gitlab::Gitlab::revoke(self, repo, user).await
    }
    async fn holders(&self, repo: &ForgeRepo, _now: Timestamp) -> std::result::Result<Vec<ForgeUser>, ForgeError> {
        gitlab::Gitlab::holders(self, repo).await
    }
    async fn install(&self, repo: &ForgeRepo, _now: Timestamp) -> std::result::Result<bool, ForgeError> {
        gitlab::Gitlab::install(self, repo).await
    }
    async fn protection(&self, repo: &ForgeRepo, _now: Timestamp) -> std::result::Result<Option<Value>, ForgeError> {
        gitlab::Gitlab::protection(self, repo).await
    }
    /// Not read from GitLab yet: no unrecorded-push check there.
    async fn branch_head(
        &self,
        _repo: &ForgeRepo,
        _branch: &str,
        _now: Timestamp,
    ) -> std::result::Result<Option<String>, ForgeError> {
        Ok(None)
    }
}

/// A path segment, percent-encoded where it is not a plain name.
pub(super) fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The protected refs of `repo` that name one branch (not a pattern).
fn protected_branches(repo: &ForgeRepo) -> impl Iterator<Item = (&str, &str)> {
    repo.protected
        .iter()
        .filter_map(|p| p.strip_prefix("refs/heads/").filter(|b| !b.contains('*')).map(|b| (p.as_str(), b)))
}

/// The protection of one forge repository as `forge install` recorded it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForgeBaseline {
    /// `<forge>/<repo>`.
    pub id: String,
    pub forge: String,
    pub repo: String,
    pub snapshot: Value,
    /// SHA-256 of the snapshot's JSON.
    pub sha256: String,
    pub at: Timestamp,
}

impl Stored for ForgeBaseline {
    const KIND: &'static str = "forge_baseline";
    const NOUN: &'static str = "forge baseline";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        "recorded"
    }
    fn owner(&self) -> &str {
        &self.forge
    }
    fn due(&self) -> Option<Timestamp> {
        None
    }
    json_body!();
}

fn sha256_hex(v: &Value) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(v.to_string().as_bytes()))
}

/// The top-level members in which two snapshots differ.
fn differences(baseline: &Value, live: &Value) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = baseline
        .as_object()
        .into_iter()
        .flatten()
        .chain(live.as_object().into_iter().flatten())
        .map(|(k, _)| k)
        .collect();
    keys.into_iter()
        .filter(|k| baseline.get(k.as_str()) != live.get(k.as_str()))
        .map(|k| {
            format!(
                "{k}: {} → {}",
                baseline.get(k.as_str()).unwrap_or(&Value::Null),
                live.get(k.as_str()).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

/// Someone who holds a bypass no effective grant covers.
struct Uncovered<'a> {
    forge: &'a ForgeConfig,
    repo: &'a ForgeRepo,
    user: ForgeUser,
    principal: String,
}

/// The clients of the configured forges, made once (they keep tokens).
#[derive(Default)]
struct Clients(std::sync::Mutex<Vec<(String, Arc<dyn ForgeApi>)>>);

/// Wakes the forge worker when a job was queued.
#[derive(Default)]
struct Wake(tokio::sync::Notify);

/// Wakes whoever waits for a job of this server's worker to finish.
#[derive(Default)]
struct Finished(tokio::sync::Notify);

/// Whether this process runs the forge worker (only then is an apply worth
/// waiting for here).
#[derive(Default)]
struct Running(std::sync::atomic::AtomicBool);

/// How long a request or an approval waits for its bypass to be applied
/// before it answers with the bypass still pending.
pub const APPLY_WAIT: Duration = Duration::from_secs(5);
/// How often a waiter re-reads the jobs, for those another server runs.
const WAIT_RECHECK: Duration = Duration::from_millis(100);

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Apply,
    Remove,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Apply => "apply",
            Action::Remove => "remove",
        }
    }
}

/// One bypass to apply or remove on one forge repository.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForgeJob {
    pub id: String,
    pub action: Action,
    /// The grant it is for ("" for a reconcile removal that no grant covers).
    pub grant: String,
    pub principal: String,
    pub forge: String,
    /// The repository's name in scopes.
    pub repo: String,
    /// The account as the principals file names it (`<login>` or `id:<id>`).
    pub account: String,
    /// The account, once resolved (kept from the apply for the removal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ForgeUser>,
    /// pending, done, or dropped (an apply for a grant no longer effective).
    pub status: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    /// When it is next attempted (or its claim runs out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Timestamp>,
    /// Set once a lingering removal was reported.
    #[serde(default)]
    pub lingering: bool,
}

impl Stored for ForgeJob {
    const KIND: &'static str = "forge_job";
    const NOUN: &'static str = "forge job";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        &self.status
    }
    /// The grant it is for.
    fn owner(&self) -> &str {
        &self.grant
    }
    fn due(&self) -> Option<Timestamp> {
        if self.status == "pending" { self.next_at } else { None }
    }
    json_body!();
}

/// The forge repositories `grant` opens: git scopes on a managed repository
/// whose refs it may push to (push, force-push or delete).
fn covered<'a>(forges: &'a [ForgeConfig], grant: &Grant) -> Vec<(&'a ForgeConfig, &'a ForgeRepo)> {
    let pushes = grant
        .capabilities
        .iter()
        .any(|c| matches!(Capability::parse(c), Ok(Capability::Push | Capability::ForcePush | Capability::Delete)));
    if !pushes {
        return Vec::new();
    }
    let mut out = Vec::new();
    for f in forges {
        for r in &f.repos {
            let on_repo = grant.scopes.iter().any(|s| {
                matches!(Scope::parse(s), Ok(Scope::Git { repo, reference })
                    if repo == r.name && r.protected.iter().any(|p| Scope::parse(&format!("git:{repo}@{p}")).is_ok_and(|target| {
                        Scope::parse(&format!("git:{repo}@{reference}")).is_ok_and(|g| g.covers(&target) || target.covers(&g))
                    })))
            });
            if on_repo {
                out.push((f, r));
            }
        }
    }
    out
}

/// The account of `principal` on forge `forge`, from the principals file.
fn account_of(service: &Service, principal: &str, forge: &str) -> Option<String> {
    let loaded = service.loaded();
    let p = loaded.principals.get(principal)?;
    let prefix = format!("{forge}:");
    // The immutable id first, when the file gives one.
    let mut accounts: Vec<&String> = p.accounts.iter().filter(|a| a.starts_with(&prefix)).collect();
    accounts.sort_by_key(|a| !a[prefix.len()..].starts_with("id:"));
    accounts.first().map(|a| a[prefix.len()..].to_owned())
}

/// The forge effect: apply jobs when a grant becomes active, remove jobs
/// when an active one ends, in the transition's own append.
pub(crate) struct ForgeBypass;

impl Effect for ForgeBypass {
    fn name(&self) -> &'static str {
        "forge-bypass"
    }

    fn within(&self, service: &Service, change: &Transition<'_>, add: &mut Consequences) -> Result<()> {
        let forges = &service.config().forges;
        if forges.is_empty() {
            return Ok(());
        }
        let grant = change.grant;
        let action = if grant.state == GrantState::Active && change.before != Some(GrantState::Active) {
            Action::Apply
        } else if change.ends_active_grant() {
            Action::Remove
        } else {
            return Ok(());
        };
        for (f, r) in covered(forges, grant) {
            let Some(account) = account_of(service, &grant.principal, &f.name) else {
                // Nobody to open the forge for: say so next to the activation.
                add.entries.push(
                    EntryDraft::new(
                        "breakglass",
                        "forge.bypass.failed",
                        json!({ "forge": f.name, "repo": r.name, "action": action.as_str(), "attempt": 0,
                                "error": format!("{} has no {}: account in the principals file", grant.principal, f.name) }),
                    )
                    .with_grant(&grant.id),
                );
                continue;
            };
            let job = ForgeJob {
                id: format!("{}/{}/{}/{}", grant.id, f.name, r.name, action.as_str()),
                action,
                grant: grant.id.clone(),
                principal: grant.principal.clone(),
                forge: f.name.clone(),
                repo: r.name.clone(),
                account,
                user: None,
                status: "pending".into(),
                attempts: 0,
                last_error: None,
                created_at: change.now,
                next_at: Some(change.now),
                lingering: false,
            };
            add.mutations.push(mutation(&job, 0)?);
        }
        Ok(())
    }

    fn after(&self, service: &Service, _change: &Transition<'_>) {
        if !service.config().forges.is_empty() {
            service.local::<Wake>().0.notify_one();
        }
    }
}

fn backoff_ms(attempts: u32) -> i64 {
    (250i64 << attempts.min(7)).min(MAX_BACKOFF_MS)
}

impl Service {
    fn forge_client(&self, name: &str) -> Result<(Arc<dyn ForgeApi>, &ForgeConfig)> {
        let Some(config) = self.config().forges.iter().find(|f| f.name == name) else {
            return Err(ServiceError::unavailable(format!("forge {name:?} is no longer configured")));
        };
        let clients = self.local::<Clients>();
        let mut list = clients.0.lock().expect("forge clients lock");
        if let Some((_, c)) = list.iter().find(|(n, _)| n == name) {
            return Ok((c.clone(), config));
        }
        let client: Arc<dyn ForgeApi> = match config.kind {
            ForgeKind::Github => {
                Arc::new(github::Github::new(config).map_err(|e| ServiceError::unavailable(e.to_string()))?)
            }
            ForgeKind::Gitlab => {
                Arc::new(gitlab::Gitlab::new(config).map_err(|e| ServiceError::unavailable(e.to_string()))?)
            }
        };
        list.push((name.to_owned(), client.clone()));
        Ok((client, config))
    }

    /// Carries out every forge job due now; returns how many it attempted.
    pub async fn run_forge_jobs(&self) -> Result<usize> {
        let now = self.now();
        let due = self.due::<ForgeJob>(&["pending"], now, 16).await?;
        let mut n = 0;
        for Versioned { value: mut job, version } in due {
            // Claim it: whoever moves the version first runs it.
            job.next_at = Some(Timestamp(now.0 + LEASE_MS));
            match self.store().update_objects(&[mutation(&job, version)?]).await {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            n += 1;
            let done = self.run_forge_job(job, version + 1).await;
            self.local::<Finished>().0.notify_waiters();
            done?;
        }
        Ok(n)
    }

    async fn run_forge_job(&self, mut job: ForgeJob, version: u64) -> Result<()> {
        let now = self.now();
        // An apply for a grant that is no longer effective is dropped: its
        // removal (queued with its end) follows.
        if job.action == Action::Apply {
            let effective = self.find::<Grant>(&job.grant).await?.is_some_and(|g| g.value.is_effective(now));
            if !effective {
                job.status = "dropped".into();
                let entry = EntryDraft::new(
                    "breakglass",
                    "forge.bypass.dropped",
                    json!({ "forge": job.forge, "repo": job.repo, "reason": "the grant is no longer effective" }),
                )
                .with_grant(&job.grant);
                return self.finish_job(entry, &job, version).await;
            }
        }
        job.attempts += 1;
        let outcome = self.attempt(&mut job, now).await;
        let mut fields = json!({
            "forge": job.forge, "repo": job.repo, "principal": job.principal, "attempt": job.attempts,
            "account": job.user.as_ref().map_or_else(|| json!(job.account), |u| json!({ "login": u.login, "id": u.id })),
        });
        let kind = match outcome {
            Ok(ids) => {
                job.status = "done".into();
                job.last_error = None;
                job.next_at = None;
                fields["forge_ids"] = ids;
                if job.action == Action::Apply { "forge.bypass.applied" } else { "forge.bypass.removed" }
            }
            Err(e) => {
                let wait = match &e {
                    ForgeError::RateLimited { retry_after_ms } => (*retry_after_ms).max(backoff_ms(job.attempts)),
                    _ => backoff_ms(job.attempts),
                };
                let message = e.to_string();
                tracing::warn!(job = %job.id, attempt = job.attempts, error = %message, "forge bypass change failed; retrying");
                job.last_error = Some(message.clone());
                job.next_at = Some(Timestamp(self.now().0 + wait));
                fields["action"] = json!(job.action.as_str());
                fields["error"] = json!(message);
                fields["retry_in_ms"] = json!(wait);
                "forge.bypass.failed"
            }
        };
        let mut entry = EntryDraft::new("breakglass", kind, fields);
        if !job.grant.is_empty() {
            entry = entry.with_grant(&job.grant);
        }
        let lingering = job.action == Action::Remove
            && job.status == "pending"
            && !job.lingering
            && now.0 - job.created_at.0 >= LINGER_MS;
        if lingering {
            job.lingering = true;
        }
        self.finish_job(entry, &job, version).await?;
        if lingering {
            // A standing bypass must never be silent: the drift check records
            // the finding and notifies now, not at its next interval.
            if let Err(e) = self.run_drift_check().await {
                tracing::error!(error = %e.chain(), "a lingering forge bypass could not be recorded as drift");
            }
        }
        Ok(())
    }

    async fn attempt(&self, job: &mut ForgeJob, now: Timestamp) -> std::result::Result<Value, ForgeError> {
        let (client, config) = self.forge_client(&job.forge).map_err(|e| ForgeError::Setup(e.to_string()))?;
        let Some(repo) = config.repos.iter().find(|r| r.name == job.repo) else {
            return Err(ForgeError::Setup(format!(
                "repository {} is no longer configured on forge {}",
                job.repo, job.forge
            )));
        };
        let user = match &job.user {
            Some(u) => u.clone(),
            None => {
                let u = match job.account.strip_prefix("id:") {
                    Some(id) => {
                        let id: u64 =
                            id.parse().map_err(|_| ForgeError::Setup(format!("account id:{id} is not a number")))?;
                        // The id is what counts; the login is only how the API addresses it.
                        let holders = client.holders(repo, now).await?;
                        match holders.into_iter().find(|h| h.id == id) {
                            Some(h) => h,
                            None if job.action == Action::Remove => return Ok(json!({ "already_absent": true })),
                            None => {
                                return Err(ForgeError::Refused(format!(
                                    "account id {id} needs its login in the principals file to be added (<forge>:<login>)"
                                )));
                            }
                        }
                    }
                    None => client.user(&job.account, now).await?,
                };
                job.user = Some(u.clone());
                u
            }
        };
        match job.action {
            Action::Apply => client.grant(repo, &user, now).await,
            Action::Remove => client.revoke(repo, &user, now).await,
        }
    }

    /// Commits a job's result with its entry; another server that finished
    /// it first (after a lease ran out) stands.
    async fn finish_job(&self, entry: EntryDraft, job: &ForgeJob, version: u64) -> Result<()> {
        match self.append_with(vec![entry], vec![mutation(job, version)?]).await {
            Ok(_) | Err(breakglass_store::ledger::AppendError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// What `grant` set on the forges, as the API shows it. With `wait`,
    /// first waits (up to [`APPLY_WAIT`]) while an apply is still pending
    /// and this server's worker runs, so the requester hears when the
    /// bypass is live.
    pub async fn forge_bypasses(&self, grant: &str, wait: bool) -> Result<Vec<breakglass_core::api::ForgeBypassView>> {
        if self.config().forges.is_empty() {
            return Ok(Vec::new());
        }
        let wait = wait && self.local::<Running>().0.load(std::sync::atomic::Ordering::SeqCst);
        let bound = if wait { APPLY_WAIT } else { Duration::ZERO };
        self.wait_for_jobs(grant, bound, |j| j.action == Action::Apply && j.status == "pending").await
    }

    /// Waits, up to `bound`, until no job of `grant` is pending (whichever
    /// server's worker runs them); returns them as they are then.
    pub async fn forge_settled(
        &self,
        grant: &str,
        bound: Duration,
    ) -> Result<Vec<breakglass_core::api::ForgeBypassView>> {
        self.wait_for_jobs(grant, bound, |j| j.status == "pending").await
    }

    async fn wait_for_jobs(
        &self,
        grant: &str,
        bound: Duration,
        busy: impl Fn(&ForgeJob) -> bool,
    ) -> Result<Vec<breakglass_core::api::ForgeBypassView>> {
        let deadline = tokio::time::Instant::now() + bound;
        let finished = self.local::<Finished>();
        loop {
            // Registered before the jobs are read, so a job finishing in
            // between is not missed.
            let notified = finished.0.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let jobs = self.forge_jobs_of(grant).await?;
            let now = tokio::time::Instant::now();
            if !jobs.iter().any(&busy) || now >= deadline {
                return Ok(jobs.iter().map(view).collect());
            }
            // Another server's worker does not wake this one: look again soon.
            let _ = tokio::time::timeout(WAIT_RECHECK.min(deadline - now), notified).await;
        }
    }

    /// The forge jobs of `grant`, oldest first.
    pub async fn forge_jobs_of(&self, grant: &str) -> Result<Vec<ForgeJob>> {
        let mut jobs: Vec<ForgeJob> =
            self.objects::<ForgeJob>(&filter(&[], Some(grant), 100)).await?.into_iter().map(|v| v.value).collect();
        jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(jobs)
    }

    /// Removals still failing more than [`LINGER_MS`] after they were queued.
    pub(crate) async fn lingering_bypasses(&self, now: Timestamp) -> Result<Vec<ForgeJob>> {
        Ok(self
            .objects::<ForgeJob>(&filter(&["pending"], None, 10_000))
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|j| j.action == Action::Remove && now.0 - j.created_at.0 >= LINGER_MS)
            .collect())
    }

    /// Everyone on the managed repositories who holds a bypass that no
    /// effective grant covers.
    async fn uncovered(&self, now: Timestamp) -> Result<Vec<Uncovered<'_>>> {
        let loaded = self.loaded();
        let effective: Vec<Grant> = self
            .objects::<Grant>(&filter(&[GrantState::Active.as_str()], None, 10_000))
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|g| g.is_effective(now))
            .collect();
        // Bypasses being removed already are known (and, if it takes too
        // long, lingering), not unexpected.
        let removing: Vec<ForgeJob> = self
            .objects::<ForgeJob>(&filter(&["pending"], None, 10_000))
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|j| j.action == Action::Remove)
            .collect();
        let mut out = Vec::new();
        for f in &self.config().forges {
            let (client, _) = self.forge_client(&f.name)?;
            for r in &f.repos {
                let holders = client.holders(r, now).await.map_err(|e| {
                    ServiceError::unavailable(format!("cannot read who holds a bypass on {} ({}): {e}", r.name, f.name))
                })?;
                for h in holders {
                    let being_removed = removing.iter().any(|j| {
                        j.forge == f.name
                            && j.repo == r.name
                            && j.user.as_ref().map_or(j.account == h.login, |u| u.id == h.id)
                    });
                    if being_removed {
                        continue;
                    }
                    let names = [format!("{}:{}", f.name, h.login), format!("{}:id:{}", f.name, h.id)];
                    let principal = loaded.principals.iter().find(|p| p.accounts.iter().any(|a| names.contains(a)));
                    let covered_by = principal.is_some_and(|p| {
                        effective.iter().any(|g| {
                            g.principal == p.name
                                && covered(std::slice::from_ref(f), g).iter().any(|(_, cr)| cr.name == r.name)
                        })
                    });
                    if !covered_by {
                        let principal = principal.map(|p| p.name.clone()).unwrap_or_default();
                        out.push(Uncovered { forge: f, repo: r, user: h, principal });
                    }
                }
            }
        }
        Ok(out)
    }

    /// At start: every bypass on a managed repository that no effective
    /// grant covers is removed (a job each, with a `forge.bypass.unexpected` entry).
    pub async fn reconcile_forges(&self) -> Result<usize> {
        let now = self.now();
        let mut queued = 0;
        for u in self.uncovered(now).await? {
            let job = ForgeJob {
                id: format!("reconcile/{}/{}/{}/{}", u.forge.name, u.repo.name, u.user.id, now.0),
                action: Action::Remove,
                grant: String::new(),
                principal: u.principal.clone(),
                forge: u.forge.name.clone(),
                repo: u.repo.name.clone(),
                account: u.user.login.clone(),
                user: Some(u.user.clone()),
                status: "pending".into(),
                attempts: 0,
                last_error: None,
                created_at: now,
                next_at: Some(now),
                lingering: false,
            };
            let entry = EntryDraft::new(
                "breakglass",
                "forge.bypass.unexpected",
                json!({ "forge": u.forge.name, "repo": u.repo.name, "account": { "login": u.user.login, "id": u.user.id },
                        "principal": u.principal, "action": "remove", "why": "no effective grant covers this bypass" }),
            );
            self.append_with(vec![entry], vec![mutation(&job, 0)?]).await?;
            queued += 1;
        }
        if queued > 0 {
            self.local::<Wake>().0.notify_one();
        }
        Ok(queued)
    }

    /// `POST /v1/forges/install`: checks or creates the protection breakglass
    /// owns on a managed repository and records it as the baseline drift
    /// compares with (`forge.baseline`, with the snapshot's hash).
    pub async fn install_forge_repo(
        &self,
        caller: &super::kernel::Caller,
        forge: &str,
        repo: &str,
    ) -> Result<breakglass_core::api::ForgeRepoStatus> {
        caller.require_admin("install forge protection")?;
        let now = self.now();
        let (client, config) = self.forge_client(forge).map_err(|_| {
            ServiceError::NotFound(format!("no forge named {forge:?} is configured ([[forge]] in breakglass.toml)"))
        })?;
        let Some(r) = config.repos.iter().find(|r| r.name == repo) else {
            return Err(ServiceError::NotFound(format!(
                "forge {forge:?} manages no repository {repo:?} ([[forge.repo]])"
            )));
        };
        let refused = |e: ForgeError| match e {
            ForgeError::Refused(m) => ServiceError::Unprocessable(m),
            other => ServiceError::unavailable(format!("forge {forge}: {other}")),
        };
        let created = client.install(r, now).await.map_err(refused)?;
        let Some(snapshot) = client.protection(r, now).await.map_err(refused)? else {
            return Err(ServiceError::unavailable(format!(
                "forge {forge}: the protection of {repo} vanished right after install"
            )));
        };
        // What the log accounts for of each protected branch starts here.
        let mut heads = serde_json::Map::new();
        let mut mutations = Vec::new();
        for (refname, branch) in protected_branches(r) {
            if let Some(sha) = client.branch_head(r, branch, now).await.map_err(refused)? {
                heads.insert(refname.to_owned(), json!(sha));
                let rec = breakglass_core::api::RefRecord {
                    refname: refname.to_owned(),
                    value: sha,
                    at: now,
                    source: "forge.baseline".into(),
                    by: caller.name.clone(),
                    grant: None,
                };
                mutations.push(self.ref_mutation(repo, rec).await?);
            }
        }
        let id = format!("{forge}/{repo}");
        let version = self.find::<ForgeBaseline>(&id).await?.map_or(0, |v| v.version);
        let baseline = ForgeBaseline {
            id,
            forge: forge.into(),
            repo: repo.into(),
            sha256: sha256_hex(&snapshot),
            snapshot,
            at: now,
        };
        let entry = EntryDraft::new(
            &caller.name,
            "forge.baseline",
            json!({ "forge": forge, "repo": repo, "forge_repo": r.forge_repo, "created": created,
                    "sha256": baseline.sha256, "protection": baseline.snapshot, "refs": heads }),
        );
        mutations.push(mutation(&baseline, version)?);
        self.append_by(caller, vec![entry], mutations).await?;
        self.forge_repo_status(forge, r, now).await
    }

    async fn forge_repo_status(
        &self,
        forge: &str,
        r: &ForgeRepo,
        now: Timestamp,
    ) -> Result<breakglass_core::api::ForgeRepoStatus> {
        let (client, _) = self.forge_client(forge)?;
        let baseline = self.find::<ForgeBaseline>(&format!("{forge}/{}", r.name)).await?.map(|v| v.value);
        let live =
            client.protection(r, now).await.map_err(|e| ServiceError::unavailable(format!("forge {forge}: {e}")))?;
        let holders =
            client.holders(r, now).await.map_err(|e| ServiceError::unavailable(format!("forge {forge}: {e}")))?;
        let uncovered: Vec<u64> = self
            .uncovered(now)
            .await?
            .into_iter()
            .filter(|u| u.forge.name == forge && u.repo.name == r.name)
            .map(|u| u.user.id)
            .collect();
        Ok(breakglass_core::api::ForgeRepoStatus {
            forge: forge.into(),
            repo: r.name.clone(),
            forge_repo: r.forge_repo.clone(),
            baseline_sha256: baseline.as_ref().map(|b| b.sha256.clone()),
            protection_matches_baseline: match (&baseline, &live) {
                (Some(b), Some(l)) => Some(b.sha256 == sha256_hex(l)),
                _ => None,
            },
            protection: live,
            holders: holders
                .into_iter()
                .map(|h| breakglass_core::api::ForgeHolder {
                    covered: !uncovered.contains(&h.id),
                    login: h.login,
                    id: h.id,
                })
                .collect(),
        })
    }

    /// `GET /v1/forges`: per managed repository, the protection, its baseline,
    /// and who holds a bypass now (and whether a grant covers it).
    pub async fn forge_status(
        &self,
        caller: &super::kernel::Caller,
    ) -> Result<Vec<breakglass_core::api::ForgeRepoStatus>> {
        caller.require_reader("read forge status")?;
        let now = self.now();
        let mut out = Vec::new();
        for f in &self.config().forges {
            for r in &f.repos {
                out.push(self.forge_repo_status(&f.name, r, now).await?);
            }
        }
        Ok(out)
    }

    /// What the forges show that they should not: protection changed or gone
    /// since its baseline, and bypasses no grant covers.
    pub(crate) async fn forge_drift(&self) -> Result<Vec<breakglass_core::api::DriftFinding>> {
        use breakglass_core::api::DriftFinding;
        let now = self.now();
        let mut findings = Vec::new();
        if self.config().forges.is_empty() {
            return Ok(findings);
        }
        for f in &self.config().forges {
            let (client, _) = self.forge_client(&f.name)?;
            for r in &f.repos {
                let Some(baseline) = self.find::<ForgeBaseline>(&format!("{}/{}", f.name, r.name)).await? else {
                    continue;
                };
                let baseline = baseline.value;
                let subject = format!("{}:{}", f.name, r.name);
                match client.protection(r, now).await {
                    Ok(None) => findings.push(DriftFinding {
                        kind: "forge.protection_missing".into(),
                        subject,
                        what: format!("the protection breakglass recorded on {} ({}) is gone", r.forge_repo, f.name),
                        fix: format!("treat it as an incident: someone removed the ruleset; restore it with `breakglass forge install --forge {} --repo {}`", f.name, r.name),
                    }),
                    Ok(Some(live)) if sha256_hex(&live) != baseline.sha256 => findings.push(DriftFinding {
                        kind: "forge.protection_changed".into(),
                        subject,
                        what: format!(
                            "the protection of {} ({}) differs from its baseline: {}",
                            r.forge_repo,
                            f.name,
                            differences(&baseline.snapshot, &live).join("; ")
                        ),
                        fix: format!("if the change was meant, record it as the new baseline with `breakglass forge install --forge {} --repo {}`; if not, undo it on the forge", f.name, r.name),
                    }),
                    Ok(Some(_)) => {}
                    Err(e) => tracing::warn!(forge = %f.name, repo = %r.name, error = %e, "cannot read a forge's protection for the drift check"),
                }
                // A protected branch that moved with no push the log recorded
                // (a webhook lost, or never configured).
                for (refname, branch) in protected_branches(r) {
                    let Some(recorded) = self.recorded_ref(&r.name, refname).await? else { continue };
                    match client.branch_head(r, branch, now).await {
                        Ok(Some(live)) if live != recorded.value => findings.push(DriftFinding {
                            kind: "forge.unrecorded_push".into(),
                            subject: format!("{}:{}@{refname}", f.name, r.name),
                            what: format!(
                                "{refname} of {} ({}) is at {live}, but the last value the log accounts for is {} ({} by {} at {}): a push nobody recorded moved it",
                                r.forge_repo,
                                f.name,
                                recorded.value,
                                recorded.source,
                                recorded.by,
                                recorded.at.to_rfc3339()
                            ),
                            fix: format!("check the repository's push webhook deliveries on {} and who pushed (its rule suites show bypasses); the finding clears when the push is delivered and recorded", f.name),
                        }),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(forge = %f.name, repo = %r.name, error = %e, "cannot read a protected branch for the drift check"),
                    }
                }
            }
        }
        match self.uncovered(now).await {
            Ok(list) => findings.extend(list.into_iter().map(|u| DriftFinding {
                kind: "forge.bypass_unexpected".into(),
                subject: format!("{}:{}:{}", u.forge.name, u.repo.name, u.user.id),
                what: format!(
                    "{} (id {}{}) holds a bypass on {} ({}) that no effective grant covers",
                    u.user.login,
                    u.user.id,
                    if u.principal.is_empty() { String::new() } else { format!(", principal {}", u.principal) },
                    u.repo.forge_repo,
                    u.forge.name
                ),
                fix: "breakglass removes it at its next start; to remove it now, restart the server or take it off the team on the forge, and find out who added it".into(),
            })),
            Err(e) => tracing::warn!(error = %e.chain(), "cannot read the forges' bypass holders for the drift check"),
        }
        Ok(findings)
    }
}

fn view(j: &ForgeJob) -> breakglass_core::api::ForgeBypassView {
    breakglass_core::api::ForgeBypassView {
        forge: j.forge.clone(),
        repo: j.repo.clone(),
        action: j.action.as_str().into(),
        status: j.status.clone(),
        attempts: j.attempts,
        last_error: j.last_error.clone(),
        account: j.user.as_ref().map(|u| u.login.clone()),
    }
}

/// Marks jobs for the drift check: each lingering removal is a finding.
pub(crate) fn lingering_finding(job: &ForgeJob) -> breakglass_core::api::DriftFinding {
    let who = job.user.as_ref().map_or(job.account.clone(), |u| format!("{} (id {})", u.login, u.id));
    breakglass_core::api::DriftFinding {
        kind: "forge.bypass_lingering".into(),
        subject: format!("{}:{}:{}", job.forge, job.repo, who),
        what: format!(
            "the bypass of {who} on {} ({}) should have been removed at {} and is still not: {}",
            job.repo,
            job.forge,
            job.created_at.to_rfc3339(),
            job.last_error.as_deref().unwrap_or("not attempted yet")
        ),
        fix: "breakglass keeps retrying; check the forge's status and breakglass's credentials on it, or remove the bypass on the forge by hand now".into(),
    }
}

/// Runs until `stop` turns true: carries out due forge jobs, then sleeps
/// until one is due, one is queued, or [`RESYNC`].
pub async fn run(service: Arc<Service>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if service.config().forges.is_empty() {
        return;
    }
    let running = service.local::<Running>();
    running.0.store(true, std::sync::atomic::Ordering::SeqCst);
    match service.reconcile_forges().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(bypasses = n, "bypasses no grant covers were found on the forges; removing them"),
        Err(e) => tracing::error!(error = %e.chain(), "reconciling the forges failed; the drift check will look again"),
    }
    let wake = service.local::<Wake>();
    loop {
        if *stop.borrow() {
            running.0.store(false, std::sync::atomic::Ordering::SeqCst);
            return;
        }
        let wait = match service.run_forge_jobs().await {
            Ok(_) => match service.next_due_of::<ForgeJob>(&["pending"]).await {
                Ok(Some(at)) => Duration::from_millis((at.0 - service.now().0).max(0) as u64).min(RESYNC),
                Ok(None) => RESYNC,
                Err(_) => Duration::from_secs(1),
            },
            Err(e) => {
                tracing::warn!(error = %e.chain(), "running forge jobs failed; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.0.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1), 500);
        assert_eq!(backoff_ms(2), 1000);
        assert_eq!(backoff_ms(20), MAX_BACKOFF_MS);
    }

    #[test]
    fn a_grant_opens_the_forge_repositories_its_push_scopes_cover() {
        use super::super::kernel::config::{ForgeAuth, Mechanism};
        let repo = |name: &str| ForgeRepo {
            name: name.into(),
            forge_repo: format!("acme/{name}"),
            protected: vec!["refs/heads/main".into()],
            mechanism: Mechanism::Team { org: "acme".into(), slug: "bg".into() },
        };
        let forges = vec![ForgeConfig {
            name: "github".into(),
            kind: ForgeKind::Github,
            api_url: "http://127.0.0.1:1".into(),
            auth: ForgeAuth::Token("t".into()),
            webhook_secrets: Vec::new(),
            repos: vec![repo("payments/api"), repo("web")],
        }];
        let grant = |scope: &str, cap: &str| {
            let (mut g, _) = Grant::request(
                breakglass_core::grant::Request {
                    id: "gr_1".into(),
                    principal: "alice".into(),
                    scopes: vec![scope.into()],
                    capabilities: vec![cap.into()],
                    duration_ms: 60_000,
                    reason: "x".into(),
                    incident: None,
                },
                &breakglass_core::grant::Terms {
                    max_duration_ms: 60_000,
                    approvals_required: 0,
                    pending_ttl_ms: 60_000,
                },
                Timestamp(0),
            )
            .unwrap();
            g.state = GrantState::Active;
            g
        };
        let names = |g: &Grant| covered(&forges, g).iter().map(|(_, r)| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&grant("git:payments/api@refs/heads/main", "push")), ["payments/api"]);
        assert_eq!(names(&grant("git:payments/api@*", "force-push")), ["payments/api"]);
        assert!(names(&grant("git:payments/api@refs/heads/dev", "push")).is_empty());
        assert!(names(&grant("git:payments/api-internal@refs/heads/main", "push")).is_empty());
        assert!(names(&grant("pipeline:payments/api/deploy", "skip-gate:tests")).is_empty());
    }
}
