//! Evidence from the forge: its signed push webhooks become `git.push`
//! entries bound to the pusher's effective grant, with every commit and its
//! files, and the commits that carry no `Break-Glass: <grant>` trailer named
//! (a hosted forge cannot refuse them as the hooks do; the review shows them).
//!
//! Security: anyone who can reach the endpoint sends the body and the
//! headers. The delivery is authenticated (the forge's signature over the
//! raw body) before any of it is read, refused with nothing stored when it
//! is not, and recorded at most once per delivery id: GitHub's signature
//! covers no time, so a replayed delivery is told by its id. The pusher is
//! a principal only through the principals file's accounts, by the forge's
//! numeric id when the payload gives it.

use breakglass_core::api::{ForgeWebhookReceipt, RefRecord};
use breakglass_core::entry::EntryDraft;
use breakglass_core::forge::{ForgeEvent, ForgePush, GitLabAuth, Headers, parse_push, verify_github, verify_gitlab};
use breakglass_core::grant::{Grant, GrantState};
use breakglass_core::notify::{Notice, NotifyEvent};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::time::Timestamp;
use breakglass_store::ledger::AppendError;
use serde_json::json;

use super::super::events::EVENT_KIND;
use super::super::kernel::config::ForgeKind;
use super::super::kernel::state::{filter, marker};
use super::super::kernel::{MAX_RETRIES, Result, Service, ServiceError};

