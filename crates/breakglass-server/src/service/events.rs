//! What hooks and CI steps report (pushes, push decisions, gate outcomes,
//! deployments), recorded at most once per event id; the repositories whose
//! hooks `git install` wrote; and, per protected ref, the values the log
//! accounts for: the value `git install` found (the baseline) and each value
//! a recorded `git.push` produced. Drift compares a repository's refs with
//! the newest of these; a ref that moved with no record (the hook removed,
//! a push, the hook put back) stands out.
//!
//! Security: an event's every field is the reporter's (a service token on
//! the Git host, a CI job), so a CI job reports only its own pipeline's
//! `ci.*` events, as itself or its grant's holder. A ref record is written
//! only in the same append as the entry it derives from, so it never claims
//! more than the log holds.

use breakglass_core::api::{EventRecorded, EventRequest, RefList, RefRecord, RepoRegistration};
use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::Grant;
use breakglass_core::scope::Scope;
use breakglass_core::time::Timestamp;
use breakglass_store::ledger::AppendError;
use breakglass_store::{Mutation, ObjectFilter, StateObject};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::kernel::state::{filter, json_body, marker, mutation};
use super::kernel::{Caller, MAX_RETRIES, Result, Service, ServiceError, Stored, Versioned};
use crate::auth::Role;

/// Event ids already recorded (so a spooled event is recorded once).
pub const EVENT_KIND: &str = "event";

/// The kinds of event services may report.
pub const EVENT_KINDS: &[&str] = &["git.push.decision", "git.push", "ci.gate", "ci.deploy"];

/// Records kept per ref (spooled pushes arrive late and out of order; the
/// newest by the time it happened wins).
const HISTORY: usize = 32;

impl Stored for RepoRegistration {
    const KIND: &'static str = "repo";
    const NOUN: &'static str = "repository";

    fn id(&self) -> &str {
        &self.name
    }
    fn status(&self) -> &str {
        if self.installed { "installed" } else { "uninstalled" }
    }
    /// The host the hooks are installed on.
    fn owner(&self) -> &str {
        &self.host
    }
    fn due(&self) -> Option<Timestamp> {
        None
    }
    json_body!();
}

/// What the log accounts for of one protected ref: its recorded values,
/// oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RefBody {
    /// `<repo>@<ref>` (the object's id, not stored in the body).
    #[serde(skip)]
    id: String,
    repo: String,
    #[serde(rename = "ref")]
    refname: String,
    history: Vec<RefRecord>,
}

impl Stored for RefBody {
    const KIND: &'static str = "ref";
    const NOUN: &'static str = "ref record";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        "recorded"
    }
    /// The repository.
    fn owner(&self) -> &str {
        &self.repo
    }
    fn due(&self) -> Option<Timestamp> {
        None
    }
    fn encode(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
    fn decode(obj: &StateObject) -> serde_json::Result<RefBody> {
        Ok(RefBody { id: obj.id.clone(), ..serde_json::from_str(&obj.body)? })
    }
}

/// The object id of a ref record.
pub fn ref_id(repo: &str, refname: &str) -> String {
    format!("{repo}@{refname}")
}

/// `rec` added to the ref's history (`existing`, or a new one).
fn add_record(existing: Option<Versioned<RefBody>>, repo: &str, rec: RefRecord) -> Result<Mutation> {
    let (mut body, version) = match existing {
        Some(v) => (v.value, v.version),
        None => {
            let body = RefBody {
                id: ref_id(repo, &rec.refname),
                repo: repo.to_owned(),
                refname: rec.refname.clone(),
                history: Vec::new(),
            };
            (body, 0)
        }
    };
    // The parts of one push carry the same record.
    if !body.history.contains(&rec) {
        body.history.push(rec);
    }
    // Oldest first; a stable sort keeps arrival order between equal times.
    body.history.sort_by_key(|r| r.at);
    if body.history.len() > HISTORY {
        body.history.drain(..body.history.len() - HISTORY);
    }
    mutation(&body, version)
}

impl Service {
    /// The mutation adding `rec` to its ref's history (created when absent).
    pub(crate) async fn ref_mutation(&self, repo: &str, rec: RefRecord) -> Result<Mutation> {
        let existing = self.find::<RefBody>(&ref_id(repo, &rec.refname)).await?;
        add_record(existing, repo, rec)
    }

