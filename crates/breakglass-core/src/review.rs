//! Post-event reviews: when an active grant ends (expiry, revocation, its
//! incident resolving), a review opens with a deadline; someone other than
//! the grantee, whom policy allows to review, signs it off or flags it, with
//! notes, lessons learned and follow-up actions. Each step returns its log
//! entry, like the grant state machine. No IO; time is a parameter.
//!
//! Security: notes, lessons and follow-ups are read by others in terminals
//! and reports, so a decision with a control or invisible character in them
//! is refused ([`crate::text`]): notes are prose (newlines and tabs
//! allowed), each lesson and follow-up is one line (a newline would fake a
//! list item of its own).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::entry::EntryDraft;
use crate::grant::{Grant, GrantState};
use crate::text::{self, Lines, TextError};
use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for a reviewer (overdue once past its deadline).
    Open,
    /// Signed off: what was done was right.
    Approved,
    /// Signed off with concerns: something needs follow-up.
    Flagged,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Flagged => "flagged",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// `rv_` and the grant id's suffix: one review per grant.
    pub id: String,
    pub grant: String,
    /// The grantee, who may not review their own use.
    pub principal: String,
    pub scopes: Vec<String>,
    /// How the grant ended: `expired` or `revoked` (with its reason).
    pub grant_end: String,
    pub opened_at: Timestamp,
    pub deadline: Timestamp,
    pub status: ReviewStatus,
    /// When the overdue review was escalated (once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lessons: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("{who} held grant {grant} and cannot review it; another reviewer must")]
    OwnGrant { who: String, grant: String },
    #[error("review {id} is already {status}")]
    Decided { id: String, status: &'static str },
    #[error("notes are required: say what was checked and what was found")]
    MissingNotes,
    #[error("{0}")]
    BadText(#[from] TextError),
}

/// The review id of a grant.
pub fn review_id(grant_id: &str) -> String {
    match grant_id.strip_prefix("gd_") {
        // A drill grant's review is a drill review.
        Some(rest) => format!("rd_{rest}"),
        None => format!("rv_{}", grant_id.strip_prefix("gr_").unwrap_or(grant_id)),
    }
}

impl Review {
    /// The review a grant gets when it ends, if it was ever active: a grant
    /// nobody used (denied, lapsed) has nothing to review.
    pub fn open(grant: &Grant, deadline_ms: i64, now: Timestamp) -> Option<(Review, EntryDraft)> {
        if !matches!(grant.state, GrantState::Expired | GrantState::Revoked) || grant.activated_at.is_none() {
            return None;
        }
        let end = match (&grant.state, &grant.end_reason) {
            (GrantState::Revoked, Some(r)) => format!("revoked: {r}"),
            (_, Some(r)) if r != "expired" => format!("expired: {r}"),
            (s, _) => s.as_str().to_owned(),
        };
        let review = Review {
            id: review_id(&grant.id),
            grant: grant.id.clone(),
            principal: grant.principal.clone(),
            scopes: grant.scopes.clone(),
            grant_end: end,
            opened_at: now,
            deadline: Timestamp(now.0.saturating_add(deadline_ms)),
            status: ReviewStatus::Open,
            escalated_at: None,
            reviewer: None,
            decided_at: None,
            notes: String::new(),
            lessons: Vec::new(),
            follow_ups: Vec::new(),
        };
        let entry = EntryDraft::new(
            "breakglass",
            "review.opened",
            json!({ "review": review.id, "grantee": review.principal, "deadline": review.deadline.to_rfc3339(), "grant_end": review.grant_end }),
        )
        .with_grant(&grant.id);
        Some((review, entry))
    }

    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.status == ReviewStatus::Open && now >= self.deadline
    }

    /// Signs the review off (`approve`) or flags it, as `reviewer`.
    pub fn decide(
        &mut self,
        reviewer: &str,
        approve: bool,
        notes: &str,
        lessons: &[String],
        follow_ups: &[String],
        now: Timestamp,
    ) -> Result<EntryDraft, ReviewError> {
        if reviewer == self.principal {
            return Err(ReviewError::OwnGrant { who: reviewer.to_owned(), grant: self.grant.clone() });
        }
        if self.status != ReviewStatus::Open {
            return Err(ReviewError::Decided { id: self.id.clone(), status: self.status.as_str() });
        }
        if notes.trim().is_empty() {
            return Err(ReviewError::MissingNotes);
        }
        text::check("notes", notes, Lines::Multi)?;
        text::check_each("lessons", lessons, Lines::Single)?;
        text::check_each("follow_ups", follow_ups, Lines::Single)?;
        let late_ms = (now.0 - self.deadline.0).max(0);
        self.status = if approve { ReviewStatus::Approved } else { ReviewStatus::Flagged };
        self.reviewer = Some(reviewer.to_owned());
        self.decided_at = Some(now);
        self.notes = notes.trim().to_owned();
        self.lessons = lessons.iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
        self.follow_ups = follow_ups.iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
        Ok(EntryDraft::new(
            reviewer,
            if approve { "review.approved" } else { "review.flagged" },
            json!({
                "review": self.id,
                "notes": self.notes,
                "lessons": self.lessons,
                "follow_ups": self.follow_ups,
                "late_ms": late_ms,
            }),
        )
        .with_grant(&self.grant))
    }

    /// Marks an overdue review as escalated, once; the entry says so.
    pub fn escalate(&mut self, now: Timestamp) -> Option<EntryDraft> {
        if !self.is_overdue(now) || self.escalated_at.is_some() {
            return None;
        }
        self.escalated_at = Some(now);
        Some(
            EntryDraft::new(
                "breakglass",
                "review.overdue",
                json!({ "review": self.id, "grantee": self.principal, "deadline": self.deadline.to_rfc3339() }),
            )
            .with_grant(&self.grant),
        )
    }

    /// When something must next happen to it: escalation at the deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        (self.status == ReviewStatus::Open && self.escalated_at.is_none()).then_some(self.deadline)
    }
}

