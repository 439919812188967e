//! Drills against a live server (`breakglass drill --server`): a drill's
//! grant is a real grant, limited to drill scopes (repository or project
//! `breakglass-drill` or `breakglass-drill/...`), whose id starts `gd_` and
//! whose every log entry is marked `"drill": true`; the drill's result is a
//! `drill.completed` entry and a stored record `breakglass drill history`
//! lists.
//!
//! Security: the drill's runner controls its report; the scope limit is
//! what keeps a rehearsal from opening a real protected branch.

use breakglass_core::api::{DrillList, DrillRecord, DrillReport};
use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::Grant;
use breakglass_core::scope::Scope;
use breakglass_core::time::Timestamp;
use serde_json::json;

use super::kernel::state::{filter, json_body, mutation};
use super::kernel::{Caller, Effect, Result, Service, ServiceError, Stored, new_id};

/// Drill grants' ids start with this (then `_`).
pub const DRILL_GRANT_PREFIX: &str = "gd";
/// The name drill repositories and projects have, or start with (then `/`).
pub const DRILL_NAME: &str = "breakglass-drill";

/// Whether `scope` is on a drill repository or project.
pub fn is_drill_scope(scope: &Scope) -> bool {
    let name = match scope {
        Scope::Git { repo, .. } => repo,
        Scope::Pipeline { project, .. } => project,
    };
    name == DRILL_NAME || name.strip_prefix(DRILL_NAME).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether a grant id is a drill's.
pub fn is_drill_grant(id: &str) -> bool {
    id.strip_prefix(DRILL_GRANT_PREFIX).is_some_and(|rest| rest.starts_with('_'))
}

/// The drill effect: entries naming a drill grant are marked
/// `"drill": true`, whoever writes them (transitions, hook events, reviews).
pub(crate) struct MarkDrills;

impl Effect for MarkDrills {
    fn name(&self) -> &'static str {
        "mark-drills"
    }

    fn mark(&self, entries: &mut [EntryDraft]) {
        mark(entries)
    }
}

fn mark(drafts: &mut [EntryDraft]) {
    for d in drafts {
        if d.grant.as_deref().is_some_and(is_drill_grant)
            && let Some(obj) = d.data.as_object_mut()
        {
            obj.insert("drill".into(), json!(true));
        }
    }
}

impl Stored for DrillRecord {
    const KIND: &'static str = "drill";
    const NOUN: &'static str = "drill";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        if self.report.ok { "passed" } else { "failed" }
    }
    /// Who ran it.
    fn owner(&self) -> &str {
        &self.by
    }
    fn due(&self) -> Option<Timestamp> {
        None
    }
    json_body!();
}

fn micros(ms: f64) -> u64 {
    (ms * 1000.0).round() as u64
}

impl Service {
    /// `POST /v1/drills`: records a drill's result (its runner's own drill grant).
    pub async fn record_drill(&self, caller: &Caller, report: &DrillReport) -> Result<DrillRecord> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not record drills".into()));
        }
        if report.steps.is_empty() || report.steps.len() > 100 {
            return Err(ServiceError::BadRequest("a drill result has 1 to 100 steps".into()));
        }
        let too_long = report.steps.iter().any(|s| s.step.len() > 100 || s.detail.len() > 2000);
        let bad_time = !report.total_ms.is_finite()
            || report.total_ms < 0.0
            || report.steps.iter().any(|s| !s.ms.is_finite() || s.ms < 0.0);
        if too_long || bad_time {
            return Err(ServiceError::BadRequest(
                "drill steps need names of at most 100 characters, details of at most 2000 and times of at least 0 ms"
                    .into(),
            ));
        }
        if report.ok != report.steps.iter().all(|s| s.ok) {
            return Err(ServiceError::BadRequest("a drill is ok exactly when every step is".into()));
        }
        if let Some(g) = &report.grant {
            if !is_drill_grant(g) {
                return Err(ServiceError::BadRequest(format!("{g} is not a drill grant")));
            }
            match self.find::<Grant>(g).await? {
                Some(v) if v.value.principal == caller.name => {}
                _ => return Err(ServiceError::BadRequest(format!("{g} is not a drill grant of {}", caller.name))),
            }
        }
        let now = self.now();
        let id = new_id("dl", now)?;
        let mut draft = EntryDraft::new(
            &caller.name,
            "drill.completed",
            json!({
                "drill": true,
                "id": id,
                "ok": report.ok,
                // Log entries hold integers only: times in microseconds.
                "total_us": micros(report.total_ms),
                "steps": report.steps.iter().map(|s| json!({
                    "step": s.step, "us": micros(s.ms), "ok": s.ok, "detail": s.detail,
                })).collect::<Vec<_>>(),
                "failed": report.failed,
            }),
        );
        if let Some(g) = &report.grant {
            draft = draft.with_grant(g);
        }
        let mut record =
            DrillRecord { id: id.clone(), at: now, by: caller.name.clone(), index: None, report: report.clone() };
        let m = mutation(&record, 0)?;
        let receipt = self.append_by(caller, vec![draft], vec![m]).await?;
        record.index = Some(receipt.index);
        Ok(record)
    }

    /// `GET /v1/drills`: stored drill results, newest first.
    pub async fn drills(&self, caller: &Caller, limit: u32) -> Result<DrillList> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not read drills".into()));
        }
        let stored = self.objects::<DrillRecord>(&filter(&[], None, limit.clamp(1, 1000))).await?;
        Ok(DrillList { drills: stored.into_iter().map(|v| v.value).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_drill_repositories_and_projects_are_drill_scopes() {
        for (s, want) in [
            ("git:breakglass-drill@refs/heads/main", true),
            ("git:breakglass-drill/app@refs/heads/main", true),
            ("pipeline:breakglass-drill/app/test", true),
            ("git:breakglass-drills@refs/heads/main", false),
            ("git:payments/breakglass-drill@refs/heads/main", false),
            ("pipeline:payments/api/deploy@production", false),
        ] {
            assert_eq!(is_drill_scope(&Scope::parse(s).unwrap()), want, "{s}");
        }
    }

    #[test]
    fn entries_of_drill_grants_and_only_those_are_marked() {
        let mut drafts = vec![
            EntryDraft::new("alice", "grant.activated", json!({})).with_grant("gd_0abc"),
            EntryDraft::new("alice", "grant.activated", json!({})).with_grant("gr_0abc"),
            EntryDraft::new("alice", "policy.reloaded", json!({})),
            EntryDraft::new("alice", "git.push", json!({})).with_grant("gdx_0abc"),
        ];
        mark(&mut drafts);
        let marked: Vec<bool> = drafts.iter().map(|d| d.data.get("drill").is_some()).collect();
        assert_eq!(marked, [true, false, false, false]);
    }
}
