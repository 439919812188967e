//! Post-event reviews: opened in the same append as the end of the grant
//! they review (the [`OpenReview`] effect); their timeline assembled from the log (every entry
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
use serde_json::{Value, json};

use super::kernel::state::{filter, json_body, mutation};
use super::kernel::{
    Caller, Consequences, Effect, MAX_RETRIES, Result, Service, ServiceError, Stored, Transition, Versioned, internal,
};

/// The statuses of a review not yet decided.
const UNDECIDED: [&str; 2] = ["open", "overdue"];
/// Entries read from the log per query when assembling a timeline.
const SCAN_CHUNK: u64 = 1000;

fn review_error(e: ReviewError) -> ServiceError {
    match e {
        ReviewError::OwnGrant { .. } => ServiceError::Forbidden(e.to_string()),
        ReviewError::Decided { .. } => ServiceError::Conflict(e.to_string()),
        ReviewError::MissingNotes | ReviewError::BadText(_) => ServiceError::BadRequest(e.to_string()),
    }
}

impl Stored for Review {
    const KIND: &'static str = "review";
    const NOUN: &'static str = "review";

    fn id(&self) -> &str {
        &self.id
    }
    /// Open, overdue (escalated, still open), or how it was decided.
    fn status(&self) -> &str {
        match self.status {
            ReviewStatus::Open if self.escalated_at.is_some() => "overdue",
            s => s.as_str(),
        }
    }
    /// The grant's holder.
    fn owner(&self) -> &str {
        &self.principal
    }
    /// An open review falls due at its deadline, once.
    fn due(&self) -> Option<Timestamp> {
        (self.status == ReviewStatus::Open && self.escalated_at.is_none()).then_some(self.deadline)
    }
    json_body!();
}

/// The review effect: a grant that was active and has ended gets its
/// post-event review, opened in the same append as the end it reviews.
pub(crate) struct OpenReview;

impl Effect for OpenReview {
    fn name(&self) -> &'static str {
        "open-review"
    }

    fn within(&self, service: &Service, change: &Transition<'_>, add: &mut Consequences) -> Result<()> {
        if change.before != Some(GrantState::Active) {
            return Ok(());
        }
        let deadline_ms = service.config().review.deadline_ms;
        if let Some((review, entry)) = Review::open(change.grant, deadline_ms, change.now) {
            add.entries.push(entry);
            add.mutations.push(mutation(&review, 0)?);
        }
        Ok(())
    }
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
    /// Reviews held for `principal` that are past their deadline.
    pub async fn overdue_reviews(&self, principal: &str, now: Timestamp) -> Result<u32> {
        let held = self.objects::<Review>(&filter(&UNDECIDED, Some(principal), 10_000)).await?;
        Ok(held.iter().filter(|v| v.value.is_overdue(now)).count() as u32)
    }

    /// Escalates every review whose deadline passed: a `review.overdue`
    /// entry and `review_overdue` notifications, once each.
    pub async fn escalate_reviews(&self) -> Result<usize> {
        let now = self.now();
        let due = self.due::<Review>(&[ReviewStatus::Open.as_str()], now, 100).await?;
        let loaded = self.loaded();
        let mut n = 0;
        for Versioned { value: mut review, version } in due {
            let Some(draft) = review.escalate(now) else { continue };
            let escalated = mutation(&review, version)?;
            // A change about the grant that leaves it as it is: its effects
            // (the notification to reviewers) ride in the same append.
            let committed = match self.find::<Grant>(&review.grant).await? {
                Some(Versioned { value: grant, .. }) => {
                    let drafts = [draft];
                    let t =
                        Transition { grant: &grant, before: Some(grant.state), entries: &drafts, now, loaded: &loaded };
                    self.commit(None, &t, None, vec![escalated]).await?.is_some()
                }
                None => match self.append_with(vec![draft], vec![escalated]).await {
                    Ok(_) => true,
                    Err(AppendError::Conflict { .. }) => false,
                    Err(e) => return Err(e.into()),
                },
            };
            n += usize::from(committed);
        }
        Ok(n)
    }

    pub async fn next_review_due(&self) -> Result<Option<Timestamp>> {
        self.next_due_of::<Review>(&[ReviewStatus::Open.as_str()]).await
    }

    /// Reviews, newest first: all, only open ones, or only overdue ones.
    pub async fn reviews(&self, _caller: &Caller, open: bool, overdue: bool, limit: u32) -> Result<Vec<ReviewView>> {
        let statuses: &[&str] = if open || overdue { &UNDECIDED } else { &[] };
        let now = self.now();
        let stored = self.objects::<Review>(&filter(statuses, None, limit)).await?;
        Ok(stored
            .iter()
            .filter(|v| !overdue || v.value.is_overdue(now))
            .map(|v| view(&v.value, now, Vec::new()))
            .collect())
    }

    /// One review with its timeline.
    pub async fn review(&self, _caller: &Caller, id: &str) -> Result<ReviewView> {
        let review = self.read_review(id).await?.value;
        let timeline = self.timeline(&review.grant).await?;
        Ok(view(&review, self.now(), timeline))
    }

    async fn read_review(&self, id: &str) -> Result<Versioned<Review>> {
        // A grant id finds its review too.
        let id = if id.starts_with("gr_") || id.starts_with("gd_") {
            breakglass_core::review::review_id(id)
        } else {
            id.to_owned()
        };
        self.find::<Review>(&id).await?.ok_or_else(|| ServiceError::NotFound(format!("no review {id:?}")))
    }

    /// Every log entry naming `grant`, from its request on, in log order.
    pub async fn timeline(&self, grant: &str) -> Result<Vec<TimelineEntry>> {
        let indexes = self.history_of::<Grant>(grant).await?;
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
    pub async fn export_review(&self, caller: &Caller, id: &str) -> Result<Report> {
        if caller.ci.is_some() || caller.grant.is_some() {
            return Err(ServiceError::Forbidden("a CI job or grant token may not export reviews".into()));
        }
        let review = self.read_review(id).await?.value;
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
    ) -> Result<ReviewView> {
        if caller.role != crate::auth::Role::User {
            return Err(ServiceError::Forbidden("only a logged-in principal may review a grant".into()));
        }
        for _ in 0..MAX_RETRIES {
            let Versioned { value: mut review, version } = self.read_review(id).await?;
            let now = self.now();
            let loaded = self.loaded();
            if review.principal != caller.name {
                let scopes = review
                    .scopes
                    .iter()
                    .map(|s| Scope::parse(s).map_err(|e| internal("a stored review has a bad scope", e)))
                    .collect::<Result<Vec<_>>>()?;
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
            match self.append_by(caller, vec![draft], vec![mutation(&review, version)?]).await {
                Ok(_) => return Ok(view(&review, now, Vec::new())),
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("review {id} kept changing; try again")))
    }
}