impl Service {
    /// `POST /v1/forges/{forge}/webhook`: one delivery of forge `name`.
    pub async fn receive_forge_webhook(
        &self,
        name: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ForgeWebhookReceipt> {
        let Some(config) = self.config().forges.iter().find(|f| f.name == name) else {
            return Err(ServiceError::NotFound(format!("no forge named {name:?} is configured")));
        };
        let refused = |why: String| {
            metrics::counter!("breakglass_forge_webhooks_total", "forge" => name.to_owned(), "outcome" => "refused")
                .increment(1);
            tracing::warn!(forge = name, error = %why, "forge webhook refused");
            ServiceError::Unauthorized(format!("forge webhook refused: {why}"))
        };
        if config.webhook_secrets.is_empty() {
            return Err(refused(format!("forge {name} has no webhook secret configured (webhook_secret_file)")));
        }
        // Authenticated before anything in the body is read.
        let pairs = Headers::new(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let delivery = match config.kind {
            ForgeKind::Github => verify_github(&pairs, body, &config.webhook_secrets),
            ForgeKind::Gitlab => {
                let tokens = config.webhook_secrets.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
                verify_gitlab(&pairs, body, &GitLabAuth::Token(tokens), self.now())
            }
        }
        .map_err(|e| refused(e.to_string()))?;
        let delivery_id = delivery.delivery_id().to_owned();
        let push = match parse_push(&delivery, body)
            .map_err(|e| ServiceError::BadRequest(format!("invalid {name} webhook delivery {delivery_id}: {e}")))?
        {
            ForgeEvent::Push(p) => p,
            ForgeEvent::Other { event, .. } => {
                return Ok(ForgeWebhookReceipt {
                    delivery: delivery_id,
                    ignored: Some(format!("a {event} event, not a push")),
                    ..ForgeWebhookReceipt::default()
                });
            }
        };
        let Some(repo) = config.repos.iter().find(|r| r.forge_repo.eq_ignore_ascii_case(&push.repository)) else {
            return Ok(ForgeWebhookReceipt {
                delivery: delivery_id,
                ignored: Some(format!("{} is not a repository breakglass manages on {name}", push.repository)),
                ..ForgeWebhookReceipt::default()
            });
        };
        let now = self.now();
        let principal = self.principal_of(name, &push);
        let grant = match &principal {
            Some(p) => self.grant_covering(p, &repo.name, &push.ref_name, now).await?,
            None => None,
        };
        let untagged: Vec<String> = match &grant {
            Some(g) => push.commits_not_tagged_with(&g.id).iter().map(|c| c.id.clone()).collect(),
            None => Vec::new(),
        };
        let protected = repo.protected.iter().any(|p| {
            Scope::parse(&format!("git:{}@{p}", repo.name)).is_ok_and(|s| {
                Scope::parse(&format!("git:{}@{}", repo.name, push.ref_name)).is_ok_and(|t| s.covers(&t))
            })
        });
        let commits: Vec<serde_json::Value> = push
            .commits
            .iter()
            .map(|c| {
                json!({ "id": c.id, "message": c.message, "author": c.author_name, "tagged": c.grant_tags(),
                        "added": c.added, "removed": c.removed, "modified": c.modified })
            })
            .collect();
        let mut entry = EntryDraft::new(
            principal.as_deref().unwrap_or("forge"),
            "git.push",
            json!({
                "repo": repo.name,
                "ref": push.ref_name,
                "old": push.before,
                "new": push.after,
                "forced": push.forced,
                "created": push.created,
                "deleted": push.deleted,
                "protected": protected,
                "source": format!("forge:{name}"),
                "forge_repo": push.repository,
                "pusher": { "login": push.pusher.login, "id": push.pusher.id, "principal": principal },
                "delivery": delivery_id,
                "commits": commits,
                "commits_truncated": push.commits_truncated,
                "untagged": untagged,
                "under_grant": grant.is_some(),
            }),
        );
        if let Some(g) = &grant {
            entry = entry.with_grant(&g.id);
        }
        // Recorded once per delivery: a replay fails this marker.
        let seen = marker(EVENT_KIND, &format!("forge:{name}:{delivery_id}"), "recorded", name, None);
        let rec = RefRecord {
            refname: push.ref_name.clone(),
            value: push.after.clone(),
            at: now,
            source: format!("forge:{name}"),
            by: principal.clone().unwrap_or_else(|| push.pusher.login.clone()),
            grant: grant.as_ref().map(|g| g.id.clone()),
        };
        // Untagged commits under a grant: people hear of it, in the same append.
        let notice = match &grant {
            Some(g) if !untagged.is_empty() => Some(Notice {
                event: NotifyEvent::UntaggedCommits,
                at: now,
                grant: g.id.clone(),
                principal: g.principal.clone(),
                scopes: g.scopes.clone(),
                capabilities: g.capabilities.clone(),
                reason: g.reason.clone(),
                state: g.state.as_str().into(),
                expires_at: g.expires_at,
                by: None,
                approvers: Vec::new(),
                approvals: None,
                incident: g.incident.clone(),
                detail: Some(format!("{} on {} of {}", untagged.join(", "), push.ref_name, repo.name)),
                server: self.config().issuer.clone(),
                drift: None,
            }),
            _ => None,
        };
        for _ in 0..MAX_RETRIES {
            let mut mutations = vec![seen.clone()];
            if protected {
                mutations.push(self.ref_mutation(&repo.name, rec.clone()).await?);
            }
            if let Some(n) = &notice {
                mutations.extend(self.queue(vec![(n.clone(), now)], now)?);
            }
            match self.append_with(vec![entry.clone()], mutations).await {
                Ok(r) => {
                    if notice.is_some() {
                        self.wake_outbox();
                    }
                    metrics::counter!("breakglass_forge_webhooks_total", "forge" => name.to_owned(), "outcome" => "recorded")
                        .increment(1);
                    return Ok(ForgeWebhookReceipt {
                        delivery: delivery_id,
                        index: Some(r.index),
                        grant: grant.map(|g| g.id),
                        untagged,
                        ..ForgeWebhookReceipt::default()
                    });
                }
                Err(AppendError::Conflict { kind, .. }) if kind == EVENT_KIND => {
                    return Ok(ForgeWebhookReceipt {
                        delivery: delivery_id,
                        duplicate: true,
                        ..ForgeWebhookReceipt::default()
                    });
                }
                // The ref's record moved meanwhile: read it again.
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(format!("delivery {delivery_id}: its ref kept changing; redeliver it")))
    }

    /// The principal a forge account is, through the principals file: by
    /// the account's numeric id when the payload gives one, else by login.
    fn principal_of(&self, forge: &str, push: &ForgePush) -> Option<String> {
        let loaded = self.loaded();
        let by_id = push.pusher.id.map(|id| format!("{forge}:id:{id}"));
        let by_login = format!("{forge}:{}", push.pusher.login);
        loaded
            .principals
            .iter()
            .find(|p| p.accounts.iter().any(|a| Some(a) == by_id.as_ref()))
            .or_else(|| loaded.principals.iter().find(|p| p.accounts.contains(&by_login)))
            .map(|p| p.name.clone())
    }

    /// The effective grant of `principal` that lets them push to `reference`.
    async fn grant_covering(
        &self,
        principal: &str,
        repo: &str,
        reference: &str,
        now: Timestamp,
    ) -> Result<Option<Grant>> {
        let Ok(target) = Scope::parse(&format!("git:{repo}@{reference}")) else { return Ok(None) };
        let active = filter(&[GrantState::Active.as_str()], Some(principal), 1000);
        Ok(self.objects::<Grant>(&active).await?.into_iter().map(|v| v.value).find(|g| {
            g.is_effective(now)
                && g.scopes.iter().any(|s| Scope::parse(s).is_ok_and(|s| s.covers(&target)))
                && g.capabilities.iter().any(|c| {
                    matches!(Capability::parse(c), Ok(Capability::Push | Capability::ForcePush | Capability::Delete))
                })
        }))
    }
}
