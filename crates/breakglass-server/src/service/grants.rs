//! Grants: request (policy decides, an open incident may approve), approve,
//! deny, revoke, extend, read, check, grant tokens, and the end of grants
//! whose time is up. Every change goes through [`Service::commit`], so what
//! it sets off (notifications, the review, waking the workers) is the
//! effects' business, committed in the same append.
//!
//! Security: a grant is honoured only while [`Grant::is_effective`] says so
//! at the current time, whatever the stored state (the expiry timer may be
//! late; the server may have been down). The caller controls the request's
//! every field and may hold any kind of credential: only a person's own
//! session requests, approves, extends or gets a token as that person.

use breakglass_core::api::{CheckResponse, GrantRequest, GrantStatus, GrantView, TokenResponse};
use breakglass_core::entry::EntryDraft;
use breakglass_core::grant::{Grant, GrantState, Request, parse_duration};
use breakglass_core::policy::{ContextInput, RequestInput};
use breakglass_core::scope::{Capability, Scope};
use breakglass_core::time::Timestamp;
use breakglass_core::token::IssueRequest;
use serde_json::json;

use super::kernel::state::filter;
use super::kernel::{
    Caller, CredentialKind, Loaded, MAX_RETRIES, Result, Service, ServiceError, Stored as _, Transition, Versioned,
    internal, new_id, random_id,
};
use crate::auth::Role;

/// The states a grant may be listed by.
const LISTED: [GrantState; 6] = [
    GrantState::Pending,
    GrantState::Active,
    GrantState::Expired,
    GrantState::Revoked,
    GrantState::Denied,
    GrantState::Lapsed,
];

fn status_of(grant: &Grant, now: Timestamp) -> GrantStatus {
    let v = GrantView::of(grant, now, Vec::new());
    GrantStatus {
        id: grant.id.clone(),
        principal: grant.principal.clone(),
        state: v.state,
        effective: v.effective,
        expires_at: v.expires_at,
    }
}

fn parse_scopes(scopes: &[String]) -> Result<Vec<Scope>> {
    scopes.iter().map(|s| Scope::parse(s).map_err(|e| ServiceError::BadRequest(e.to_string()))).collect()
}

impl Service {
    pub(crate) async fn read_grant(&self, id: &str) -> Result<Versioned<Grant>> {
        self.read::<Grant>(id).await
    }

    /// The effective grants `principal` holds now (stored as active and not
    /// yet past their end).
    pub(crate) async fn effective_grants(&self, principal: &str, now: Timestamp) -> Result<Vec<Grant>> {
        let active = filter(&[GrantState::Active.as_str()], Some(principal), 1000);
        Ok(self.objects::<Grant>(&active).await?.into_iter().map(|v| v.value).filter(|g| g.is_effective(now)).collect())
    }

