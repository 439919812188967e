//! Grants and their state machine: request, approval, activation, extension,
//! revocation, expiry and lapse, as pure functions of the grant, the actor
//! and the time. Every transition returns the audit entries it must write;
//! the store writes them in the same transaction as the new state, so no
//! state exists that the log does not show.
//!
//! Security: the requester and the approvers drive every transition, so
//! these rules are the product's promises: a grant is active from activation (not
//! from request) until its expiry and never past it, whatever the state
//! column says ([`Grant::is_effective`] compares times); nobody approves
//! their own request or approves twice; extensions need a reason and never
//! take the total past the policy maximum; pending requests lapse; there are
//! no permanent grants.
//!
//! Security: the reasons here are written by one person and read by another
//! (the approver, the reviewer), so every constructor refuses control and
//! invisible format characters in them ([`crate::text`]; newlines allowed), a
//! scope or capability named twice, and an incident that is not
//! `<source>:<provider id>`. The server calls these constructors for every
//! request, denial, revocation and extension, so the check holds on every path.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::entry::EntryDraft;
use crate::text::{self, Lines, TextError};
use crate::time::Timestamp;

/// Where a grant is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// Requested; waiting for approvals.
    Pending,
    /// Approved and within its window.
    Active,
    /// Ended at its expiry time.
    Expired,
    /// Ended early by someone.
    Revoked,
    /// Refused by an approver.
    Denied,
    /// Not approved in time.
    Lapsed,
}

impl GrantState {
    pub fn is_final(self) -> bool {
        !matches!(self, GrantState::Pending | GrantState::Active)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Pending => "pending",
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
            GrantState::Denied => "denied",
            GrantState::Lapsed => "lapsed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    pub by: String,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Extension {
    pub by: String,
    pub at: Timestamp,
    pub added_ms: i64,
    pub reason: String,
}

/// What policy decided for a request, as the grant needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// The longest the grant may be active in total, extensions included.
    pub max_duration_ms: i64,
    /// Distinct approvals needed before activation; 0 means it activates at once.
    pub approvals_required: u32,
    /// How long a pending request waits for approvals before it lapses.
    pub pending_ttl_ms: i64,
}

