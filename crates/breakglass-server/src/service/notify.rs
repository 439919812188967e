//! Notifications through an outbox. A grant change that people should hear
//! about queues one notification per interested channel as a state object
//! written in the same transaction as the change's log entry, so a change is
//! never committed without its notifications, nor notified without being
//! committed. A worker delivers them: at least once, with the
//! notification's id as the idempotency id on every attempt, retrying with
//! backoff, and never in the path of the change itself (activation does not
//! wait for Slack).
//!
//! Delivery state (attempts, next attempt, last error) is bookkeeping, not
//! audit: it changes through `LogStore::update_objects`, without log entries.
//! Several servers over one database share the outbox: a worker claims a
//! notification by compare-and-swap, with a lease, before sending it; a
//! worker that dies mid-delivery leaves it to be sent again when the lease
//! runs out (at least once, never silently dropped).
//!
//! Secrets: webhook secrets and Slack URLs (whose path is the secret) live in
//! the configuration, never in the database, the log or an error message.

use std::sync::Arc;
use std::time::Duration;

use breakglass_client::Poster;
use breakglass_core::api::NotificationView;
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::notify::{MAX_ATTEMPTS, Notice, NotifyEvent, backoff_ms};
use breakglass_core::policy::ContextInput;
use breakglass_core::scope::Scope;
use breakglass_core::time::Timestamp;
use breakglass_store::{Mutation, StoreError};

use super::kernel::config::{Channel, Target, redact_url};
use super::kernel::outbox::{Delivery, Notification};
use super::kernel::state::{filter, mutation};
use super::kernel::{Caller, Consequences, Effect, Loaded, Result, Service, ServiceError, Transition, Versioned};

/// A claimed notification is someone else's to send again after this long (ms).
pub const LEASE_MS: i64 = 60_000;
/// One delivery attempt may take this long.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the worker looks for due notifications when nothing woke it.
const RESYNC: Duration = Duration::from_secs(30);

fn view(n: &Notification) -> NotificationView {
    let out = &n.out;
    NotificationView {
        id: n.id.clone(),
        channel: out.channel.clone(),
        event: out.notice.event.as_str().into(),
        grant: out.notice.grant.clone(),
        status: n.status.as_str().into(),
        attempts: out.attempts,
        last_error: out.last_error.clone(),
        created_at: out.created_at,
        next_attempt_at: if n.status == Delivery::Pending { n.due } else { None },
        delivered_at: out.delivered_at,
    }
}

/// The notify effect: a grant change people should hear about queues one
/// notification per interested channel, in the change's own append.
pub(crate) struct Notifications;

impl Effect for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn within(&self, service: &Service, change: &Transition<'_>, add: &mut Consequences) -> Result<()> {
        let cfg = &service.config().notify;
        if cfg.channels.is_empty() {
            return Ok(());
        }
        let (grant, now, loaded) = (change.grant, change.now, change.loaded);
        let base = |event: NotifyEvent| Notice {
            event,
            at: now,
            grant: grant.id.clone(),
            principal: grant.principal.clone(),
            scopes: grant.scopes.clone(),
            capabilities: grant.capabilities.clone(),
            reason: grant.reason.clone(),
            state: grant.state.as_str().into(),
            expires_at: grant.expires_at,
            by: None,
            approvers: Vec::new(),
            approvals: Some((grant.approvals.len() as u32, grant.approvals_required)),
            incident: grant.incident.clone(),
            detail: None,
            server: service.config().issuer.clone(),
            drift: None,
        };
        // (notice, when it is due)
        let mut notices: Vec<(Notice, Timestamp)> = Vec::new();
        let expiring_soon = |notices: &mut Vec<(Notice, Timestamp)>| {
            if let Some(end) = grant.expires_at
                && cfg.expiring_soon_ms > 0
            {
                let at = Timestamp(end.0 - cfg.expiring_soon_ms);
                if at > now {
                    notices.push((base(NotifyEvent::ExpiringSoon), at));
                }
            }
        };
        for d in change.entries {
            let by = (d.actor != grant.principal && d.actor != "breakglass").then(|| d.actor.clone());
            let detail = d.data.get("reason").and_then(|v| v.as_str()).map(str::to_owned);
            match d.kind.as_str() {
                "grant.requested" if grant.state == GrantState::Pending || grant.approvals_required > 0 => {
                    let mut n = base(NotifyEvent::Requested);
                    n.state = "pending".into();
                    n.expires_at = None;
                    n.approvals = Some((0, grant.approvals_required));
                    n.approvers = approvers(grant, loaded, now);
                    notices.push((n, now));
                }
                "grant.approved" => {
                    let mut n = base(NotifyEvent::Approved);
                    n.by = by;
                    notices.push((n, now));
                }
                "grant.activated" => {
                    notices.push((base(NotifyEvent::Activated), now));
                    expiring_soon(&mut notices);
                }
                "grant.extended" => {
                    let mut n = base(NotifyEvent::Extended);
                    (n.by, n.detail) = (by, detail);
                    notices.push((n, now));
                    expiring_soon(&mut notices);
                }
                "grant.revoked" => {
                    let mut n = base(NotifyEvent::Revoked);
                    (n.by, n.detail) = (by, detail);
                    notices.push((n, now));
                }
                "review.overdue" => {
                    let mut n = base(NotifyEvent::ReviewOverdue);
                    n.detail = d.data.get("deadline").and_then(|v| v.as_str()).map(|t| format!(" (due {t})"));
                    n.approvers = reviewers(grant, loaded, now);
                    notices.push((n, now));
                }
                "grant.expired" => {
                    let mut n = match &grant.end_cause {
                        Some(cause) => {
                            let mut n = base(NotifyEvent::IncidentResolvedEnded);
                            n.detail = Some(cause.clone());
                            n
                        }
                        None => base(NotifyEvent::Expired),
                    };
                    n.at = grant.ended_at.unwrap_or(now);
                    notices.push((n, now));
                }
                _ => {}
            }
        }
        add.mutations.extend(service.queue(notices, now)?);
        Ok(())
    }
}