/// One line for people about a log entry.
pub fn summarize(kind: &str, actor: &str, d: &Value) -> String {
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    match kind {
        "grant.requested" => {
            format!("{actor} requested {} on {}: {}", list(&d["capabilities"]), list(&d["scopes"]), s("reason"))
        }
        "grant.approved" => format!("{actor} approved"),
        "grant.activated" => format!("active ({}) until {}", s("how"), s("expires_at")),
        "grant.extended" => format!("{actor} extended it to {}: {}", s("expires_at"), s("reason")),
        "grant.ending" => format!("ends early at {}: {}", s("expires_at"), s("cause")),
        "grant.expired" => format!("expired at {}", s("at")),
        "grant.revoked" => format!("{actor} revoked it: {}", s("reason")),
        "grant.token_issued" => format!("{actor} took a grant token (expires {})", s("expires_at")),
        "git.push" => {
            let files: usize = d["commits"]
                .as_array()
                .map_or(0, |c| c.iter().map(|c| c["files"].as_array().map_or(0, Vec::len)).sum());
            format!(
                "{actor} pushed {} commit(s) to {} of {} ({} file change(s))",
                d["commit_count"].as_u64().unwrap_or(0),
                s("ref"),
                s("repo"),
                files
            )
        }
        "git.push.decision" => format!("push to {} of {}: {}", s("ref"), s("repo"), s("decision")),
        "ci.gate" => format!(
            "gate {} on {}: {} (outcome {}, exit {})",
            s("gate"),
            s("scope"),
            s("mode"),
            s("outcome"),
            d["exit_code"].as_i64().map_or("-".into(), |c| c.to_string())
        ),
        "ci.deploy" => format!("deployed {} to {}", s("commit"), s("scope")),
        "review.opened" => format!("review opened, due {}", s("deadline")),
        "review.overdue" => "review overdue; escalated".into(),
        "review.approved" | "review.flagged" => format!("{actor} {}: {}", &kind[7..], s("notes")),
        _ => kind.to_owned(),
    }
}