    pub async fn request(&self, caller: &Caller, req: &GrantRequest) -> Result<GrantView> {
        caller.require_user("request a grant")?;
        if req.reason.trim().is_empty() {
            return Err(ServiceError::BadRequest("a reason is required: say why you need to break glass".into()));
        }
        if req.reason.len() > 2000 {
            return Err(ServiceError::BadRequest("the reason is longer than 2000 characters".into()));
        }
        breakglass_core::grant::check_request_fields(&req.reason, &req.scopes, &req.capabilities)?;
        let scopes = parse_scopes(&req.scopes)?;
        let caps = req
            .capabilities
            .iter()
            .map(|c| Capability::parse(c).map_err(|e| ServiceError::BadRequest(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        if scopes.is_empty() || caps.is_empty() {
            return Err(ServiceError::BadRequest("a request names at least one scope and one capability".into()));
        }
        if req.drill
            && let Some(s) = scopes.iter().find(|s| !super::drills::is_drill_scope(s))
        {
            return Err(ServiceError::BadRequest(format!(
                "a drill may name only drill scopes (repository or project breakglass-drill or breakglass-drill/...), not {s}"
            )));
        }
        let duration_ms = parse_duration(&req.duration).map_err(ServiceError::BadRequest)?;
        let now = self.now();
        let loaded = self.loaded();
        let mut input = RequestInput {
            principal: caller.name.clone(),
            groups: caller.groups.clone(),
            scopes: scopes.clone(),
            capabilities: caps.clone(),
            duration_ms,
            reason: req.reason.clone(),
            incident: None,
            overdue_reviews: self.overdue_reviews(&caller.name, now).await?,
            now,
            pending_ttl_ms: self.config().pending_ttl_ms,
        };
        // The incident the request rides on: the one it names, else the first
        // open one (most severe first) under which policy auto-approves it.
        let mut incident_id = req.incident.clone();
        let mut picked = false;
        let decision = match &req.incident {
            Some(named) => {
                if let Some(found) = self.find_incident(named).await? {
                    input.incident = Some(found.policy_input(&caller.name, &loaded.principals));
                    incident_id = Some(found.id);
                }
                loaded.policy.decide_request(&input)
            }
            None => {
                let plain = loaded.policy.decide_request(&input);
                let mut chosen = None;
                if !plain.auto_approve {
                    for open in self.open_incidents().await? {
                        input.incident = Some(open.policy_input(&caller.name, &loaded.principals));
                        let d = loaded.policy.decide_request(&input);
                        if d.allowed && d.auto_approve {
                            chosen = Some((open.id, d));
                            break;
                        }
                    }
                }
                match chosen {
                    Some((id, d)) => {
                        incident_id = Some(id);
                        picked = true;
                        d
                    }
                    None => {
                        input.incident = None;
                        plain
                    }
                }
            }
        };
        metrics::counter!("breakglass_policy_decisions_total", "action" => "request", "decision" => if decision.allowed { "allow" } else { "deny" }).increment(1);
        let reasons: Vec<String> = decision.reasons.iter().map(|r| r.to_string()).collect();
        let terms = if decision.allowed { decision.terms.clone() } else { None };
        let Some(terms) = terms else {
            let denials: Vec<String> = decision.denials().map(|r| r.to_string()).collect();
            // The refusal is part of the record: who asked for what, and why not.
            self.append_by(
                caller,
                vec![EntryDraft::new(
                    &caller.name,
                    "grant.refused",
                    json!({
                        "scopes": req.scopes,
                        "capabilities": req.capabilities,
                        "duration_ms": duration_ms,
                        "reason": req.reason,
                        "denials": denials,
                    }),
                )],
                Vec::new(),
            )
            .await?;
            metrics::counter!("breakglass_grant_requests_total", "outcome" => "refused").increment(1);
            return Err(ServiceError::PolicyDenied {
                message: format!("policy does not allow {} this request", caller.name),
                reasons: if denials.is_empty() { reasons } else { denials },
            });
        };
        let id = new_id(if req.drill { super::drills::DRILL_GRANT_PREFIX } else { "gr" }, now)?;
        let (grant, mut drafts) = Grant::request(
            Request {
                id: id.clone(),
                principal: caller.name.clone(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                capabilities: caps.iter().map(|c| c.to_string()).collect(),
                duration_ms,
                reason: req.reason.clone(),
                incident: incident_id,
            },
            &terms,
            now,
        )?;
        if let Some(first) = drafts.first_mut() {
            first.data["policy"] = json!(reasons);
            first.data["session"] = json!(caller.credential);
            if let Some(inc) = &input.incident {
                first.data["incident_context"] = json!({
                    "severity": inc.severity,
                    "status": inc.status,
                    "requester_is_responder": inc.requester_is_responder,
                    "picked_by_server": picked,
                });
            }
        }
        let change = Transition { grant: &grant, before: None, entries: &drafts, now, loaded: &loaded };
        let Some(receipt) = self.commit(Some(caller), &change, Some(0), Vec::new()).await? else {
            return Err(ServiceError::Conflict(format!("grant {id} was created concurrently; try again")));
        };
        metrics::counter!("breakglass_grant_requests_total", "outcome" => if grant.state == GrantState::Active { "activated" } else { "pending" }).increment(1);
        Ok(GrantView::of(&grant, now, (receipt.index..receipt.index + receipt.count).collect()))
    }

    /// Re-reads the grant, applies `change`, and commits it with its entries;
    /// retries when another writer changed the grant in between.
    pub(crate) async fn change_grant<F>(&self, id: &str, change: F) -> Result<GrantView>
    where
        F: FnMut(&mut Grant, Timestamp, &Loaded) -> Result<Vec<EntryDraft>>,
    {
        self.change_grant_by(&Caller::system(), id, change).await
    }

    /// [`Service::change_grant`] for what `caller` asked: its entries name
    /// the credential that acted.
    pub(crate) async fn change_grant_by<F>(&self, caller: &Caller, id: &str, mut change: F) -> Result<GrantView>
    where
        F: FnMut(&mut Grant, Timestamp, &Loaded) -> Result<Vec<EntryDraft>>,
    {
        for _ in 0..MAX_RETRIES {
            let Versioned { value: mut grant, version } = self.read_grant(id).await?;
            let before = grant.state;
            let now = self.now();
            let loaded = self.loaded();
            let drafts = change(&mut grant, now, &loaded)?;
            if !drafts.is_empty() {
                let t = Transition { grant: &grant, before: Some(before), entries: &drafts, now, loaded: &loaded };
                if self.commit(Some(caller), &t, Some(version), Vec::new()).await?.is_none() {
                    continue;
                }
            }
            // Changed, or nothing to change (an idempotent repeat).
            let log = self.history_of::<Grant>(id).await?;
            return Ok(GrantView::of(&grant, now, log));
        }
        Err(ServiceError::Conflict(format!("grant {id} kept changing; try again")))
    }

    fn approval_context(grant: &Grant, now: Timestamp) -> ContextInput {
        ContextInput {
            requester: grant.principal.clone(),
            duration_ms: grant.duration_ms,
            reason: grant.reason.clone(),
            now,
            ..ContextInput::default()
        }
    }

    fn may_approve(loaded: &Loaded, caller: &Caller, grant: &Grant, now: Timestamp) -> Result<()> {
        let scopes = grant
            .scopes
            .iter()
            .map(|s| Scope::parse(s).map_err(|e| internal("a stored grant has a bad scope", e)))
            .collect::<Result<Vec<_>>>()?;
        let d =
            loaded.policy.decide_approval(&caller.name, &caller.groups, &scopes, &Self::approval_context(grant, now));
        metrics::counter!("breakglass_policy_decisions_total", "action" => "approve", "decision" => if d.allowed { "allow" } else { "deny" }).increment(1);
        if d.allowed {
            return Ok(());
        }
        let mut reasons = d.errors.clone();
        if reasons.is_empty() {
            reasons.push(format!("no policy permits {} to approve grants on {}", caller.name, grant.scopes.join(", ")));
        }
        Err(ServiceError::PolicyDenied {
            message: format!("{} may not approve grant {}", caller.name, grant.id),
            reasons,
        })
    }

    pub async fn approve(&self, caller: &Caller, id: &str, comment: Option<&str>) -> Result<GrantView> {
        caller.require_user("approve a grant")?;
        comment.map(breakglass_core::grant::check_comment).transpose()?;
        self.change_grant_by(caller, id, |grant, now, loaded| {
            if grant.principal == caller.name {
                return Err(ServiceError::Forbidden(format!(
                    "{} requested grant {} and cannot approve it",
                    caller.name, grant.id
                )));
            }
            Self::may_approve(loaded, caller, grant, now)?;
            let mut drafts = grant.approve(&caller.name, now)?;
            if let (Some(c), Some(first)) = (comment, drafts.first_mut()) {
                first.data["comment"] = json!(c);
            }
            Ok(drafts)
        })
        .await
    }

    pub async fn deny(&self, caller: &Caller, id: &str, reason: &str) -> Result<GrantView> {
        caller.require_user("deny a grant")?;
        self.change_grant_by(caller, id, |grant, now, loaded| {
            if grant.principal == caller.name {
                return Err(ServiceError::Forbidden(format!(
                    "{} requested grant {} and cannot deny it (revoke it instead)",
                    caller.name, grant.id
                )));
            }
            Self::may_approve(loaded, caller, grant, now)?;
            Ok(grant.deny(&caller.name, reason, now)?)
        })
        .await
    }

    /// The grantee, an admin, or anyone policy lets approve it may revoke a grant.
    pub async fn revoke(&self, caller: &Caller, id: &str, reason: &str) -> Result<GrantView> {
        self.change_grant_by(caller, id, |grant, now, loaded| {
            if !caller.is_admin() && !caller.is_person(&grant.principal) {
                if !caller.is_user() {
                    return Err(ServiceError::Forbidden(format!(
                        "a {} credential ({} {:?}) may not revoke grants: only the grantee's session, an approver's session or an admin API token may",
                        caller.kind.as_str(),
                        caller.role.as_str(),
                        caller.name
                    )));
                }
                Self::may_approve(loaded, caller, grant, now)?;
            }
            Ok(grant.revoke(&caller.name, reason, now)?)
        })
        .await
    }

    /// Only the grantee extends a grant, with a reason, within the maximum
    /// policy gave it at request time.
    pub async fn extend(&self, caller: &Caller, id: &str, by: &str, reason: &str) -> Result<GrantView> {
        let added = parse_duration(by).map_err(ServiceError::BadRequest)?;
        self.change_grant_by(caller, id, |grant, now, _| {
            if !caller.is_person(&grant.principal) {
                return Err(ServiceError::Forbidden(format!(
                    "only {} may extend grant {}, logged in as themselves (this is a {} credential)",
                    grant.principal,
                    grant.id,
                    caller.kind.as_str()
                )));
            }
            Ok(grant.extend(&caller.name, added, reason, now)?)
        })
        .await
    }

    pub async fn show(&self, caller: &Caller, id: &str) -> Result<GrantView> {
        caller.require_reader("read grants")?;
        let grant = self.read_grant(id).await?.value;
        let log = self.history_of::<Grant>(id).await?;
        Ok(GrantView::of(&grant, self.now(), log))
    }

    pub async fn status(&self, caller: &Caller, id: &str) -> Result<GrantStatus> {
        // A grant token reads its own grant's status and nothing else.
        if let Some(own) = &caller.grant
            && own != id
        {
            return Err(ServiceError::Forbidden(format!("a grant token reads only its own grant's status ({own})")));
        }
        let grant = self.read_grant(id).await?.value;
        // A CI job reads the grants of the person who triggered it only.
        if caller.kind == CredentialKind::CiOidc && grant.principal != caller.name {
            return Err(ServiceError::Forbidden(format!(
                "a CI job reads only the grants of the person who triggered it ({})",
                caller.name
            )));
        }
        Ok(status_of(&grant, self.now()))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        state: Option<&str>,
        principal: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantView>> {
        caller.require_reader("list grants")?;
        let now = self.now();
        let mut statuses = Vec::new();
        if let Some(s) = state {
            let Some(wanted) = LISTED.into_iter().find(|l| l.as_str() == s) else {
                return Err(ServiceError::BadRequest(format!(
                    "invalid state {s:?}: expected pending, active, expired, revoked, denied or lapsed"
                )));
            };
            // A grant past its time may still be stored as active or pending.
            statuses.push(wanted.as_str());
            match wanted {
                GrantState::Expired => statuses.push(GrantState::Active.as_str()),
                GrantState::Lapsed => statuses.push(GrantState::Pending.as_str()),
                _ => {}
            }
        }
        let stored = self.objects::<Grant>(&filter(&statuses, principal, limit)).await?;
        Ok(stored
            .iter()
            .map(|v| GrantView::of(&v.value, now, Vec::new()))
            .filter(|v| state.is_none_or(|s| v.state.as_str() == s))
            .collect())
    }

    /// Is there a grant, effective now, held by `principal`, covering
    /// `scope` with `capability`? For hooks and CI steps.
    pub async fn check(
        &self,
        caller: &Caller,
        principal: &str,
        scope: &str,
        capability: &str,
    ) -> Result<CheckResponse> {
        // Hooks and automation ask this about anyone; people and jobs ask
        // about themselves through `status` and `ci/status`.
        if !(matches!(caller.role, Role::Service | Role::Admin) && caller.kind == CredentialKind::ApiToken) {
            return Err(ServiceError::Forbidden(format!(
                "only a service or admin API token may check grants (this is a {} credential)",
                caller.kind.as_str()
            )));
        }
        let scope = Scope::parse(scope).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let cap = Capability::parse(capability).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let now = self.now();
        let mut best: Option<Grant> = None;
        for grant in self.effective_grants(principal, now).await? {
            let covers = grant.scopes.iter().any(|s| Scope::parse(s).is_ok_and(|s| s.covers(&scope)));
            let has = grant.capabilities.iter().any(|c| Capability::parse(c).is_ok_and(|c| c == cap));
            if covers && has && best.as_ref().is_none_or(|b| b.expires_at < grant.expires_at) {
                best = Some(grant);
            }
        }
        Ok(CheckResponse { allowed: best.is_some(), grant: best.map(|g| status_of(&g, now)) })
    }

    /// Signs a grant token for an effective grant, for its holder (or an admin).
    pub async fn token(&self, caller: &Caller, id: &str) -> Result<TokenResponse> {
        let grant = self.read_grant(id).await?.value;
        if !caller.is_admin() && !caller.is_person(&grant.principal) {
            return Err(ServiceError::Forbidden(format!(
                "only {} (logged in as themselves) or an admin API token may get a token for grant {id} (this is a {} credential)",
                grant.principal,
                caller.kind.as_str()
            )));
        }
        let now = self.now();
        if !grant.is_effective(now) {
            let v = GrantView::of(&grant, now, Vec::new());
            return Err(ServiceError::Conflict(format!("grant {id} is {}, not active", v.state.as_str())));
        }
        let jti = random_id(16)?;
        let issuer = &self.config().issuer;
        let issue =
            IssueRequest::for_grant(&grant, issuer, &jti).map_err(|e| internal("cannot issue", e.to_string()))?;
        let signer = &self.keys().token_signer;
        let token = signer.issue(&issue, now).map_err(|e| ServiceError::Conflict(e.to_string()))?;
        let expires_at = grant.expires_at.unwrap_or(now);
        let issued = EntryDraft::new(
            &caller.name,
            "grant.token_issued",
            json!({ "jti": jti, "key_id": signer.key_id(), "expires_at": expires_at.to_rfc3339() }),
        )
        .with_grant(id);
        self.append_by(caller, vec![issued], Vec::new()).await?;
        Ok(TokenResponse { token, key_id: signer.key_id().to_owned(), expires_at })
    }

    // ---- the end of grants whose time is up ----------------------------------

    /// Ends every grant whose time is up at `now` (expiry or lapse), each
    /// with its entry, at its exact time. Returns how many it ended; another
    /// server ending one first is not an error.
    pub async fn expire_grants(&self) -> Result<usize> {
        let now = self.now();
        let due = self.due::<Grant>(&[GrantState::Active.as_str(), GrantState::Pending.as_str()], now, 100).await?;
        let loaded = self.loaded();
        let mut ended = 0;
        for Versioned { value: mut grant, version } in due {
            let before = grant.state;
            let Some((draft, _)) = grant.expire(now) else { continue };
            let drafts = [draft];
            let t = Transition { grant: &grant, before: Some(before), entries: &drafts, now, loaded: &loaded };
            if self.commit(None, &t, Some(version), Vec::new()).await?.is_some() {
                ended += 1;
                metrics::counter!("breakglass_grants_ended_total", "state" => grant.state.as_str()).increment(1);
            }
        }
        Ok(ended)
    }

    /// When the next grant is due to end (expire or lapse), if any.
    pub async fn next_grant_due(&self) -> Result<Option<Timestamp>> {
        self.next_due_of::<Grant>(&[GrantState::Active.as_str(), GrantState::Pending.as_str()]).await
    }

    /// Counts of grants by stored state, for metrics.
    pub async fn grant_counts(&self) -> Result<Vec<(&'static str, usize)>> {
        let mut out = Vec::new();
        for s in LISTED {
            let f = filter(&[s.as_str()], None, 10_000);
            out.push((s.as_str(), self.store().objects(Grant::KIND, &f).await?.len()));
        }
        Ok(out)
    }
}
