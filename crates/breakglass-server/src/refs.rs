//! What the log accounts for, per protected ref: the value `git install`
//! found (the baseline) and each value a recorded `git.push` produced. Drift
//! compares a repository's refs with the newest of these; a ref that moved
//! with no record (the hook removed, a push, the hook put back) stands out.
//!
//! Security-relevant bookkeeping: a ref record is written only in the same
//! commit as the log entry it derives from, so it never claims more than
//! the log holds.

use breakglass_core::api::{RefList, RefRecord};
use breakglass_store::{Mutation, ObjectFilter, StateObject};
use serde::{Deserialize, Serialize};

use crate::service::{Caller, REPO_KIND, Service, ServiceError};

pub const REF_KIND: &str = "ref";
/// Records kept per ref (spooled pushes arrive late and out of order; the
/// newest by the time it happened wins).
const HISTORY: usize = 32;

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefBody {
    repo: String,
    #[serde(rename = "ref")]
    refname: String,
    history: Vec<RefRecord>,
}

/// The object id of a ref record.
pub fn ref_id(repo: &str, refname: &str) -> String {
    format!("{repo}@{refname}")
}

fn internal(what: &str, e: impl std::fmt::Display) -> ServiceError {
    tracing::error!(error = %e, "{what}");
    ServiceError::Internal(format!("{what}; nothing was changed"))
}

/// The mutation adding `rec` to the ref's history (created when absent).
pub(crate) fn ref_mutation(
    existing: Option<&StateObject>,
    repo: &str,
    rec: RefRecord,
) -> Result<Mutation, ServiceError> {
    let mut body = match existing {
        Some(o) => serde_json::from_str(&o.body).map_err(|e| internal("a stored ref record is unreadable", e))?,
        None => RefBody { repo: repo.to_owned(), refname: rec.refname.clone(), history: Vec::new() },
    };
    let id = ref_id(repo, &rec.refname);
    // The parts of one push carry the same record.
    if !body.history.contains(&rec) {
        body.history.push(rec);
    }
    // Oldest first; a stable sort keeps arrival order between equal times.
    body.history.sort_by_key(|r| r.at);
    if body.history.len() > HISTORY {
        body.history.drain(..body.history.len() - HISTORY);
    }
    Ok(Mutation {
        kind: REF_KIND.into(),
        id,
        expected_version: existing.map_or(0, |o| o.version),
        status: "recorded".into(),
        owner: repo.to_owned(),
        due: None,
        body: serde_json::to_string(&body).map_err(|e| internal("cannot encode a ref record", e))?,
    })
}

impl Service {
    /// The newest recorded value of each protected ref of `repo`.
    pub async fn repo_refs(&self, caller: &Caller, repo: &str) -> Result<RefList, ServiceError> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not read repository records".into()));
        }
        if self.store().object(REPO_KIND, repo).await?.is_none() {
            return Err(ServiceError::NotFound(format!("repository {repo:?} is not registered")));
        }
        let filter = ObjectFilter { statuses: Vec::new(), owner: Some(repo.to_owned()), limit: 10_000 };
        let mut refs = Vec::new();
        for o in self.store().objects(REF_KIND, &filter).await? {
            let body: RefBody =
                serde_json::from_str(&o.body).map_err(|e| internal("a stored ref record is unreadable", e))?;
            refs.extend(body.history.into_iter().last());
        }
        refs.sort_by(|a, b| a.refname.cmp(&b.refname));
        Ok(RefList { repo: repo.to_owned(), refs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakglass_core::time::Timestamp;

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
        let m = ref_mutation(obj.as_ref(), "payments/api", r).unwrap();
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
