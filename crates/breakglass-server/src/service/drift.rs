//! Drift the server can see for itself: grants whose stored state lags
//! their time or contradicts their log, and policy that amounts to a
//! standing backdoor (`GET /v1/drift`; `breakglass drift` adds what only a
//! host with the repositories, or an auditor with a saved checkpoint, can
//! see). And the periodic drift check ([`run`], `POST /v1/drift/check`):
//! the above, plus the repositories on the server's own host and the log
//! against the last head the check saw, and a JSON-lines copy the ledger
//! found truncated at start (`log.sink_truncated`), with each new finding recorded as a
//! `drift.found` log entry and a notification, each finding gone as
//! `drift.cleared`, and the open ones counted in metrics.
//!
//! Security: this is how a silent hole (a bypassed hook, a grant honoured
//! too long, a rewritten log, a database edited behind the server) gets
//! noticed; it reads the stored columns of grants as well as their bodies,
//! since a mismatch between the two is itself a finding.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use breakglass_core::api::{DriftCheck, DriftFinding, DriftReport};
use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::notify::{Notice, NotifyEvent};
use breakglass_core::time::Timestamp;
use breakglass_store::StateObject;
use breakglass_store::ledger::AppendError;
use breakglass_tlog::proof::verify_consistency;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kernel::state::{filter, mutation};
use super::kernel::{Caller, MAX_RETRIES, Result, Service, ServiceError, Stored, Versioned, internal};
use crate::auth::Role;
use crate::hostcheck;

/// Every kind of finding, for the per-kind gauge.
pub const FINDING_KINDS: [&str; 15] = [
    "grant.past_expiry",
    "grant.state_mismatch",
    "policy.standing_backdoor",
    "repo.hook_missing",
    "repo.hook_modified",
    "repo.push_options_off",
    "repo.spool_pending",
    "ref.unrecorded",
    "log.inconsistent",
    "log.sink_truncated",
    "forge.bypass_lingering",
    "forge.bypass_unexpected",
    "forge.protection_changed",
    "forge.protection_missing",
    "forge.unrecorded_push",
];

/// A grant still stored active this long past its end has drifted (the
/// timer normally ends it within milliseconds).
const LAG_MS: i64 = 60_000;
/// How many ended grants (newest first) are compared with their log.
const ENDED_CHECKED: u32 = 200;

/// The state a grant's log says it is in: its last state-changing entry.
fn state_by_log(kinds: &[String]) -> Option<&'static str> {
    kinds.iter().rev().find_map(|k| match k.as_str() {
        "grant.requested" => Some("pending"),
        "grant.activated" => Some("active"),
        "grant.expired" => Some("expired"),
        "grant.revoked" => Some("revoked"),
        "grant.denied" => Some("denied"),
        "grant.lapsed" => Some("lapsed"),
        _ => None,
    })
}

impl Service {
    /// The notice a new finding sends.
    fn drift_notice(&self, f: &DriftFinding, now: Timestamp) -> Notice {
        Notice {
            event: NotifyEvent::DriftDetected,
            at: now,
            grant: String::new(),
            principal: String::new(),
            scopes: Vec::new(),
            capabilities: Vec::new(),
            reason: String::new(),
            state: String::new(),
            expires_at: None,
            by: None,
            approvers: Vec::new(),
            approvals: None,
            incident: None,
            detail: None,
            server: self.config().issuer.clone(),
            drift: Some(f.clone()),
        }
    }

