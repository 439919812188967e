//! Incidents: the receivers for PagerDuty, Opsgenie, Alertmanager and the
//! generic signed form, the incident state they feed (one state object per
//! incident, every change a log entry in the same transaction), the policy
//! context a request sees (`context.incident`), and grants that end when
//! their incident resolves.
//!
//! Security: anyone who can reach the receivers sends the body and the
//! headers, and a provider's users choose their own display names; an
//! incident can approve a grant with no human in the loop. Rules: a delivery
//! is authenticated before anything in it is read (401, nothing stored);
//! signed bodies that carry their own time must be fresh (replays refused);
//! a delivery is recorded at most once (by the provider's event id); a
//! responder is a principal only through the principals file, by what the
//! provider vouches for: an account `<source>:<provider user id>` or an
//! e-mail address. A display name is chosen by the user (a PagerDuty user
//! may call themselves "dave"), so names (an account `<source>:<name>`, or
//! the principal's own name) count only when the operator turns
//! `incidents.match_responder_names` on. Which incident a request rides on
//! is decided by policy, never by the request alone. Bodies are parsed
//! strictly (a member named twice is refused, see `breakglass_core::json`).

use breakglass_core::api::{IncidentReceipt, IncidentResponder, IncidentView};
use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::incident::{self, IncidentStatus, IncidentUpdate, Responder, Source};
use breakglass_core::policy::IncidentInput;
use breakglass_core::principals::Principals;
use breakglass_core::time::Timestamp;
use breakglass_store::Mutation;
use breakglass_store::ledger::AppendError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events::EVENT_KIND;
use super::kernel::state::{filter, json_body, marker, mutation};
use super::kernel::{Caller, MAX_RETRIES, Result, Service, ServiceError, Stored, Versioned};

/// The statuses of an incident not resolved.
fn open_statuses() -> [&'static str; 2] {
    [IncidentStatus::Triggered.as_str(), IncidentStatus::Acknowledged.as_str()]
}

/// One incident, as its state object's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// `<source>:<the provider's id>`.
    pub id: String,
    pub source: Source,
    pub external_id: String,
    pub title: String,
    /// 1 (most severe) to 5.
    pub severity: i64,
    pub status: IncidentStatus,
    pub services: Vec<String>,
    pub responders: Vec<IncidentResponder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// The responder-matching rule in force (configuration, not state): set
    /// by the service whenever it loads an incident, so a configuration
    /// change applies at once, like a principals reload.
    #[serde(skip)]
    match_names: bool,
}

impl Incident {
    pub fn view(&self) -> IncidentView {
        IncidentView {
            id: self.id.clone(),
            source: self.source.as_str().into(),
            external_id: self.external_id.clone(),
            title: self.title.clone(),
            severity: self.severity,
            status: self.status.as_str().into(),
            services: self.services.clone(),
            responders: self.responders.clone(),
            url: self.url.clone(),
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            resolved_at: self.resolved_at,
        }
    }

    pub fn is_open(&self) -> bool {
        self.status != IncidentStatus::Resolved
    }

    /// Whether `principal` is one of its responders, by the principals file
    /// in force now (it may have been reloaded since the incident arrived).
    pub fn has_responder(&self, principal: &str, principals: &Principals) -> bool {
        self.responders
            .iter()
            .any(|r| map_responder(self.source, r, principals, self.match_names).as_deref() == Some(principal))
    }

    /// What policy sees of it for a request by `requester`.
    pub fn policy_input(&self, requester: &str, principals: &Principals) -> IncidentInput {
        IncidentInput {
            id: self.id.clone(),
            severity: self.severity,
            status: self.status.as_str().to_owned(),
            services: self.services.clone(),
            requester_is_responder: self.has_responder(requester, principals),
        }
    }
}

/// The principal a provider's responder is, if the principals file says: an
/// account `<source>:<provider user id>`, else an e-mail address the provider
/// gives (PagerDuty user ids and Opsgenie logins are the provider's own; a
/// display name is not). Only with `match_names`: an account
/// `<source>:<name>`, else a principal with exactly that name.
fn map_responder<R: ResponderFields>(
    source: Source,
    r: &R,
    principals: &Principals,
    match_names: bool,
) -> Option<String> {
    let by_account = |v: &str| principals.by_account(&format!("{}:{v}", source.as_str())).map(|p| p.name.clone());
    let vouched =
        r.id().and_then(by_account).or_else(|| r.email().and_then(|e| principals.by_email(e).map(|p| p.name.clone())));
    if vouched.is_some() || !match_names {
        return vouched;
    }
    r.name().and_then(by_account).or_else(|| r.name().and_then(|n| principals.get(n).map(|p| p.name.clone())))
}