fn list(v: &Value) -> String {
    v.as_array().map_or(String::new(), |a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{Request, Terms};

    const T: Timestamp = Timestamp(1_795_262_400_000);
    const MIN: i64 = 60_000;

    fn ended(state: &str) -> Grant {
        let (mut g, _) = Grant::request(
            Request {
                id: "gr_abc".into(),
                principal: "alice".into(),
                scopes: vec!["git:payments/api@refs/heads/main".into()],
                capabilities: vec!["push".into()],
                duration_ms: 30 * MIN,
                reason: "INC-42".into(),
                incident: None,
            },
            &Terms { max_duration_ms: 60 * MIN, approvals_required: 0, pending_ttl_ms: 15 * MIN },
            T,
        )
        .unwrap();
        match state {
            "revoked" => {
                g.revoke("bob", "fixed", Timestamp(T.0 + MIN)).unwrap();
            }
            _ => {
                g.expire(Timestamp(T.0 + 31 * MIN)).unwrap();
            }
        }
        g
    }

    #[test]
    fn a_review_opens_when_a_used_grant_ends_and_only_another_person_signs_it_off() {
        let g = ended("expired");
        let now = Timestamp(T.0 + 31 * MIN);
        let (mut r, e) = Review::open(&g, 72 * 60 * MIN, now).unwrap();
        e.validate().unwrap();
        assert_eq!((r.id.as_str(), e.kind.as_str(), e.grant.as_deref()), ("rv_abc", "review.opened", Some("gr_abc")));
        assert_eq!(r.deadline, Timestamp(now.0 + 72 * 60 * MIN));
        assert!(matches!(r.decide("alice", true, "fine", &[], &[], now), Err(ReviewError::OwnGrant { .. })));
        assert_eq!(r.decide("bob", true, "  ", &[], &[], now), Err(ReviewError::MissingNotes));
        let e =
            r.decide("bob", false, "pushed without a test", &["add a canary".into()], &["JIRA-1".into()], now).unwrap();
        assert_eq!((e.kind.as_str(), r.status), ("review.flagged", ReviewStatus::Flagged));
        assert!(matches!(r.decide("carol", true, "ok", &[], &[], now), Err(ReviewError::Decided { .. })));
        let (r, _) = Review::open(&ended("revoked"), MIN, now).unwrap();
        assert_eq!(r.grant_end, "revoked: fixed");
    }

    #[test]
    fn issue14_control_characters_in_a_decision_are_refused_and_nothing_changes() {
        let now = Timestamp(T.0 + 31 * MIN);
        let (mut r, _) = Review::open(&ended("expired"), 72 * 60 * MIN, now).unwrap();
        let esc = "\u{1b}]0;pwned\u{7}".to_owned();
        for (notes, lessons, follow_ups, field) in [
            (format!("fine{esc}"), vec![], vec![], "notes: character 5 is U+001B"),
            ("fine\r\u{1b}[2K".to_owned(), vec![], vec![], "notes: character 5 is U+000D"),
            (
                "fine".to_owned(),
                vec!["ok".to_owned(), "two\nlines".to_owned()],
                vec![],
                "lessons[1]: character 4 is U+000A",
            ),
            ("fine".to_owned(), vec![], vec![format!("JIRA-1{esc}")], "follow_ups[0]: character 7 is U+001B"),
        ] {
            let err = r.decide("bob", true, &notes, &lessons, &follow_ups, now).unwrap_err();
            assert!(matches!(err, ReviewError::BadText(_)), "{err}");
            assert!(err.to_string().starts_with(field), "{err}");
            assert_eq!(r.status, ReviewStatus::Open, "a refused decision changes nothing");
        }
        // Notes are prose: newlines and tabs are fine there.
        r.decide("bob", true, "checked:\n\t- the push\n\t- the deploy", &[], &[], now).unwrap();
        assert_eq!(r.status, ReviewStatus::Approved);
    }

    #[test]
    fn overdue_reviews_escalate_once() {
        let g = ended("expired");
        let (mut r, _) = Review::open(&g, 10 * MIN, T).unwrap();
        assert!(r.escalate(Timestamp(T.0 + 9 * MIN)).is_none());
        assert!(r.is_overdue(Timestamp(T.0 + 10 * MIN)));
        assert_eq!(r.escalate(Timestamp(T.0 + 11 * MIN)).unwrap().kind, "review.overdue");
        assert!(r.escalate(Timestamp(T.0 + 12 * MIN)).is_none());
        assert_eq!(r.next_deadline(), None);
        assert!(r.is_overdue(Timestamp(T.0 + 12 * MIN)), "still overdue until signed off");
    }

    #[test]
    fn unused_grants_get_no_review() {
        let (g, _) = Grant::request(
            Request {
                id: "gr_p".into(),
                principal: "alice".into(),
                scopes: vec!["git:a/b@refs/heads/main".into()],
                capabilities: vec!["push".into()],
                duration_ms: MIN,
                reason: "x".into(),
                incident: None,
            },
            &Terms { max_duration_ms: MIN, approvals_required: 1, pending_ttl_ms: MIN },
            T,
        )
        .unwrap();
        assert!(Review::open(&g, MIN, T).is_none());
    }
}
