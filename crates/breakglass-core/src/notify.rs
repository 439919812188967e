//! Notifications: what approvers and responders are told about grants, as
//! the bodies a generic webhook and a Slack incoming webhook receive, and
//! how often a failed delivery is retried. No IO: the server's outbox worker
//! sends them (see `breakglass-server`'s `notify` module).
//!
//! Bodies carry what a person needs to act (who, what, why, until when, a
//! link) and nothing secret: no tokens, no signatures.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::DriftFinding;
use crate::time::Timestamp;

/// What happened, as a notification names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A request waits for approvals (sent to approvers).
    Requested,
    /// An approval was recorded (the grant may still need more).
    Approved,
    /// The grant is active.
    Activated,
    Extended,
    /// The grant ends within the configured lead time.
    ExpiringSoon,
    Expired,
    Revoked,
    /// The grant ended because its incident resolved.
    IncidentResolvedEnded,
    /// The grant's review is past its deadline (escalation).
    ReviewOverdue,
    /// The periodic drift check found something new (not about one grant).
    DriftDetected,
    /// A push under the grant, on a hosted forge (which cannot refuse
    /// them), brought commits without the grant's `Break-Glass` trailer.
    UntaggedCommits,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 11] = [
        NotifyEvent::Requested,
        NotifyEvent::Approved,
        NotifyEvent::Activated,
        NotifyEvent::Extended,
        NotifyEvent::ExpiringSoon,
        NotifyEvent::Expired,
        NotifyEvent::Revoked,
        NotifyEvent::IncidentResolvedEnded,
        NotifyEvent::ReviewOverdue,
        NotifyEvent::DriftDetected,
        NotifyEvent::UntaggedCommits,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Requested => "requested",
            NotifyEvent::Approved => "approved",
            NotifyEvent::Activated => "activated",
            NotifyEvent::Extended => "extended",
            NotifyEvent::ExpiringSoon => "expiring_soon",
            NotifyEvent::Expired => "expired",
            NotifyEvent::Revoked => "revoked",
            NotifyEvent::IncidentResolvedEnded => "incident_resolved_ended",
            NotifyEvent::ReviewOverdue => "review_overdue",
            NotifyEvent::DriftDetected => "drift_detected",
            NotifyEvent::UntaggedCommits => "untagged_commits",
        }
    }

    pub fn parse(s: &str) -> Result<NotifyEvent, String> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
            format!("unknown notification event {s:?}: expected one of {}", names.join(", "))
        })
    }
}

/// One notification's content, as stored in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub event: NotifyEvent,
    /// When it happened.
    pub at: Timestamp,
    pub grant: String,
    pub principal: String,
    pub scopes: Vec<String>,
    pub capabilities: Vec<String>,
    pub reason: String,
    /// The grant's state when the notice was made.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Who did it (approver, revoker, extender), when not the grantee or breakglass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// For `requested`: who may approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Why it ended or changed (a revocation's reason, an extension's, an incident's resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The server's public URL, for links.
    pub server: String,
    /// For `drift_detected`: the finding (the grant fields are then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftFinding>,
}

impl Notice {
    /// The generic webhook's JSON body. `delivery` is the idempotency id
    /// (the same on every retry of this notification).
    pub fn webhook_body(&self, delivery: &str) -> String {
        if let Some(d) = &self.drift {
            return json!({
                "id": delivery,
                "event": self.event.as_str(),
                "at": self.at.to_rfc3339(),
                "drift": d,
                "links": { "drift": format!("{}/v1/drift", self.server) },
            })
            .to_string();
        }
        json!({
            "id": delivery,
            "event": self.event.as_str(),
            "at": self.at.to_rfc3339(),
            "grant": {
                "id": self.grant,
                "principal": self.principal,
                "scopes": self.scopes,
                "capabilities": self.capabilities,
                "reason": self.reason,
                "state": self.state,
                "expires_at": self.expires_at.map(|t| t.to_rfc3339()),
                "incident": self.incident,
                "approvals": self.approvals.map(|(n, of)| json!({ "given": n, "required": of })),
            },
            "by": self.by,
            "approvers": self.approvers,
            "detail": self.detail,
            "links": { "grant": format!("{}/v1/grants/{}", self.server, self.grant) },
        })
        .to_string()
    }