    pub async fn drift(&self, caller: &Caller) -> Result<DriftReport> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not read drift".into()));
        }
        Ok(DriftReport { findings: self.server_drift().await? })
    }

    /// Grants and policy.
    async fn server_drift(&self) -> Result<Vec<DriftFinding>> {
        let now = self.now();
        let mut findings = Vec::new();
        let live = filter(&[GrantState::Active.as_str(), GrantState::Pending.as_str()], None, 10_000);
        let ended =
            [GrantState::Expired, GrantState::Revoked, GrantState::Denied, GrantState::Lapsed].map(GrantState::as_str);
        // The raw objects: their status and due columns are compared with the body.
        let mut objs = self.store().objects(Grant::KIND, &live).await?;
        objs.extend(self.store().objects(Grant::KIND, &filter(&ended, None, ENDED_CHECKED)).await?);
        for o in objs {
            let g = Grant::decode(&o).map_err(|e| internal("a stored grant is unreadable", e))?;
            if let Some(due) = o.due
                && (o.status == "active" || o.status == "pending")
                && now.0 - due > LAG_MS
            {
                findings.push(DriftFinding {
                    kind: "grant.past_expiry".into(),
                    subject: g.id.clone(),
                    what: format!(
                        "grant {} of {} is still stored {} {} s after it was due to end (it is not honoured: every check compares times)",
                        g.id,
                        g.principal,
                        o.status,
                        (now.0 - due) / 1000
                    ),
                    fix: "check that every breakglass server is running (its timer writes the end); the next one to start ends it".into(),
                });
            }
            let mut kinds = Vec::new();
            for i in self.history_of::<Grant>(&g.id).await? {
                for rec in self.store().entries(i, i + 1).await? {
                    let v: Value =
                        serde_json::from_slice(&rec.data).map_err(|e| internal("a log entry is unreadable", e))?;
                    kinds.push(v["kind"].as_str().unwrap_or("").to_owned());
                }
            }
            let by_log = state_by_log(&kinds);
            if by_log != Some(o.status.as_str()) || g.state.as_str() != o.status {
                findings.push(DriftFinding {
                    kind: "grant.state_mismatch".into(),
                    subject: g.id.clone(),
                    what: format!(
                        "grant {} is stored as {} (body: {}) but its log says {}",
                        g.id,
                        o.status,
                        g.state.as_str(),
                        by_log.unwrap_or("nothing")
                    ),
                    fix: "someone changed the database outside breakglass: compare with `breakglass audit show` and `audit verify`, and treat it as an incident".into(),
                });
            }
        }
        // Hosted forges: lingering removals, protection changed or gone,
        // bypasses no grant covers.
        findings.extend(self.lingering_bypasses(now).await?.iter().map(super::forges::lingering_finding));
        findings.extend(self.forge_drift().await?);
        for (id, file, why) in self.loaded().policy.standing_risks() {
            findings.push(DriftFinding {
                kind: "policy.standing_backdoor".into(),
                subject: id.clone(),
                what: format!("policy {id} in {file} {why}"),
                fix: "name a group or principal in its scope and give request permits a @max_duration; then `breakglass policy reload`".into(),
            });
        }
        Ok(findings)
    }

    /// `POST /v1/drift/check`: the periodic check, now (admins only).
    pub async fn drift_check(&self, caller: &Caller) -> Result<DriftCheck> {
        if caller.role != Role::Admin || caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("only an admin may run the drift check".into()));
        }
        self.run_drift_check().await
    }

    /// Finds drift (the server's own, this host's repositories, the log
    /// against the last head seen) and records what changed since the last
    /// check: `drift.found` with a notification for each new finding,
    /// `drift.cleared` for each one gone. Several servers may run it at
    /// once: the records are compare-and-swapped, so each change is logged once.
    pub async fn run_drift_check(&self) -> Result<DriftCheck> {
        let host = hostcheck::host_name();
        let mut findings = self.server_drift().await?;
        findings.extend(self.log_drift().await?);
        findings.extend(self.sink_drift());
        for reg in self.repos(&Caller::system()).await? {
            if !hostcheck::is_local(&reg, &host) {
                continue;
            }
            let recorded = self.repo_refs(&Caller::system(), &reg.name).await?.refs;
            let inspected = tokio::task::spawn_blocking(move || hostcheck::inspect(&reg, Some(&recorded)))
                .await
                .map_err(|e| internal("the repository inspection failed", e))?;
            findings.extend(inspected);
        }
        // One record per kind and subject (a policy can be risky twice over).
        let mut merged: BTreeMap<String, DriftFinding> = BTreeMap::new();
        for f in findings {
            match merged.get_mut(&drift_id(&f)) {
                Some(m) => {
                    m.what = format!("{}; {}", m.what, f.what);
                }
                None => {
                    merged.insert(drift_id(&f), f);
                }
            }
        }
        for k in FINDING_KINDS {
            let n = merged.values().filter(|f| f.kind == k).count();
            metrics::gauge!("breakglass_drift_findings", "kind" => k).set(n as f64);
        }
        // Findings are reported even when they cannot be recorded.
        let (found, cleared, not_recorded) = match self.record_drift(&merged, &host).await {
            Ok((found, cleared)) => (found, cleared, None),
            Err(e) => {
                tracing::error!(error = %e, "drift found but not recorded in the log");
                (Vec::new(), Vec::new(), Some(e.to_string()))
            }
        };
        for f in &found {
            metrics::counter!("breakglass_drift_found_total", "kind" => f.kind.clone()).increment(1);
        }
        Ok(DriftCheck { host, findings: merged.into_values().collect(), found, cleared, not_recorded })
    }

    /// Whether the log still extends the head the last check saw.
    async fn log_drift(&self) -> Result<Option<DriftFinding>> {
        let reader = self.ledger().reader();
        use breakglass_store::reader::ReadError;
        let fix = "stop and investigate: the log's storage was rewritten behind the server; compare with an exported copy (`breakglass audit verify`) and keep the evidence";
        let head = match reader.head().await {
            Ok(h) => h,
            Err(ReadError::Empty) => return Ok(None),
            Err(ReadError::Store(e)) => return Err(internal("cannot read the log's head", e)),
            Err(e) => {
                return Ok(Some(DriftFinding {
                    kind: "log.inconsistent".into(),
                    subject: "log".into(),
                    what: format!("the log's latest checkpoint is not what was signed: {e}"),
                    fix: fix.into(),
                }));
            }
        };
        let seen_by_checks = self.local::<SeenHead>();
        let seen = *seen_by_checks.0.lock().unwrap_or_else(|p| p.into_inner());
        let problem = match seen {
            None => None,
            Some((size, _)) if head.size < size => {
                Some(format!("the log shrank from {size} entries (seen by an earlier check) to {}", head.size))
            }
            Some((size, root)) => {
                let proof = reader.prove_consistency(size, head.size).await.map_err(|e| internal("cannot prove", e))?;
                verify_consistency(size, head.size, root.as_bytes(), head.root.as_bytes(), &proof).err().map(|e| {
                    format!(
                        "the log at size {} is not consistent with the head of size {size} an earlier check saw ({e})",
                        head.size
                    )
                })
            }
        };
        match problem {
            None => {
                *seen_by_checks.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((head.size, head.root));
                Ok(None)
            }
            // The remembered head stays: the finding stands until someone looks.
            Some(what) => {
                Ok(Some(DriftFinding { kind: "log.inconsistent".into(), subject: "log".into(), what, fix: fix.into() }))
            }
        }
    }

    /// Issue 14: a JSON-lines copy that lacked more at start than a crash
    /// can leave out. The ledger repaired it and logged `log.sink_repaired`;
    /// the finding stays open while this server runs, so that it is seen.
    fn sink_drift(&self) -> Option<DriftFinding> {
        let repair = self.ledger().open_report().sink_repair.as_ref().filter(|r| r.beyond_window)?;
        Some(DriftFinding {
            kind: "log.sink_truncated".into(),
            subject: repair.path.display().to_string(),
            what: format!(
                "at start the JSON-lines copy {} held {} of the log's {} entries: it lacked {}, more than a crash can leave out (the last {} batches); they were copied back from the database{}",
                repair.path.display(),
                repair.had,
                repair.size,
                repair.size - repair.had,
                breakglass_store::ledger::SINK_DEPTH,
                repair.recorded_at.map(|i| format!(" (log entry {i})")).unwrap_or_default()
            ),
            fix: "treat it as an incident: the off-database copy was truncated, emptied or replaced (or log.sink was moved); compare it with your exported copies and keep the evidence; the finding clears when this server restarts".into(),
        })
    }

    async fn record_drift(
        &self,
        current: &BTreeMap<String, DriftFinding>,
        host: &str,
    ) -> Result<(Vec<DriftFinding>, Vec<DriftFinding>)> {
        for _ in 0..MAX_RETRIES {
            let now = self.now();
            let open = self.objects::<DriftRecord>(&filter(&["open"], None, 10_000)).await?;
            let (mut entries, mut mutations, mut found, mut cleared) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, f) in current {
                if open.iter().any(|o| &o.value.id == id) {
                    continue;
                }
                let version = self.find::<DriftRecord>(id).await?.map_or(0, |v| v.version);
                let observer = observer(f, host);
                let body = DriftBody { finding: f.clone(), observer: observer.clone(), since: now };
                mutations.push(mutation(&DriftRecord { id: id.clone(), open: true, body }, version)?);
                entries.push(EntryDraft::new(
                    "breakglass",
                    "drift.found",
                    json!({ "id": id, "kind": f.kind, "subject": f.subject, "what": f.what, "fix": f.fix, "observer": observer }),
                ));
                found.push(f.clone());
            }
            for Versioned { value: record, version } in open {
                // A host's findings are cleared only by a check on that host.
                let observer = &record.body.observer;
                if current.contains_key(&record.id) || !(observer.is_empty() || observer == host) {
                    continue;
                }
                let f = record.body.finding.clone();
                entries.push(EntryDraft::new(
                    "breakglass",
                    "drift.cleared",
                    json!({ "id": record.id, "kind": f.kind, "subject": f.subject, "since": record.body.since.to_rfc3339() }),
                ));
                mutations.push(mutation(&DriftRecord { open: false, ..record }, version)?);
                cleared.push(f);
            }
            if entries.is_empty() {
                return Ok((found, cleared));
            }
            mutations.extend(self.queue(found.iter().map(|f| (self.drift_notice(f, now), now)).collect(), now)?);
            match self.append_with(entries, mutations).await {
                Ok(_) => {
                    if !found.is_empty() {
                        self.wake_outbox();
                    }
                    return Ok((found, cleared));
                }
                // Another server recorded the same change meanwhile: look again.
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict("the drift records kept changing; the next check tries again".into()))
    }
}