trait ResponderFields {
    fn id(&self) -> Option<&str>;
    fn email(&self) -> Option<&str>;
    fn name(&self) -> Option<&str>;
}

impl ResponderFields for Responder {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl ResponderFields for IncidentResponder {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// A delivery's headers, as the receivers need them.
#[derive(Clone, Debug, Default)]
pub struct Delivery<'a> {
    pub authorization: Option<&'a str>,
    pub pagerduty_signature: Option<&'a str>,
    pub breakglass_timestamp: Option<&'a str>,
    pub breakglass_signature: Option<&'a str>,
}

impl Service {
    /// Authenticates, parses and records one webhook delivery.
    pub async fn receive_incident(
        &self,
        source: Source,
        delivery: &Delivery<'_>,
        body: &[u8],
    ) -> Result<IncidentReceipt> {
        let cfg = &self.config().incidents;
        let now = self.now();
        let refused = |e: String| {
            metrics::counter!("breakglass_incident_webhooks_total", "source" => source.as_str(), "outcome" => "refused")
                .increment(1);
            tracing::warn!(source = source.as_str(), error = %e, "incident delivery refused");
            ServiceError::Unauthorized(e)
        };
        // Authentication first: nothing in an unauthenticated body is read.
        match source {
            Source::PagerDuty => incident::verify_pagerduty(delivery.pagerduty_signature, body, &cfg.pagerduty_secrets),
            Source::Opsgenie => incident::verify_opsgenie(delivery.authorization, &cfg.opsgenie_credentials),
            Source::Alertmanager => incident::verify_bearer(delivery.authorization, &cfg.alertmanager_tokens),
            Source::Generic => incident::verify_generic(
                delivery.breakglass_timestamp,
                delivery.breakglass_signature,
                body,
                &cfg.generic_secrets,
                now,
                cfg.max_age_ms,
            ),
        }
        .map_err(|e| refused(e.to_string()))?;
        let bad = |e: String| {
            metrics::counter!("breakglass_incident_webhooks_total", "source" => source.as_str(), "outcome" => "malformed")
                .increment(1);
            ServiceError::BadRequest(format!("invalid {} delivery: {e}", source.as_str()))
        };
        let updates: Vec<IncidentUpdate> = match source {
            Source::PagerDuty => {
                let update = incident::parse_pagerduty(body).map_err(|e| bad(e.to_string()))?;
                if let Some(u) = &update {
                    // The signature covers the body, and the body its time: an old one is a replay.
                    incident::check_fresh(u.occurred_at, now, cfg.max_age_ms).map_err(|e| refused(e.to_string()))?;
                }
                update.into_iter().collect()
            }
            Source::Opsgenie => incident::parse_opsgenie(body).map_err(|e| bad(e.to_string()))?.into_iter().collect(),
            Source::Alertmanager => {
                incident::parse_alertmanager(body, &cfg.alertmanager).map_err(|e| bad(e.to_string()))?
            }
            Source::Generic => vec![incident::parse_generic(body).map_err(|e| bad(e.to_string()))?],
        };
        let mut receipt = IncidentReceipt::default();
        if updates.is_empty() {
            receipt.ignored.push("the delivery carries no incident change (a ping or another event type)".into());
        }
        for update in updates {
            if !cfg.services.is_empty() && !update.services.iter().any(|s| cfg.services.contains(s)) {
                receipt.ignored.push(format!(
                    "{}:{} is on services [{}], none of which breakglass watches",
                    source.as_str(),
                    update.external_id,
                    update.services.join(", ")
                ));
                continue;
            }
            let (id, fresh) = self.record_incident_update(&update).await?;
            if fresh {
                receipt.recorded.push(id.clone())
            } else {
                receipt.duplicates.push(id.clone())
            }
            // Run on re-deliveries too: ending is idempotent, and a crash
            // between recording and ending must not leave a grant running.
            if update.status == IncidentStatus::Resolved && update.status_known && cfg.end_grants_on_resolve {
                receipt.ending_grants.extend(self.end_grants_of(&id).await?);
            }
        }
        metrics::counter!("breakglass_incident_webhooks_total", "source" => source.as_str(), "outcome" => "accepted")
            .increment(1);
        Ok(receipt)
    }