impl Service {
    /// Sends every notification due now; returns how many were attempted.
    pub async fn deliver_due(self: &Arc<Self>, poster: &Poster) -> Result<usize, ServiceError> {
        let now = self.now();
        let due = self.due::<Notification>(&[Delivery::Pending.as_str()], now, 32).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for Versioned { value: mut n, version } in due {
            n.out.attempts += 1;
            n.out.last_attempt_at = Some(now);
            // Claim it: whoever moves the version first sends it; the lease
            // hands it to another worker if this one dies mid-delivery.
            n.due = Some(Timestamp(now.0 + LEASE_MS));
            let claim = mutation(&n, version)?;
            match self.store().update_objects(&[claim]).await {
                Ok(()) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let service = self.clone();
            let poster = poster.clone();
            tasks.spawn(async move { service.send_one(&poster, n, version + 1).await });
        }
        let mut n = 0;
        while let Some(done) = tasks.join_next().await {
            n += 1;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "recording a notification's delivery failed; it will be sent again");
            }
        }
        Ok(n)
    }

    async fn send_one(&self, poster: &Poster, mut n: Notification, version: u64) -> Result<()> {
        let (id, out) = (n.id.clone(), &mut n.out);
        let result = match self.config().notify.channels.iter().find(|c| c.name == out.channel) {
            None => Err(format!("channel {:?} is no longer configured", out.channel)),
            Some(ch) => match self.still_true(&out.notice).await? {
                false => {
                    metrics::counter!("breakglass_notifications_total", "channel" => ch.name.clone(), "outcome" => "skipped").increment(1);
                    (n.status, n.due) = (Delivery::Skipped, None);
                    return self.finish(mutation(&n, version)?).await;
                }
                true => send(poster, ch, &id, &out.notice).await,
            },
        };
        let now = self.now();
        let (status, due, outcome) = match result {
            Ok(()) => {
                out.delivered_at = Some(now);
                out.last_error = None;
                (Delivery::Delivered, None, "delivered")
            }
            Err(e) => {
                tracing::warn!(notification = %id, channel = %out.channel, attempt = out.attempts, error = %e, "notification not delivered");
                out.last_error = Some(e);
                if out.attempts >= MAX_ATTEMPTS {
                    (Delivery::Failed, None, "failed")
                } else {
                    (Delivery::Pending, Some(Timestamp(now.0 + backoff_ms(out.attempts))), "retry")
                }
            }
        };
        metrics::counter!("breakglass_notifications_total", "channel" => out.channel.clone(), "outcome" => outcome)
            .increment(1);
        (n.status, n.due) = (status, due);
        self.finish(mutation(&n, version)?).await
    }

    async fn finish(&self, m: Mutation) -> Result<()> {
        match self.store().update_objects(&[m]).await {
            // Our lease ran out and another worker took it over: theirs stands.
            Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a scheduled notice still says something true when it is due:
    /// "expiring soon" only while the grant is active and ends when it said.
    async fn still_true(&self, n: &Notice) -> Result<bool> {
        if n.event != NotifyEvent::ExpiringSoon {
            return Ok(true);
        }
        let Some(Versioned { value: grant, .. }) = self.find::<Grant>(&n.grant).await? else { return Ok(false) };
        Ok(grant.is_effective(self.now()) && grant.expires_at == n.expires_at && grant.end_cause.is_none())
    }

    /// When the next notification is due, if any.
    pub async fn next_notification_due(&self) -> Result<Option<Timestamp>> {
        self.next_due_of::<Notification>(&[Delivery::Pending.as_str()]).await
    }

    /// Notifications, newest first, optionally only those with `status`.
    pub async fn notifications(
        &self,
        caller: &Caller,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<NotificationView>> {
        require_operator(caller)?;
        let statuses: Vec<&str> = match status {
            None => Vec::new(),
            Some(s) => match Delivery::parse(s) {
                Some(d) => vec![d.as_str()],
                None => {
                    return Err(ServiceError::BadRequest(format!(
                        "invalid status {s:?}: expected pending, delivered, failed or skipped"
                    )));
                }
            },
        };
        let stored = self.objects::<Notification>(&filter(&statuses, None, limit)).await?;
        Ok(stored.iter().map(|v| view(&v.value)).collect())
    }

    /// Queues a failed notification again, at once (an admin's call).
    pub async fn retry_notification(&self, caller: &Caller, id: &str) -> Result<NotificationView> {
        if caller.role != crate::auth::Role::Admin {
            return Err(ServiceError::Forbidden("only an admin API token may retry notifications".into()));
        }
        let Some(Versioned { value: mut n, version }) = self.find::<Notification>(id).await? else {
            return Err(ServiceError::NotFound(format!("no notification {id:?}")));
        };
        if n.status != Delivery::Failed {
            return Err(ServiceError::Conflict(format!("notification {id} is {}, not failed", n.status.as_str())));
        }
        n.out.attempts = 0;
        (n.status, n.due) = (Delivery::Pending, Some(self.now()));
        let m = mutation(&n, version)?;
        match self.store().update_objects(std::slice::from_ref(&m)).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(ServiceError::Conflict(format!("notification {id} changed concurrently")));
            }
            Err(e) => return Err(e.into()),
        }
        self.wake_outbox();
        Ok(view(&n))
    }
}