/// What the log-consistency check last saw consistent: the log's size and
/// root (this server's memory; a restart starts from the current head).
#[derive(Default)]
struct SeenHead(std::sync::Mutex<Option<(u64, breakglass_tlog::hash::Hash)>>);

/// One finding's record: open while the finding stands, cleared once gone.
struct DriftRecord {
    id: String,
    open: bool,
    body: DriftBody,
}

impl Stored for DriftRecord {
    const KIND: &'static str = "drift";
    const NOUN: &'static str = "drift record";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        if self.open { "open" } else { "cleared" }
    }
    /// The host whose check may clear it; "" for any server.
    fn owner(&self) -> &str {
        &self.body.observer
    }
    fn due(&self) -> Option<Timestamp> {
        None
    }
    fn encode(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.body)
    }
    fn decode(obj: &StateObject) -> serde_json::Result<DriftRecord> {
        Ok(DriftRecord { id: obj.id.clone(), open: obj.status == "open", body: serde_json::from_str(&obj.body)? })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DriftBody {
    finding: DriftFinding,
    /// The host whose check found it; "" when any server sees it.
    observer: String,
    /// When it was first recorded (this time round).
    since: Timestamp,
}

/// A finding's record id: its kind and subject.
fn drift_id(f: &DriftFinding) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(format!("{}\n{}", f.kind, f.subject).as_bytes());
    format!("dr_{}", hex::encode(&h[..12]))
}

/// Findings about repositories are seen only from their host.
fn observer(f: &DriftFinding, host: &str) -> String {
    // A sink is a file of one server's data directory: only its own check may clear it.
    if f.kind.starts_with("repo.") || f.kind.starts_with("ref.") || f.kind == "log.sink_truncated" {
        host.to_owned()
    } else {
        String::new()
    }
}

/// Runs the drift check at start and then every `interval` until `stop`
/// turns true, handing each result to `report`.
pub async fn run(
    service: Arc<Service>,
    interval: Duration,
    report: impl Fn(&DriftCheck) + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match service.run_drift_check().await {
            Ok(c) => {
                for f in &c.found {
                    tracing::warn!(kind = %f.kind, subject = %f.subject, "drift found: {}", f.what);
                }
                for f in &c.cleared {
                    tracing::info!(kind = %f.kind, subject = %f.subject, "drift cleared");
                }
                report(&c);
            }
            Err(e) => {
                metrics::counter!("breakglass_drift_check_failures_total").increment(1);
                tracing::error!(error = %e, "the drift check failed; it runs again at the next interval")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