    /// Records one update: the incident's new state and its log entry, with
    /// the delivery's event id, in one transaction. `false` when this event
    /// was recorded before.
    async fn record_incident_update(&self, u: &IncidentUpdate) -> Result<(String, bool)> {
        let id = format!("{}:{}", u.source.as_str(), u.external_id);
        let event_id = format!("incident:{}:{}", u.source.as_str(), u.event_id);
        for _ in 0..MAX_RETRIES {
            if self.store().object(EVENT_KIND, &event_id).await?.is_some() {
                return Ok((id, false));
            }
            let now = self.now();
            let loaded = self.loaded();
            let (previous, version) = match self.find::<Incident>(&id).await? {
                Some(v) => (Some(self.with_rule(v.value)), v.version),
                None => (None, 0),
            };
            let responders: Vec<IncidentResponder> = u
                .responders
                .iter()
                .map(|r| IncidentResponder {
                    id: r.id.clone(),
                    email: r.email.clone(),
                    name: r.name.clone(),
                    principal: map_responder(
                        u.source,
                        r,
                        &loaded.principals,
                        self.config().incidents.match_responder_names,
                    ),
                })
                .collect();
            let incident = match &previous {
                None => Incident {
                    id: id.clone(),
                    source: u.source,
                    external_id: u.external_id.clone(),
                    title: u.title.clone(),
                    severity: u.severity.unwrap_or(5),
                    status: u.status,
                    services: u.services.clone(),
                    responders,
                    url: u.url.clone(),
                    opened_at: now,
                    updated_at: now,
                    resolved_at: (u.status == IncidentStatus::Resolved).then_some(now),
                    match_names: self.config().incidents.match_responder_names,
                },
                Some(prev) => {
                    let mut next = prev.clone();
                    if !u.title.is_empty() {
                        next.title = u.title.clone();
                    }
                    if let Some(s) = u.severity {
                        next.severity = s;
                    }
                    // An event that only adds detail keeps the status known.
                    if u.status_known {
                        next.status = u.status;
                    }
                    for s in &u.services {
                        if !next.services.contains(s) {
                            next.services.push(s.clone());
                        }
                    }
                    // Responders accumulate: someone added to an incident stays a
                    // responder of it (PagerDuty sends reassignments as new lists).
                    for r in responders {
                        if !next.responders.iter().any(|x| same_person(x, &r)) {
                            next.responders.push(r);
                        }
                    }
                    if u.url.is_some() {
                        next.url = u.url.clone();
                    }
                    next.updated_at = now;
                    next.resolved_at = match next.status {
                        IncidentStatus::Resolved => prev.resolved_at.or(Some(now)),
                        _ => None,
                    };
                    next
                }
            };
            let kind = match (&previous, incident.status) {
                (None, _) => "incident.opened",
                (Some(p), IncidentStatus::Resolved) if p.status != IncidentStatus::Resolved => "incident.resolved",
                (Some(p), _) if p.status == IncidentStatus::Resolved => "incident.reopened",
                _ => "incident.updated",
            };
            let actor = format!("incident:{}", u.source.as_str());
            let draft = EntryDraft::new(
                &actor,
                kind,
                json!({
                    "incident": incident.id,
                    "source": u.source.as_str(),
                    "external_id": incident.external_id,
                    "event_id": u.event_id,
                    "event_type": u.event_type,
                    "title": incident.title,
                    "severity": incident.severity,
                    "status": incident.status.as_str(),
                    "services": incident.services,
                    "responders": incident.responders,
                    "url": incident.url,
                }),
            );
            // Recorded once: a second delivery of the event fails this marker.
            let seen = Mutation {
                body: json!({ "incident": incident.id }).to_string(),
                ..marker(EVENT_KIND, &event_id, "recorded", &actor, None)
            };
            let mutations = vec![mutation(&incident, version)?, seen];
            match self.append_with(vec![draft], mutations).await {
                Ok(_) => {
                    metrics::counter!("breakglass_incident_changes_total", "kind" => kind).increment(1);
                    return Ok((id, true));
                }
                // The incident moved, or another server recorded this event: look again.
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("incident {id} kept changing; the provider will deliver it again")))
    }