    /// One line of text for people: what happened to which grant.
    pub fn text(&self) -> String {
        if let Some(d) = &self.drift {
            return format!("Drift found ({}) on {}: {} Fix: {}", d.kind, d.subject, d.what, d.fix);
        }
        let what = format!("{} on {} ({})", self.capabilities.join(", "), self.scopes.join(", "), self.grant);
        let until = self.expires_at.map_or(String::new(), |t| format!(" until {}", t.to_rfc3339()));
        let by = self.by.as_deref().unwrap_or("breakglass");
        let detail = self.detail.as_deref().map_or(String::new(), |d| format!(": {d}"));
        match self.event {
            NotifyEvent::Requested => {
                let approvers = if self.approvers.is_empty() {
                    String::new()
                } else {
                    format!(" Approvers: {}.", self.approvers.join(", "))
                };
                let needed = self.approvals.map_or(String::new(), |(_, of)| format!(" ({of} approval(s) needed)"));
                format!(
                    "{} asks to break glass: {what}. Reason: {}{needed}.{approvers} Approve with: breakglass approve {}",
                    self.principal, self.reason, self.grant
                )
            }
            NotifyEvent::Approved => {
                let count = self.approvals.map_or(String::new(), |(n, of)| format!(" ({n} of {of})"));
                format!("{by} approved {}'s request{count}: {what}", self.principal)
            }
            NotifyEvent::Activated => {
                format!("{} broke glass: {what} is active{until}. Reason: {}", self.principal, self.reason)
            }
            NotifyEvent::Extended => format!("{by} extended {}'s grant: {what}{until}{detail}", self.principal),
            NotifyEvent::ExpiringSoon => format!("{}'s grant ends soon: {what}{until}", self.principal),
            NotifyEvent::Expired => format!("{}'s grant expired: {what}; protections are back", self.principal),
            NotifyEvent::Revoked => format!("{by} revoked {}'s grant: {what}{detail}", self.principal),
            NotifyEvent::IncidentResolvedEnded => {
                format!("{}'s grant ended because its incident resolved: {what}{detail}", self.principal)
            }
            NotifyEvent::ReviewOverdue => {
                let reviewers = if self.approvers.is_empty() {
                    String::new()
                } else {
                    format!(" Reviewers: {}.", self.approvers.join(", "))
                };
                format!(
                    "The review of {}'s grant is overdue{detail}: {what}.{reviewers} Review with: breakglass review show {}",
                    self.principal,
                    crate::review::review_id(&self.grant)
                )
            }
            NotifyEvent::DriftDetected => format!("Drift found{detail}"),
            NotifyEvent::UntaggedCommits => format!(
                "{} pushed commits without a Break-Glass: {} trailer under their grant ({what}){detail}; they show in its review",
                self.principal, self.grant
            ),
        }
    }

    /// A Slack incoming-webhook body: the text, which Slack also shows in
    /// notifications, with a link to the grant.
    pub fn slack_body(&self) -> String {
        if self.drift.is_some() {
            let link = format!("{}/v1/drift", self.server);
            return json!({ "text": format!("{} (<{link}|drift>)", slack_escape(&self.text())) }).to_string();
        }
        let link = format!("{}/v1/grants/{}", self.server, self.grant);
        json!({ "text": format!("{} (<{link}|{}>)", slack_escape(&self.text()), self.grant) }).to_string()
    }
}

/// Slack's three control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Attempts before a notification is given up as failed (about a day).
pub const MAX_ATTEMPTS: u32 = 25;

/// How long to wait after the `attempt`th failed attempt (1-based): 1 s,
/// doubling, at most 2 h, so [`MAX_ATTEMPTS`] attempts span a little over a day.
pub fn backoff_ms(attempt: u32) -> i64 {
    let exp = attempt.saturating_sub(1).min(20);
    (1_000i64 << exp).min(2 * 3_600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: NotifyEvent) -> Notice {
        Notice {
            event,
            at: Timestamp(1_795_262_400_000),
            grant: "gr_1".into(),
            principal: "alice".into(),
            scopes: vec!["git:payments/api@refs/heads/main".into()],
            capabilities: vec!["push".into()],
            reason: "INC-42 <hotfix> & more".into(),
            state: "pending".into(),
            expires_at: None,
            by: None,
            approvers: vec!["bob".into(), "carol".into()],
            approvals: Some((0, 1)),
            incident: None,
            detail: None,
            server: "https://bg.example".into(),
            drift: None,
        }
    }

    #[test]
    fn events_round_trip_by_name() {
        for e in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::parse(e.as_str()), Ok(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        assert!(NotifyEvent::parse("exploded").unwrap_err().contains("expiring_soon"));
    }

    #[test]
    fn bodies_say_who_what_and_why() {
        let n = notice(NotifyEvent::Requested);
        let v: serde_json::Value = serde_json::from_str(&n.webhook_body("nt_1")).unwrap();
        assert_eq!((v["id"].as_str(), v["event"].as_str()), (Some("nt_1"), Some("requested")));
        assert_eq!(v["grant"]["principal"], "alice");
        assert_eq!(v["approvers"], json!(["bob", "carol"]));
        assert_eq!(v["links"]["grant"], "https://bg.example/v1/grants/gr_1");
        assert!(n.text().contains("Approvers: bob, carol") && n.text().contains("breakglass approve gr_1"));
        let slack: serde_json::Value = serde_json::from_str(&n.slack_body()).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("&lt;hotfix&gt; &amp; more"), "{text}");
        assert!(text.ends_with("(<https://bg.example/v1/grants/gr_1|gr_1>)"), "{text}");
    }

    #[test]
    fn a_drift_notice_carries_the_finding_and_no_grant() {
        let mut n = notice(NotifyEvent::DriftDetected);
        n.drift = Some(DriftFinding {
            kind: "ref.unrecorded".into(),
            subject: "payments/api@refs/heads/main".into(),
            what: "refs/heads/main is at <abc>".into(),
            fix: "investigate".into(),
        });
        let v: serde_json::Value = serde_json::from_str(&n.webhook_body("nt_2")).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["drift"]["kind"].as_str()),
            (Some("drift_detected"), Some("ref.unrecorded"))
        );
        assert!(v.get("grant").is_none(), "{v}");
        assert_eq!(v["links"]["drift"], "https://bg.example/v1/drift");
        assert!(n.text().contains("payments/api@refs/heads/main") && n.text().contains("Fix: investigate"));
        let slack: serde_json::Value = serde_json::from_str(&n.slack_body()).unwrap();
        assert!(slack["text"].as_str().unwrap().contains("&lt;abc&gt;"), "{slack}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!([backoff_ms(1), backoff_ms(2), backoff_ms(3)], [1_000, 2_000, 4_000]);
        assert_eq!(backoff_ms(40), 2 * 3_600_000);
        let total: i64 = (1..MAX_ATTEMPTS).map(backoff_ms).sum();
        assert!(total > 86_400_000 && total < 2 * 86_400_000, "{total}");
    }
}
