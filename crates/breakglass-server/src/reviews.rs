//! Post-event reviews: opened in the same transaction as the end of the
//! grant they review; their timeline assembled from the log (every entry
//! that names the grant, from its request to now, so events spooled and
//! delivered after the end are in it too); signed off by someone policy
//! allows to review who is not the grantee; escalated through the
//! notification outbox once overdue; counted per principal for policy
//! (`context.requester.overdue_reviews`).

use breakglass_core::api::{ReviewDecision, ReviewView, TimelineEntry};
use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::policy::ContextInput;
use breakglass_core::report::{ProvenEntry, REPORT_FORMAT, Report};
use breakglass_core::review::{Review, ReviewError, ReviewStatus};
use breakglass_core::scope::Scope;
use breakglass_core::time::Timestamp;
use breakglass_store::ledger::AppendError;
use breakglass_store::{Mutation, ObjectFilter, StateObject};
use serde_json::{Value, json};

use crate::service::{Caller, GRANT_KIND, Service, ServiceError};

pub const REVIEW_KIND: &str = "review";
/// Entries read from the log per query when assembling a timeline.
const SCAN_CHUNK: u64 = 1000;

/// Review settings.
#[derive(Clone, Debug)]
pub struct ReviewConfig {
    /// How long after a grant ends its review is due (ms).
    pub deadline_ms: i64,
}