    /// Brings forward the end of every active grant tied to incident `id`
    /// (resolved): its resolution time plus the grace. The grants' ids.
    async fn end_grants_of(&self, id: &str) -> Result<Vec<String>> {
        let Some(Versioned { value: incident, .. }) = self.find::<Incident>(id).await? else { return Ok(Vec::new()) };
        let Some(resolved_at) = incident.resolved_at.filter(|_| !incident.is_open()) else { return Ok(Vec::new()) };
        let grace = self.config().incidents.resolve_grace_ms;
        let at = Timestamp(resolved_at.0.saturating_add(grace));
        let cause = format!("incident {id} resolved at {}", resolved_at.to_rfc3339());
        let mut ending = Vec::new();
        for Versioned { value: grant, .. } in
            self.objects::<Grant>(&filter(&[GrantState::Active.as_str()], None, 10_000)).await?
        {
            if grant.incident.as_deref() != Some(id) {
                continue;
            }
            self.change_grant(&grant.id, |grant, now, _| Ok(grant.end_early(at, &cause, now).into_iter().collect()))
                .await?;
            ending.push(grant.id);
        }
        Ok(ending)
    }

    /// A stored incident, with the responder-matching rule in force now.
    fn with_rule(&self, mut incident: Incident) -> Incident {
        incident.match_names = self.config().incidents.match_responder_names;
        incident
    }

    /// Stored incidents, each with the rule in force.
    async fn list_incidents(&self, statuses: &[&str], limit: u32) -> Result<Vec<Incident>> {
        let stored = self.objects::<Incident>(&filter(statuses, None, limit)).await?;
        Ok(stored.into_iter().map(|v| self.with_rule(v.value)).collect())
    }

    /// Incidents, newest first; `open` only those not resolved.
    pub async fn incidents(&self, _caller: &Caller, open: bool, limit: u32) -> Result<Vec<Incident>> {
        let open_only = open_statuses();
        self.list_incidents(if open { &open_only } else { &[] }, limit).await
    }

    /// One incident, by its id (`pagerduty:P123`) or the provider's id alone.
    pub async fn incident(&self, _caller: &Caller, id: &str) -> Result<Incident> {
        self.find_incident(id).await?.ok_or_else(|| ServiceError::NotFound(format!("no incident {id:?}")))
    }

    pub(crate) async fn find_incident(&self, id: &str) -> Result<Option<Incident>> {
        if let Some(v) = self.find::<Incident>(id).await? {
            return Ok(Some(self.with_rule(v.value)));
        }
        if id.contains(':') {
            return Ok(None);
        }
        // The provider's id alone: unambiguous among the sources, or nothing.
        let mut found = Vec::new();
        for source in [Source::PagerDuty, Source::Opsgenie, Source::Alertmanager, Source::Generic] {
            if let Some(v) = self.find::<Incident>(&format!("{}:{id}", source.as_str())).await? {
                found.push(v.value);
            }
        }
        match found.len() {
            1 => Ok(found.pop().map(|i| self.with_rule(i))),
            0 => Ok(None),
            _ => Err(ServiceError::BadRequest(format!(
                "incident {id:?} exists in several sources; name it as <source>:{id}"
            ))),
        }
    }

    /// The open incidents, most severe first (for choosing one for a request).
    pub(crate) async fn open_incidents(&self) -> Result<Vec<Incident>> {
        let mut out = self.list_incidents(&open_statuses(), 200).await?;
        out.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| b.opened_at.cmp(&a.opened_at)));
        Ok(out)
    }
}

fn same_person(a: &IncidentResponder, b: &IncidentResponder) -> bool {
    let eq = |x: &Option<String>, y: &Option<String>| x.is_some() && x == y;
    eq(&a.id, &b.id) || eq(&a.email, &b.email) || (a.id.is_none() && b.id.is_none() && eq(&a.name, &b.name))
}

impl Stored for Incident {
    const KIND: &'static str = "incident";
    const NOUN: &'static str = "incident";

    fn id(&self) -> &str {
        &self.id
    }
    fn status(&self) -> &str {
        self.status.as_str()
    }
    /// Nobody's.
    fn owner(&self) -> &str {
        ""
    }
    fn due(&self) -> Option<Timestamp> {
        None
    }
    json_body!();
}