    /// The newest value the log accounts for of one ref, if any.
    pub(crate) async fn recorded_ref(&self, repo: &str, refname: &str) -> Result<Option<RefRecord>> {
        Ok(self.find::<RefBody>(&ref_id(repo, refname)).await?.and_then(|v| v.value.history.into_iter().last()))
    }

    /// The newest recorded value of each protected ref of `repo`.
    pub async fn repo_refs(&self, caller: &Caller, repo: &str) -> Result<RefList> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not read repository records".into()));
        }
        if self.find::<RepoRegistration>(repo).await?.is_none() {
            return Err(ServiceError::NotFound(format!("repository {repo:?} is not registered")));
        }
        let mut refs = Vec::new();
        for v in self.objects::<RefBody>(&filter(&[], Some(repo), 10_000)).await? {
            refs.extend(v.value.history.into_iter().last());
        }
        refs.sort_by(|a, b| a.refname.cmp(&b.refname));
        Ok(RefList { repo: repo.to_owned(), refs })
    }

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
                Some(g) => self.find::<Grant>(g).await?.map(|v| v.value.principal),
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
            && self.find::<Grant>(g).await?.is_none()
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
        // Recorded once: a second delivery fails this marker.
        let seen = marker(EVENT_KIND, &ev.id, "recorded", ev.grant.as_deref().unwrap_or_default(), None);
        for _ in 0..MAX_RETRIES {
            let mut mutations = vec![seen.clone()];
            if let Some((repo, rec)) = &moved {
                mutations.push(self.ref_mutation(repo, rec.clone()).await?);
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
            let existing = self.find::<RepoRegistration>(&reg.name).await?;
            let version = existing.as_ref().map_or(0, |v| v.version);
            if existing.is_some_and(|v| v.value == *reg) {
                return Ok(reg.clone());
            }
            let mut mutations = Vec::new();
            for (r, value) in &reg.refs {
                let rec = RefRecord {
                    refname: r.clone(),
                    value: value.clone(),
                    at: now,
                    source: "git.repo.installed".into(),
                    by: caller.name.clone(),
                    grant: None,
                };
                mutations.push(self.ref_mutation(&reg.name, rec).await?);
            }
            let m = mutation(reg, version)?;
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
        Ok(self.objects::<RepoRegistration>(&ObjectFilter::default()).await?.into_iter().map(|v| v.value).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &str, at: i64) -> RefRecord {
        RefRecord {
            refname: "refs/heads/main".into(),
            value: value.into(),
            at: Timestamp(at),
            source: "git.push".into(),
            by: "alice".into(),
            grant: None,
        }
    }

    fn apply(obj: Option<StateObject>, r: RefRecord) -> StateObject {
        let existing = obj.map(|o| Versioned { value: RefBody::decode(&o).unwrap(), version: o.version });
        let m = add_record(existing, "payments/api", r).unwrap();
        StateObject {
            kind: m.kind,
            id: m.id,
            version: m.expected_version + 1,
            status: m.status,
            owner: m.owner,
            due: m.due,
            body: m.body,
        }
    }

    fn newest(o: &StateObject) -> String {
        let b: RefBody = serde_json::from_str(&o.body).unwrap();
        b.history.last().unwrap().value.clone()
    }

    #[test]
    fn the_newest_by_time_wins_whatever_the_arrival_order() {
        let o = apply(None, rec("b", 2_000));
        assert_eq!((o.id.as_str(), o.owner.as_str(), o.version), ("payments/api@refs/heads/main", "payments/api", 1));
        // A spooled push that happened earlier arrives later.
        let o = apply(Some(o), rec("a", 1_000));
        assert_eq!(newest(&o), "b");
        let o = apply(Some(o), rec("c", 3_000));
        assert_eq!((newest(&o).as_str(), o.version), ("c", 3));
    }

    #[test]
    fn history_is_bounded() {
        let mut o = None;
        for i in 0..100 {
            o = Some(apply(o, rec(&format!("v{i}"), i)));
        }
        let b: RefBody = serde_json::from_str(&o.unwrap().body).unwrap();
        assert_eq!(b.history.len(), HISTORY);
        assert_eq!(b.history.last().unwrap().value, "v99");
    }
}