impl Default for ReviewConfig {
    fn default() -> ReviewConfig {
        ReviewConfig { deadline_ms: 72 * 3_600_000 }
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ServiceError {
    tracing::error!(error = %e, "{what}");
    ServiceError::Internal(format!("{what}; nothing was changed"))
}

fn review_error(e: ReviewError) -> ServiceError {
    match e {
        ReviewError::OwnGrant { .. } => ServiceError::Forbidden(e.to_string()),
        ReviewError::Decided { .. } => ServiceError::Conflict(e.to_string()),
        ReviewError::MissingNotes | ReviewError::BadText(_) => ServiceError::BadRequest(e.to_string()),
    }
}

pub(crate) fn review_mutation(review: &Review, expected_version: u64) -> Result<Mutation, ServiceError> {
    let (status, due) = match review.status {
        ReviewStatus::Open if review.escalated_at.is_some() => ("overdue", None),
        ReviewStatus::Open => ("open", Some(review.deadline.0)),
        s => (s.as_str(), None),
    };
    Ok(Mutation {
        kind: REVIEW_KIND.into(),
        id: review.id.clone(),
        expected_version,
        status: status.into(),
        owner: review.principal.clone(),
        due,
        body: serde_json::to_string(review).map_err(|e| internal("cannot encode a review", e))?,
    })
}

fn parse(obj: &StateObject) -> Result<Review, ServiceError> {
    serde_json::from_str(&obj.body).map_err(|e| internal("a stored review is unreadable", e))
}

fn view(r: &Review, now: Timestamp, timeline: Vec<TimelineEntry>) -> ReviewView {
    ReviewView {
        id: r.id.clone(),
        grant: r.grant.clone(),
        principal: r.principal.clone(),
        scopes: r.scopes.clone(),
        status: r.status.as_str().into(),
        overdue: r.is_overdue(now),
        grant_end: r.grant_end.clone(),
        opened_at: r.opened_at,
        deadline: r.deadline,
        escalated_at: r.escalated_at,
        reviewer: r.reviewer.clone(),
        decided_at: r.decided_at,
        notes: r.notes.clone(),
        lessons: r.lessons.clone(),
        follow_ups: r.follow_ups.clone(),
        timeline,
    }
}

impl Service {
    /// The review a grant gets when this change ends it (it was active).
    pub(crate) fn review_on_end(
        &self,
        before: GrantState,
        grant: &Grant,
        now: Timestamp,
    ) -> Result<Option<(EntryDraft, Mutation)>, ServiceError> {
        if before != GrantState::Active {
            return Ok(None);
        }
        let Some((review, entry)) = Review::open(grant, self.config().review.deadline_ms, now) else { return Ok(None) };
        Ok(Some((entry, review_mutation(&review, 0)?)))
    }

    /// Reviews held for `principal` that are past their deadline.
    pub async fn overdue_reviews(&self, principal: &str) -> Result<u32, ServiceError> {
        let filter = ObjectFilter {
            statuses: vec!["open".into(), "overdue".into()],
            owner: Some(principal.to_owned()),
            limit: 10_000,
        };
        let now = self.now();
        let mut n = 0;
        for o in self.store().objects(REVIEW_KIND, &filter).await? {
            if parse(&o)?.is_overdue(now) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Escalates every review whose deadline passed: a `review.overdue`
    /// entry and `review_overdue` notifications, once each.
    pub async fn escalate_reviews(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let due = self.store().due_objects(REVIEW_KIND, &["open"], now.0, 100).await?;
        let mut n = 0;
        for obj in due {
            let mut review = parse(&obj)?;
            let Some(draft) = review.escalate(now) else { continue };
            let loaded = self.loaded();
            let mut mutations = vec![review_mutation(&review, obj.version)?];
            if let Some(g) = self.store().object(GRANT_KIND, &review.grant).await? {
                let grant: Grant =
                    serde_json::from_str(&g.body).map_err(|e| internal("a stored grant is unreadable", e))?;
                mutations.extend(self.notifications_for(&grant, std::slice::from_ref(&draft), now, &loaded)?);
            }
            match self.append_with(vec![draft], mutations).await {
                Ok(_) => {
                    n += 1;
                    self.notify_wake.notify_one();
                }
                Err(AppendError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    pub async fn next_review_due(&self) -> Result<Option<Timestamp>, ServiceError> {
        Ok(self.store().next_due(REVIEW_KIND, &["open"]).await?.map(Timestamp))
    }

    /// Reviews, newest first: all, only open ones, or only overdue ones.
    pub async fn reviews(
        &self,
        _caller: &Caller,
        open: bool,
        overdue: bool,
        limit: u32,
    ) -> Result<Vec<ReviewView>, ServiceError> {
        let statuses = if open || overdue { vec!["open".into(), "overdue".into()] } else { Vec::new() };
        let now = self.now();
        let mut out = Vec::new();
        for o in self.store().objects(REVIEW_KIND, &ObjectFilter { statuses, owner: None, limit }).await? {
            let r = parse(&o)?;
            if !overdue || r.is_overdue(now) {
                out.push(view(&r, now, Vec::new()));
            }
        }
        Ok(out)
    }

    /// One review with its timeline.
    pub async fn review(&self, _caller: &Caller, id: &str) -> Result<ReviewView, ServiceError> {
        let review = self.read_review(id).await?.0;
        let timeline = self.timeline(&review.grant).await?;
        Ok(view(&review, self.now(), timeline))
    }

    async fn read_review(&self, id: &str) -> Result<(Review, u64), ServiceError> {
        // A grant id finds its review too.
        let id = if id.starts_with("gr_") || id.starts_with("gd_") {
            breakglass_core::review::review_id(id)
        } else {
            id.to_owned()
        };
        let Some(obj) = self.store().object(REVIEW_KIND, &id).await? else {
            return Err(ServiceError::NotFound(format!("no review {id:?}")));
        };
        Ok((parse(&obj)?, obj.version))
    }

    /// Every log entry naming `grant`, from its request on, in log order.
    pub async fn timeline(&self, grant: &str) -> Result<Vec<TimelineEntry>, ServiceError> {
        let indexes = self.store().object_log(GRANT_KIND, grant).await?;
        let Some(&first) = indexes.first() else { return Ok(Vec::new()) };
        let head = self.store().head_size().await?;
        let mut out = Vec::new();
        let mut from = first;
        while from < head {
            let to = (from + SCAN_CHUNK).min(head);
            for rec in self.store().entries(from, to).await? {
                let v: Value =
                    serde_json::from_slice(&rec.data).map_err(|e| internal("a log entry is unreadable", e))?;
                if v.get("grant").and_then(Value::as_str) != Some(grant) {
                    continue;
                }
                let kind = v["kind"].as_str().unwrap_or("").to_owned();
                let actor = v["actor"].as_str().unwrap_or("").to_owned();
                out.push(TimelineEntry {
                    index: rec.index,
                    time: v["time"].as_str().unwrap_or("").to_owned(),
                    summary: breakglass_core::review::summarize(&kind, &actor, &v["data"]),
                    kind,
                    actor,
                    data: v["data"].clone(),
                });
            }
            from = to;
        }
        Ok(out)
    }

    /// A verifiable report of a review: the manifest (a `review.exported`
    /// entry listing the timeline) is logged first, then every entry is
    /// proven against one checkpoint that covers them all.
    pub async fn export_review(&self, caller: &Caller, id: &str) -> Result<Report, ServiceError> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not export reviews".into()));
        }
        let review = self.read_review(id).await?.0;
        let timeline = self.timeline(&review.grant).await?;
        let indexes: Vec<u64> = timeline.iter().map(|t| t.index).collect();
        let receipt = self
            .append(EntryDraft::new(
                &caller.name,
                "review.exported",
                json!({ "review": review.id, "grant": review.grant, "entries": indexes, "format": REPORT_FORMAT }),
            ))
            .await?;
        let reader = self.ledger().reader();
        let read = |e: breakglass_store::reader::ReadError| internal("cannot read the log for a report", e);
        let head = reader.head().await.map_err(read)?;
        let mut proven = Vec::with_capacity(indexes.len() + 1);
        for index in indexes.iter().copied().chain([receipt.index]) {
            let rec = reader.entry(index).await.map_err(read)?;
            let proof = reader.prove_inclusion(index, head.size).await.map_err(read)?;
            proven.push(ProvenEntry {
                index,
                entry: String::from_utf8(rec.data).map_err(|e| internal("a log entry is not UTF-8", e))?,
                proof: proof.iter().map(|h| h.to_base64()).collect(),
            });
        }
        let manifest = proven.pop().expect("the manifest was proven last");
        Ok(Report {
            format: REPORT_FORMAT.into(),
            review: view(&review, self.now(), timeline),
            origin: reader.origin().to_owned(),
            log_key: reader.verifier().to_string(),
            checkpoint: head.note,
            manifest,
            events: proven,
        })
    }

    /// Signs a review off (`approve`) or flags it.
    pub async fn decide_review(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        d: &ReviewDecision,
    ) -> Result<ReviewView, ServiceError> {
        if caller.role != crate::auth::Role::User {
            return Err(ServiceError::Forbidden("only a logged-in principal may review a grant".into()));
        }
        for _ in 0..8 {
            let (mut review, version) = self.read_review(id).await?;
            let now = self.now();
            let loaded = self.loaded();
            if review.principal != caller.name {
                let scopes = review
                    .scopes
                    .iter()
                    .map(|s| Scope::parse(s).map_err(|e| internal("a stored review has a bad scope", e)))
                    .collect::<Result<Vec<_>, _>>()?;
                let ctx = ContextInput { requester: review.principal.clone(), now, ..ContextInput::default() };
                let decision = loaded.policy.decide_review(&caller.name, &caller.groups, &scopes, &ctx);
                if !decision.allowed {
                    return Err(ServiceError::PolicyDenied {
                        message: format!("{} may not review grant {}", caller.name, review.grant),
                        reasons: if decision.errors.is_empty() {
                            vec![format!(
                                "no policy permits {} to review grants on {}",
                                caller.name,
                                review.scopes.join(", ")
                            )]
                        } else {
                            decision.errors.clone()
                        },
                    });
                }
            }
            let draft =
                review.decide(&caller.name, approve, &d.notes, &d.lessons, &d.follow_ups, now).map_err(review_error)?;
            match self.append_by(caller, vec![draft], vec![review_mutation(&review, version)?]).await {
                Ok(_) => return Ok(view(&review, now, Vec::new())),
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("review {id} kept changing; try again")))
    }
}