fn require_operator(caller: &Caller) -> Result<()> {
    use crate::auth::Role;
    match caller.role {
        Role::Admin | Role::Reader | Role::User => Ok(()),
        _ => Err(ServiceError::Forbidden(format!(
            "the {} API token {:?} may not read notifications",
            caller.role.as_str(),
            caller.name
        ))),
    }
}

/// The principals policy lets approve `grant`, except its requester.
fn approvers(grant: &Grant, loaded: &Loaded, now: Timestamp) -> Vec<String> {
    allowed(grant, loaded, now, false)
}

/// The principals policy lets review `grant`, except its holder.
fn reviewers(grant: &Grant, loaded: &Loaded, now: Timestamp) -> Vec<String> {
    allowed(grant, loaded, now, true)
}

fn allowed(grant: &Grant, loaded: &Loaded, now: Timestamp, review: bool) -> Vec<String> {
    let Ok(scopes) = grant.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>() else {
        return Vec::new();
    };
    let ctx = ContextInput {
        requester: grant.principal.clone(),
        duration_ms: grant.duration_ms,
        reason: grant.reason.clone(),
        now,
        ..ContextInput::default()
    };
    loaded
        .principals
        .iter()
        .filter(|p| p.name != grant.principal)
        .filter(|p| {
            if review {
                loaded.policy.decide_review(&p.name, &p.groups, &scopes, &ctx).allowed
            } else {
                loaded.policy.decide_approval(&p.name, &p.groups, &scopes, &ctx).allowed
            }
        })
        .map(|p| p.name.clone())
        .collect()
}

/// One attempt to deliver `notice` to `channel`; the error says why, without
/// the URL's path or any secret.
async fn send(poster: &Poster, channel: &Channel, id: &str, notice: &Notice) -> Result<(), String> {
    match &channel.target {
        Target::Webhook { url, secret } => {
            let body = notice.webhook_body(id);
            let ts = notice_timestamp();
            let signature = breakglass_core::incident::sign_generic(secret, ts, body.as_bytes());
            let headers = [
                ("x-breakglass-delivery", id.to_owned()),
                ("x-breakglass-event", notice.event.as_str().to_owned()),
                ("x-breakglass-timestamp", ts.to_string()),
                ("x-breakglass-signature", signature),
            ];
            poster.post_json(url, body, &headers).await
        }
        Target::Slack { url } => poster.post_json(url, notice.slack_body(), &[]).await,
    }
    .map_err(|e| format!("{} ({}): {e}", channel.name, redact_url(channel_url(channel))))
}

fn channel_url(c: &Channel) -> &str {
    match &c.target {
        Target::Webhook { url, .. } | Target::Slack { url } => url,
    }
}

/// The signature's timestamp is the wall clock's: the receiver checks it
/// against its own clock, not against breakglass's (test) clock.
fn notice_timestamp() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Runs until `stop` turns true: delivers what is due, then sleeps until the
/// next notification is due, something is queued, or [`RESYNC`].
pub async fn run(service: Arc<Service>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let poster = match Poster::new(SEND_TIMEOUT) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the notification HTTP client; notifications stay queued");
            return;
        }
    };
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match service.deliver_due(&poster).await {
            Ok(_) => {
                failures = 0;
                match service.next_notification_due().await {
                    Ok(Some(at)) => Duration::from_millis((at.0 - service.now().0).max(0) as u64).min(RESYNC),
                    Ok(None) => RESYNC,
                    Err(_) => Duration::from_secs(1),
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "delivering notifications failed; retrying");
                Duration::from_millis(200 * u64::from(failures.min(50)))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = service.outbox_woken() => {}
            _ = stop.changed() => {}
        }
    }
}