/// A request for elevated access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub principal: String,
    pub scopes: Vec<String>,
    pub capabilities: Vec<String>,
    pub duration_ms: i64,
    pub reason: String,
    pub incident: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub principal: String,
    pub scopes: Vec<String>,
    pub capabilities: Vec<String>,
    pub reason: String,
    pub incident: Option<String>,
    pub state: GrantState,
    pub requested_at: Timestamp,
    /// The duration asked for; the window is this long from activation.
    pub duration_ms: i64,
    pub max_duration_ms: i64,
    pub approvals_required: u32,
    pub approvals: Vec<Approval>,
    /// A pending request lapses at this time.
    pub pending_until: Timestamp,
    pub activated_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub extensions: Vec<Extension>,
    pub ended_at: Option<Timestamp>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    /// Set when something outside the grant brought its expiry forward (its
    /// incident resolved): why. The grant then ends at its (new) expiry with
    /// this as its reason, and may no longer be extended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_cause: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("a reason is required")]
    MissingReason,
    #[error("a grant needs at least one scope and one capability")]
    NothingRequested,
    #[error("requested duration {asked_ms} ms is not positive")]
    BadDuration { asked_ms: i64 },
    #[error("requested duration {asked} exceeds the policy maximum of {max}")]
    OverMaximum { asked: String, max: String },
    #[error("grant {id} is {state}, not {wanted}")]
    WrongState { id: String, state: &'static str, wanted: &'static str },
    #[error("{who} requested grant {id} and cannot approve it")]
    SelfApproval { id: String, who: String },
    #[error("grant {id} is ending early ({cause}) and cannot be extended; request a new grant")]
    EndingEarly { id: String, cause: String },
    #[error("{who} has already approved grant {id}")]
    DuplicateApproval { id: String, who: String },
    #[error("grant {id} was not approved in time: the request lapsed at {at}")]
    RequestLapsed { id: String, at: Timestamp },
    #[error("grant {id} expired at {at}")]
    AlreadyExpired { id: String, at: Timestamp },
    #[error("extending grant {id} by {by} would make it {total} in total, over the policy maximum of {max}")]
    ExtensionOverMaximum { id: String, by: String, total: String, max: String },
    /// A reason with a control or invisible character (see [`crate::text`]).
    #[error("{0}")]
    BadText(#[from] TextError),
    #[error("{what} {item:?} is listed twice; name each {what} once")]
    Duplicate { what: &'static str, item: String },
    #[error("incident {given:?} is not an incident id: {problem}")]
    BadIncident { given: String, problem: String },
}

/// `90m`, `1h30m`, `45s`: for messages.
pub fn human_duration(ms: i64) -> String {
    let s = ms / 1000;
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// Parses `30m`, `1h`, `1h30m`, `90s`, `2h15m30s`: positive, at most a week.
/// Strict: each of `h`, `m` and `s` at most once and in that order, so that
/// `30m30m` (which a lenient reader would add up to an hour) or `30s1h` is
/// refused rather than guessed at.
pub fn parse_duration(input: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {input:?}: expected a number followed by s, m or h, like 30m or 1h30m");
    let mut total: i64 = 0;
    let mut digits = String::new();
    // The units already written, largest first: h = 0, m = 1, s = 2.
    let mut last_unit: Option<usize> = None;
    for c in input.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, unit) = match c {
            'h' => (0, 3_600_000),
            'm' => (1, 60_000),
            's' => (2, 1_000),
            _ => return Err(bad()),
        };
        if let Some(last) = last_unit
            && rank <= last
        {
            let problem = if rank == last {
                format!("the unit {c} is written twice")
            } else {
                format!("{c} comes after a smaller unit")
            };
            return Err(format!(
                "invalid duration {input:?}: {problem}; write each of h, m and s at most once, in that order, like 1h30m"
            ));
        }
        last_unit = Some(rank);
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    if !digits.is_empty() || total <= 0 {
        return Err(bad());
    }
    if total > 7 * 24 * 3_600_000 {
        return Err(format!("invalid duration {input:?}: more than a week is not break-glass access"));
    }
    Ok(total)
}

/// Refuses a list that names an item twice (`what` names the kind of item).
fn refuse_duplicates(what: &'static str, items: &[String]) -> Result<(), GrantError> {
    for (idx, item) in items.iter().enumerate() {
        if items[..idx].contains(item) {
            return Err(GrantError::Duplicate { what, item: item.clone() });
        }
    }
    Ok(())
}

/// A reason: not blank, printable text. A reason may span lines (an
/// incident write-up; CI outputs carry it in the heredoc form), so newlines
/// and tabs are allowed; carriage returns and every other control character
/// are not, and displays show the newlines escaped on one line.
fn check_reason(field: &str, reason: &str) -> Result<(), GrantError> {
    if reason.trim().is_empty() {
        return Err(GrantError::MissingReason);
    }
    text::check(field, reason, Lines::Multi)?;
    Ok(())
}

/// The checks of [`Grant::request`] that need no policy: the reason (not
/// blank, one line of printable text) and no scope or capability named
/// twice. The server runs them before it asks policy, so that a request
/// policy refuses (whose refusal is logged with its reason) is held to them too.
pub fn check_request_fields(reason: &str, scopes: &[String], capabilities: &[String]) -> Result<(), GrantError> {
    check_reason("reason", reason)?;
    refuse_duplicates("scope", scopes)?;
    refuse_duplicates("capability", capabilities)
}

/// Checks an approval's optional comment: printable text, newlines and tabs
/// allowed, as in a reason (see [`crate::text`]). The server records the comment beside the approval
/// entry, so it calls this before [`Grant::approve`].
pub fn check_comment(comment: &str) -> Result<(), GrantError> {
    text::check("comment", comment, Lines::Multi)?;
    Ok(())
}

fn entry(grant: &Grant, actor: &str, kind: &str, data: serde_json::Value) -> EntryDraft {
    EntryDraft::new(actor, kind, data).with_grant(grant.id.clone())
}

impl Grant {
    /// Opens a request under the terms policy gave it. When no approvals are
    /// required it activates at once (the activation entry follows the
    /// request entry, in the same batch).
    pub fn request(req: Request, terms: &Terms, now: Timestamp) -> Result<(Grant, Vec<EntryDraft>), GrantError> {
        if req.scopes.is_empty() || req.capabilities.is_empty() {
            check_reason("reason", &req.reason)?;
            return Err(GrantError::NothingRequested);
        }
        check_request_fields(&req.reason, &req.scopes, &req.capabilities)?;
        if let Some(incident) = &req.incident {
            crate::incident::check_incident_id(incident)
                .map_err(|problem| GrantError::BadIncident { given: text::escape(incident).into_owned(), problem })?;
        }
        if req.duration_ms <= 0 {
            return Err(GrantError::BadDuration { asked_ms: req.duration_ms });
        }
        if req.duration_ms > terms.max_duration_ms {
            return Err(GrantError::OverMaximum {
                asked: human_duration(req.duration_ms),
                max: human_duration(terms.max_duration_ms),
            });
        }
        let mut grant = Grant {
            id: req.id,
            principal: req.principal,
            scopes: req.scopes,
            capabilities: req.capabilities,
            reason: req.reason,
            incident: req.incident,
            state: GrantState::Pending,
            requested_at: now,
            duration_ms: req.duration_ms,
            max_duration_ms: terms.max_duration_ms,
            approvals_required: terms.approvals_required,
            approvals: Vec::new(),
            pending_until: Timestamp(now.0.saturating_add(terms.pending_ttl_ms)),
            activated_at: None,
            expires_at: None,
            extensions: Vec::new(),
            ended_at: None,
            ended_by: None,
            end_reason: None,
            end_cause: None,
        };
        let mut entries = vec![entry(
            &grant,
            &grant.principal,
            "grant.requested",
            json!({
                "scopes": grant.scopes,
                "capabilities": grant.capabilities,
                "duration_ms": grant.duration_ms,
                "max_duration_ms": grant.max_duration_ms,
                "approvals_required": grant.approvals_required,
                "reason": grant.reason,
                "incident": grant.incident,
            }),
        )];
        if grant.approvals_required == 0 {
            entries.push(grant.activate(now, "auto-approved"));
        }
        Ok((grant, entries))
    }

    fn activate(&mut self, now: Timestamp, how: &str) -> EntryDraft {
        self.state = GrantState::Active;
        self.activated_at = Some(now);
        let expires = Timestamp(now.0.saturating_add(self.duration_ms));
        self.expires_at = Some(expires);
        entry(
            self,
            &self.principal,
            "grant.activated",
            json!({ "how": how, "activated_at": now.to_rfc3339(), "expires_at": expires.to_rfc3339() }),
        )
    }

    fn require(&self, wanted: GrantState) -> Result<(), GrantError> {
        if self.state != wanted {
            return Err(GrantError::WrongState {
                id: self.id.clone(),
                state: self.state.as_str(),
                wanted: wanted.as_str(),
            });
        }
        Ok(())
    }

    /// Records an approval by `by`; the last required one activates the grant.
    pub fn approve(&mut self, by: &str, now: Timestamp) -> Result<Vec<EntryDraft>, GrantError> {
        self.require(GrantState::Pending)?;
        if now >= self.pending_until {
            return Err(GrantError::RequestLapsed { id: self.id.clone(), at: self.pending_until });
        }
        if by == self.principal {
            return Err(GrantError::SelfApproval { id: self.id.clone(), who: by.to_owned() });
        }
        if self.approvals.iter().any(|a| a.by == by) {
            return Err(GrantError::DuplicateApproval { id: self.id.clone(), who: by.to_owned() });
        }
        self.approvals.push(Approval { by: by.to_owned(), at: now });
        let mut entries = vec![entry(
            self,
            by,
            "grant.approved",
            json!({ "approvals": self.approvals.len(), "approvals_required": self.approvals_required }),
        )];
        if self.approvals.len() as u32 >= self.approvals_required {
            entries.push(self.activate(now, "approved"));
        }
        Ok(entries)
    }

    /// Refuses a pending request.
    pub fn deny(&mut self, by: &str, reason: &str, now: Timestamp) -> Result<Vec<EntryDraft>, GrantError> {
        self.require(GrantState::Pending)?;
        if by == self.principal {
            return Err(GrantError::SelfApproval { id: self.id.clone(), who: by.to_owned() });
        }
        check_reason("reason", reason)?;
        self.end(GrantState::Denied, by, reason, now);
        Ok(vec![entry(self, by, "grant.denied", json!({ "reason": reason }))])
    }

    /// Ends an active grant early (or withdraws a pending request).
    pub fn revoke(&mut self, by: &str, reason: &str, now: Timestamp) -> Result<Vec<EntryDraft>, GrantError> {
        check_reason("reason", reason)?;
        // An active grant whose time is up has expired, whatever the column
        // says: that is recorded as expiry, at its exact time.
        if let Some(expired) = self.expire(now) {
            return Err(GrantError::AlreadyExpired { id: self.id.clone(), at: expired.1 });
        }
        if self.state != GrantState::Active && self.state != GrantState::Pending {
            return Err(GrantError::WrongState { id: self.id.clone(), state: self.state.as_str(), wanted: "active" });
        }
        let was = self.state;
        self.end(GrantState::Revoked, by, reason, now);
        Ok(vec![entry(
            self,
            by,
            "grant.revoked",
            json!({ "reason": reason, "was": was.as_str(), "at": now.to_rfc3339() }),
        )])
    }

    /// Extends an active grant; a reason is required and the total active
    /// time may never pass the policy maximum.
    pub fn extend(
        &mut self,
        by: &str,
        added_ms: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<EntryDraft>, GrantError> {
        check_reason("reason", reason)?;
        if added_ms <= 0 {
            return Err(GrantError::BadDuration { asked_ms: added_ms });
        }
        if let Some((_, at)) = self.expire(now) {
            return Err(GrantError::AlreadyExpired { id: self.id.clone(), at });
        }
        self.require(GrantState::Active)?;
        if let Some(cause) = &self.end_cause {
            return Err(GrantError::EndingEarly { id: self.id.clone(), cause: cause.clone() });
        }
        let (Some(start), Some(end)) = (self.activated_at, self.expires_at) else {
            return Err(GrantError::WrongState {
                id: self.id.clone(),
                state: "active without a window",
                wanted: "active",
            });
        };
        let total = end.0 - start.0 + added_ms;
        if total > self.max_duration_ms {
            return Err(GrantError::ExtensionOverMaximum {
                id: self.id.clone(),
                by: human_duration(added_ms),
                total: human_duration(total),
                max: human_duration(self.max_duration_ms),
            });
        }
        let new_end = Timestamp(end.0 + added_ms);
        self.expires_at = Some(new_end);
        self.extensions.push(Extension { by: by.to_owned(), at: now, added_ms, reason: reason.to_owned() });
        Ok(vec![entry(
            self,
            by,
            "grant.extended",
            json!({ "added_ms": added_ms, "reason": reason, "expires_at": new_end.to_rfc3339() }),
        )])
    }

    /// Brings an active grant's expiry forward to `at` (not before `now`)
    /// because of `cause` (its incident resolved), and returns the entry that
    /// says so; the grant then ends by itself at that time, exactly like an
    /// expiry, with `cause` as its reason. `None` when there is nothing to do:
    /// the grant is not active, or already ends by then for this cause.
    /// Idempotent, so a re-delivered resolution changes nothing.
    pub fn end_early(&mut self, at: Timestamp, cause: &str, now: Timestamp) -> Option<EntryDraft> {
        if self.state != GrantState::Active {
            return None;
        }
        let end = self.expires_at?;
        let at = at.max(now);
        if end <= at {
            return None;
        }
        self.expires_at = Some(at);
        self.end_cause = Some(cause.to_owned());
        Some(entry(
            self,
            "breakglass",
            "grant.ending",
            json!({ "expires_at": at.to_rfc3339(), "was": end.to_rfc3339(), "cause": cause }),
        ))
    }

    /// If the grant's time is up at `now`, ends it — an active grant at its
    /// exact expiry time, a pending request at its lapse time — and returns
    /// the entry and the time it ended. Idempotent: `None` when nothing is due.
    pub fn expire(&mut self, now: Timestamp) -> Option<(EntryDraft, Timestamp)> {
        match self.state {
            GrantState::Active => {
                let end = self.expires_at?;
                if now < end {
                    return None;
                }
                let cause = self.end_cause.clone();
                self.end(GrantState::Expired, "breakglass", cause.as_deref().unwrap_or("expired"), end);
                let late_ms = now.0 - end.0;
                let mut data = json!({ "at": end.to_rfc3339(), "noticed_late_ms": late_ms });
                if let Some(cause) = cause {
                    data["cause"] = json!(cause);
                }
                Some((entry(self, "breakglass", "grant.expired", data), end))
            }
            GrantState::Pending => {
                if now < self.pending_until {
                    return None;
                }
                let at = self.pending_until;
                self.end(GrantState::Lapsed, "breakglass", "not approved in time", at);
                Some((entry(self, "breakglass", "grant.lapsed", json!({ "at": at.to_rfc3339() })), at))
            }
            _ => None,
        }
    }

    fn end(&mut self, state: GrantState, by: &str, reason: &str, at: Timestamp) {
        self.state = state;
        self.ended_at = Some(at);
        self.ended_by = Some(by.to_owned());
        self.end_reason = Some(reason.to_owned());
    }

    /// Whether the grant may be honoured at `now`. Compares times, so a
    /// grant whose expiry entry has not been written yet (a late timer, a
    /// server that was down) is still never honoured past its expiry.
    pub fn is_effective(&self, now: Timestamp) -> bool {
        match (self.state, self.activated_at, self.expires_at) {
            (GrantState::Active, Some(start), Some(end)) => start <= now && now < end,
            _ => false,
        }
    }

    /// When the next timer for this grant is due: its expiry if active, its
    /// lapse if pending, none once it has ended.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        match self.state {
            GrantState::Active => self.expires_at,
            GrantState::Pending => Some(self.pending_until),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T: Timestamp = Timestamp(1_795_262_400_000);

    fn at(min: i64) -> Timestamp {
        Timestamp(T.0 + min * MIN)
    }

    fn request(duration_min: i64) -> Request {
        Request {
            id: "g_1".into(),
            principal: "alice".into(),
            scopes: vec!["git:payments/api@refs/heads/main".into()],
            capabilities: vec!["push".into()],
            duration_ms: duration_min * MIN,
            reason: "INC-42: hotfix".into(),
            incident: Some("generic:INC-42".into()),
        }
    }

    fn terms(approvals: u32) -> Terms {
        Terms { max_duration_ms: 60 * MIN, approvals_required: approvals, pending_ttl_ms: 15 * MIN }
    }

    fn kinds(entries: &[EntryDraft]) -> Vec<&str> {
        entries.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn durations_parse_and_print() {
        for (input, want) in
            [("30m", Ok(30 * MIN)), ("1h30m", Ok(90 * MIN)), ("45s", Ok(45_000)), ("2h", Ok(120 * MIN))]
        {
            assert_eq!(parse_duration(input), want, "{input}");
        }
        for bad in ["", "30", "m", "30x", "-5m", "0m", "1h-", "99999999999999999999h", "8d", "200h"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert_eq!(human_duration(90 * MIN + 5_000), "1h30m5s");
        assert_eq!(human_duration(0), "0s");
    }

    #[test]
    fn issue14_durations_are_strict() {
        // A lenient reader added these up (30m30m was an hour).
        for bad in ["30m30m", "1h1h", "30s1h", "1m1h", "5s5s", "1h30m30m"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")) && err.contains("in that order"), "{bad}: {err}");
        }
        for (ok, want) in
            [("1h30m", 90 * MIN), ("2h15m30s", 135 * MIN + 30_000), ("90m", 90 * MIN), ("1h5s", 60 * MIN + 5_000)]
        {
            assert_eq!(parse_duration(ok), Ok(want), "{ok}");
        }
    }

    #[test]
    fn issue14_hostile_reasons_duplicates_and_made_up_incidents_are_refused() {
        let hostile = [
            ("\u{1b}[2J\u{1b}[Happroved by security", 1, 0x1B),
            ("fix\rAPPROVED BY CAROL", 4, 0x0D),
            ("fix\u{8}\u{8}\u{8}ok", 4, 0x08),
            ("fix\u{0}", 4, 0x00),
            ("fix \u{1b}]8;;https://evil.example\u{7}link", 5, 0x1B),
            ("fix\u{202E}", 4, 0x202E),
        ];
        for (reason, position, code) in hostile {
            let mut r = request(30);
            r.reason = reason.into();
            let err = Grant::request(r, &terms(1), at(0)).unwrap_err();
            let GrantError::BadText(t) = &err else { panic!("{reason:?}: {err}") };
            assert_eq!((t.field.as_str(), t.position, t.code_point), ("reason", position, code), "{reason:?}");
            // Deny, revoke and extend reasons get the same check.
            let (mut g, _) = Grant::request(request(30), &terms(1), at(0)).unwrap();
            assert!(matches!(g.deny("bob", reason, at(1)), Err(GrantError::BadText(_))));
            assert!(matches!(g.revoke("bob", reason, at(1)), Err(GrantError::BadText(_))));
            assert_eq!(g.state, GrantState::Pending, "a refused change changes nothing");
            let (mut g, _) = Grant::request(request(30), &terms(0), at(0)).unwrap();
            assert!(matches!(g.extend("alice", MIN, reason, at(1)), Err(GrantError::BadText(_))));
            assert_eq!(g.expires_at, Some(at(30)));
            assert!(matches!(check_comment(reason), Err(GrantError::BadText(_))));
        }
        assert!(check_comment("looks right to me").is_ok());

        let mut r = request(30);
        r.scopes.push(r.scopes[0].clone());
        let err = Grant::request(r, &terms(1), at(0)).unwrap_err();
        assert_eq!(err.to_string(), "scope \"git:payments/api@refs/heads/main\" is listed twice; name each scope once");
        let mut r = request(30);
        r.capabilities = vec!["push".into(), "force-push".into(), "push".into()];
        let err = Grant::request(r, &terms(1), at(0)).unwrap_err();
        assert!(matches!(&err, GrantError::Duplicate { what: "capability", item } if item == "push"), "{err}");

        for bad in ["none", "INC-42", "jira:INC-42", "pagerduty:", "pagerduty: ", "generic:a\u{1b}b"] {
            let mut r = request(30);
            r.incident = Some(bad.into());
            let err = Grant::request(r, &terms(1), at(0)).unwrap_err();
            assert!(matches!(err, GrantError::BadIncident { .. }), "{bad:?}: {err}");
            assert!(err.to_string().starts_with("incident \""), "{err}");
        }
        for ok in
            ["pagerduty:PABC123", "opsgenie:8418d193-2dab-4490-b331-8c02cdd196b7", "alertmanager:{}:{alertname=\"x\"}"]
        {
            let mut r = request(30);
            r.incident = Some(ok.into());
            Grant::request(r, &terms(1), at(0)).unwrap();
        }
    }

    #[test]
    fn auto_approved_requests_activate_at_once_and_end_exactly_on_time() {
        let (mut g, entries) = Grant::request(request(30), &terms(0), at(0)).unwrap();
        assert_eq!(kinds(&entries), ["grant.requested", "grant.activated"]);
        assert!(entries.iter().all(|e| e.grant.as_deref() == Some("g_1")));
        assert_eq!((g.state, g.activated_at, g.expires_at), (GrantState::Active, Some(at(0)), Some(at(30))));
        assert!(g.is_effective(at(0)));
        assert!(g.is_effective(Timestamp(at(30).0 - 1)));
        // At the expiry instant it is over, even before the timer has run.
        assert!(!g.is_effective(at(30)));
        assert_eq!(g.next_deadline(), Some(at(30)));
        assert!(g.expire(Timestamp(at(30).0 - 1)).is_none());
        // A late timer still records the exact expiry time.
        let (e, ended) = g.expire(at(31)).unwrap();
        assert_eq!(
            (e.kind.as_str(), ended, g.state, g.ended_at),
            ("grant.expired", at(30), GrantState::Expired, Some(at(30)))
        );
        assert_eq!(e.data["noticed_late_ms"], MIN);
        assert!(g.expire(at(40)).is_none(), "expiry happens once");
        assert_eq!(g.next_deadline(), None);
    }

    #[test]
    fn the_window_starts_at_activation_not_at_request() {
        let (mut g, entries) = Grant::request(request(30), &terms(2), at(0)).unwrap();
        assert_eq!(kinds(&entries), ["grant.requested"]);
        assert!(!g.is_effective(at(1)));
        assert_eq!(kinds(&g.approve("bob", at(5)).unwrap()), ["grant.approved"]);
        assert_eq!(g.state, GrantState::Pending);
        assert_eq!(kinds(&g.approve("carol", at(10)).unwrap()), ["grant.approved", "grant.activated"]);
        assert_eq!((g.activated_at, g.expires_at), (Some(at(10)), Some(at(40))));
        assert!(g.is_effective(at(39)));
        assert!(!g.is_effective(at(40)));
    }

    #[test]
    fn refusals() {
        type Case = (&'static str, fn() -> Result<Vec<EntryDraft>, GrantError>, fn(&GrantError) -> bool);
        let cases: Vec<Case> = vec![
            (
                "missing reason",
                || {
                    let mut r = request(30);
                    r.reason = "  ".into();
                    Grant::request(r, &terms(1), at(0)).map(|x| x.1)
                },
                |e| *e == GrantError::MissingReason,
            ),
            (
                "over maximum",
                || Grant::request(request(61), &terms(1), at(0)).map(|x| x.1),
                |e| matches!(e, GrantError::OverMaximum { asked, max } if asked == "1h1m" && max == "1h"),
            ),
            (
                "no scope",
                || {
                    let mut r = request(30);
                    r.scopes.clear();
                    Grant::request(r, &terms(1), at(0)).map(|x| x.1)
                },
                |e| *e == GrantError::NothingRequested,
            ),
            (
                "self approval",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(1), at(0)).unwrap();
                    g.approve("alice", at(1))
                },
                |e| matches!(e, GrantError::SelfApproval { who, .. } if who == "alice"),
            ),
            (
                "double approval",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(2), at(0)).unwrap();
                    g.approve("bob", at(1)).unwrap();
                    g.approve("bob", at(2))
                },
                |e| matches!(e, GrantError::DuplicateApproval { who, .. } if who == "bob"),
            ),
            (
                "approval after lapse",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(1), at(0)).unwrap();
                    g.approve("bob", at(15))
                },
                |e| matches!(e, GrantError::RequestLapsed { at: t, .. } if *t == at(15)),
            ),
            (
                "approval of an active grant",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(0), at(0)).unwrap();
                    g.approve("bob", at(1))
                },
                |e| matches!(e, GrantError::WrongState { state: "active", .. }),
            ),
            (
                "extension without reason",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(0), at(0)).unwrap();
                    g.extend("alice", 10 * MIN, "", at(1))
                },
                |e| *e == GrantError::MissingReason,
            ),
            (
                "extension past maximum",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(0), at(0)).unwrap();
                    g.extend("alice", 20 * MIN, "more", at(1)).unwrap();
                    g.extend("alice", 11 * MIN, "more", at(2))
                },
                |e| matches!(e, GrantError::ExtensionOverMaximum { total, .. } if total == "1h1m"),
            ),
            (
                "extension after expiry",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(0), at(0)).unwrap();
                    g.extend("alice", 5 * MIN, "late", at(30))
                },
                |e| matches!(e, GrantError::AlreadyExpired { at: t, .. } if *t == at(30)),
            ),
            (
                "revoke after expiry",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(0), at(0)).unwrap();
                    g.revoke("bob", "done", at(45))
                },
                |e| matches!(e, GrantError::AlreadyExpired { .. }),
            ),
            (
                "deny by requester",
                || {
                    let (mut g, _) = Grant::request(request(30), &terms(1), at(0)).unwrap();
                    g.deny("alice", "no", at(1))
                },
                |e| matches!(e, GrantError::SelfApproval { .. }),
            ),
        ];
        for (name, run, check) in cases {
            let err = run().expect_err(name);
            assert!(check(&err), "{name}: {err}");
        }
    }

    #[test]
    fn extension_and_revocation() {
        let (mut g, _) = Grant::request(request(30), &terms(0), at(0)).unwrap();
        let e = g.extend("alice", 30 * MIN, "still fixing", at(20)).unwrap();
        assert_eq!(kinds(&e), ["grant.extended"]);
        assert_eq!(g.expires_at, Some(at(60)));
        assert!(g.is_effective(at(59)));
        let e = g.revoke("bob", "fixed", at(45)).unwrap();
        assert_eq!(kinds(&e), ["grant.revoked"]);
        assert_eq!((g.state, g.ended_at, g.ended_by.as_deref()), (GrantState::Revoked, Some(at(45)), Some("bob")));
        assert!(!g.is_effective(at(46)), "revocation ends it at once");
        assert!(g.revoke("bob", "again", at(46)).is_err());
        assert!(g.expire(at(90)).is_none());
    }

    #[test]
    fn an_incident_resolving_ends_its_grant_early_and_says_why() {
        let cause = "incident pagerduty:P1 resolved";
        let (mut g, _) = Grant::request(request(60), &terms(0), at(0)).unwrap();
        let e = g.end_early(at(20), cause, at(10)).unwrap();
        assert_eq!((e.kind.as_str(), g.expires_at), ("grant.ending", Some(at(20))));
        e.validate().unwrap();
        // Re-delivered: nothing more to do; a later time never lengthens it.
        assert!(g.end_early(at(20), cause, at(11)).is_none());
        assert!(g.end_early(at(30), cause, at(11)).is_none());
        assert!(matches!(g.extend("alice", 5 * MIN, "more", at(12)), Err(GrantError::EndingEarly { .. })));
        assert!(g.is_effective(at(19)) && !g.is_effective(at(20)));
        let (e, ended) = g.expire(at(21)).unwrap();
        assert_eq!((e.kind.as_str(), ended, g.state), ("grant.expired", at(20), GrantState::Expired));
        assert_eq!(e.data["cause"], cause);
        assert_eq!(g.end_reason.as_deref(), Some(cause));
        // A time already past ends it now, not in the past.
        let (mut g, _) = Grant::request(request(60), &terms(0), at(0)).unwrap();
        g.end_early(at(5), cause, at(30)).unwrap();
        assert_eq!(g.expires_at, Some(at(30)));
        // Only an active grant.
        let (mut g, _) = Grant::request(request(60), &terms(1), at(0)).unwrap();
        assert!(g.end_early(at(5), cause, at(1)).is_none());
    }

    #[test]
    fn pending_requests_lapse_and_can_be_denied() {
        let (mut g, _) = Grant::request(request(30), &terms(1), at(0)).unwrap();
        assert!(g.expire(at(14)).is_none());
        let (e, ended) = g.expire(at(20)).unwrap();
        assert_eq!((e.kind.as_str(), ended, g.state), ("grant.lapsed", at(15), GrantState::Lapsed));
        let (mut g, _) = Grant::request(request(30), &terms(1), at(0)).unwrap();
        assert_eq!(kinds(&g.deny("bob", "not an emergency", at(1)).unwrap()), ["grant.denied"]);
        assert_eq!(g.state, GrantState::Denied);
        assert!(g.approve("carol", at(2)).is_err());
        assert!(GrantState::Denied.is_final() && !GrantState::Active.is_final());
    }

    #[test]
    fn every_transition_entry_is_a_valid_log_entry() {
        let (mut g, mut all) = Grant::request(request(30), &terms(1), at(0)).unwrap();
        all.extend(g.approve("bob", at(1)).unwrap());
        all.extend(g.extend("alice", 5 * MIN, "more", at(2)).unwrap());
        all.extend(g.revoke("bob", "done", at(3)).unwrap());
        for e in &all {
            e.validate().unwrap();
        }
        assert_eq!(
            kinds(&all),
            ["grant.requested", "grant.approved", "grant.activated", "grant.extended", "grant.revoked"]
        );
    }
}
