//! The HTTP API's request and response bodies, shared by the server and the
//! client so that the two cannot drift apart. Pure data; the routes are in
//! the server crate and listed in docs/api.md.
//!
//! Conventions: every body is JSON; times are integers, milliseconds since
//! the Unix epoch, UTC (see [`Timestamp`]); durations are strings like `30m`
//! or `1h30m`; errors are [`ErrorBody`] with a 4xx or 5xx status.

use serde::{Deserialize, Serialize};

use crate::grant::{Approval, Extension, Grant, GrantState};
use crate::time::Timestamp;

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `unauthorized`, `policy_denied`.
    pub code: String,
    /// A sentence for a human that names the input and what is wrong.
    pub message: String,
    /// Explanations from policy, when policy decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// `POST /v1/login/challenge`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    pub principal: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChallengeResponse {
    /// The exact bytes to sign with `ssh-keygen -Y sign -n <namespace>`.
    pub challenge: String,
    pub namespace: String,
    pub expires_at: Timestamp,
}

/// `POST /v1/login`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub principal: String,
    pub challenge: String,
    /// The armored SSHSIG signature (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// A bearer session token; shown once, stored hashed by the server.
    pub token: String,
    pub principal: String,
    pub expires_at: Timestamp,
    /// The SHA-256 fingerprint of the key that signed.
    pub key_fingerprint: String,
}

/// One login session, as `GET /v1/sessions` lists it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    pub id: String,
    pub principal: String,
    /// The SHA-256 fingerprint of the SSH key that logged in; the session
    /// lasts only while that key is the principal's in the principals file.
    pub key_fingerprint: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// When it was ended (logout, revocation, its key or principal leaving
    /// the principals file).
    pub ended_at: Option<Timestamp>,
    /// `active`, `expired` or `ended`.
    pub state: String,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// `GET /v1/sessions`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// `POST /v1/logout`, `DELETE /v1/sessions/{id}`, `DELETE /v1/sessions?principal=`:
/// the sessions this call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionsEnded {
    pub ended: Vec<SessionView>,
}

/// `GET /v1/whoami`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// The principal (for a session) or the token's name (for an API token).
    pub name: String,
    /// `session` or `api-token`.
    pub kind: String,
    /// For API tokens: `admin`, `service` or `reader`; for sessions: `user`.
    pub role: String,
    pub groups: Vec<String>,
}

/// `POST /v1/grants`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub scopes: Vec<String>,
    pub capabilities: Vec<String>,
    /// e.g. `30m`.
    pub duration: String,
    pub reason: String,
    #[serde(default)]
    pub incident: Option<String>,
    /// A rehearsal (`breakglass drill --server`): allowed only on drill
    /// scopes (repository or project `breakglass-drill[/...]`); the grant's
    /// id starts `gd_` and every log entry naming it carries `"drill": true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
}

/// `POST /v1/drills`: the result of a drill against a live server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrillReport {
    pub ok: bool,
    pub total_ms: f64,
    pub steps: Vec<DrillStep>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub failed: Option<String>,
    /// The drill's grant, when the drill got that far.
    #[serde(default)]
    pub grant: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DrillStep {
    pub step: String,
    pub ms: f64,
    pub ok: bool,
    pub detail: String,
}

/// A stored drill result (`GET /v1/drills`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillRecord {
    pub id: String,
    pub at: Timestamp,
    /// Who ran it.
    pub by: String,
    /// The log entry (`drill.completed`) that records it.
    pub index: Option<u64>,
    #[serde(flatten)]
    pub report: DrillReport,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrillList {
    /// Newest first.
    pub drills: Vec<DrillRecord>,
}

/// `POST /v1/grants/{id}/deny` and `/revoke`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

/// `POST /v1/grants/{id}/approve`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /v1/grants/{id}/extend`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// e.g. `15m`.
    pub by: String,
    pub reason: String,
}

/// A grant as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantView {
    pub id: String,
    pub principal: String,
    pub scopes: Vec<String>,
    pub capabilities: Vec<String>,
    pub reason: String,
    pub incident: Option<String>,
    /// The stored state, except that an active grant past its expiry (or a
    /// pending one past its lapse time) shows as `expired` (`lapsed`) even
    /// before the server has written that down.
    pub state: GrantState,
    /// Whether the grant is honoured right now.
    pub effective: bool,
    pub requested_at: Timestamp,
    pub duration: String,
    pub max_duration: String,
    pub approvals_required: u32,
    pub approvals: Vec<Approval>,
    pub pending_until: Timestamp,
    pub activated_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub extensions: Vec<Extension>,
    pub ended_at: Option<Timestamp>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    /// The log indexes of the entries that recorded this grant's changes.
    #[serde(default)]
    pub log_indexes: Vec<u64>,
    /// What this grant opened (or is opening, or closed) on hosted forges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forge: Vec<ForgeBypassView>,
}

/// One bypass a grant sets on a hosted forge, or takes away again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeBypassView {
    pub forge: String,
    /// The repository's name in scopes.
    pub repo: String,
    /// `apply` (on activation) or `remove` (at the end).
    pub action: String,
    /// `pending` (being carried out, retried until it succeeds), `done`, or
    /// `dropped` (an apply for a grant that ended first).
    pub status: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The account on the forge (`login`), once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// `GET /v1/forges`: one managed repository on a hosted forge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeRepoStatus {
    pub forge: String,
    /// The repository's name in scopes.
    pub repo: String,
    /// `owner/repo` on the forge.
    pub forge_repo: String,
    /// The protection breakglass owns there, normalized; absent when there is none.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub protection: Option<serde_json::Value>,
    /// The hash of the protection `forge install` recorded.
    pub baseline_sha256: Option<String>,
    /// Whether the live protection is still the baseline.
    pub protection_matches_baseline: Option<bool>,
    /// Who holds a bypass now, and whether an effective grant covers them.
    pub holders: Vec<ForgeHolder>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeHolder {
    pub login: String,
    pub id: u64,
    pub covered: bool,
}

/// `GET /v1/forges`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeStatusList {
    pub repos: Vec<ForgeRepoStatus>,
}

/// `POST /v1/forges/{forge}/webhook`: what a delivery did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeWebhookReceipt {
    /// The forge's delivery id.
    pub delivery: String,
    /// The log index of the `git.push` entry, when this delivery wrote one.
    pub index: Option<u64>,
    /// This delivery id was recorded before: nothing was written.
    pub duplicate: bool,
    /// Why nothing was recorded (another event, an unmanaged repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// The grant the push was made under, if one covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// Commits of a push under a grant that carry no trailer naming it.
    #[serde(default)]
    pub untagged: Vec<String>,
}

/// `POST /v1/forges/install`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForgeInstall {
    pub forge: String,
    pub repo: String,
}

impl GrantView {
    /// The view of `grant` at `now`.
    pub fn of(grant: &Grant, now: Timestamp, log_indexes: Vec<u64>) -> GrantView {
        let mut shown = grant.clone();
        // Show what is true at `now`, not what the timer has got round to.
        let _ = shown.expire(now);
        GrantView {
            id: grant.id.clone(),
            principal: grant.principal.clone(),
            scopes: grant.scopes.clone(),
            capabilities: grant.capabilities.clone(),
            reason: grant.reason.clone(),
            incident: grant.incident.clone(),
            state: shown.state,
            effective: grant.is_effective(now),
            requested_at: grant.requested_at,
            duration: crate::grant::human_duration(grant.duration_ms),
            max_duration: crate::grant::human_duration(grant.max_duration_ms),
            approvals_required: grant.approvals_required,
            approvals: grant.approvals.clone(),
            pending_until: grant.pending_until,
            activated_at: grant.activated_at,
            expires_at: shown.expires_at,
            extensions: grant.extensions.clone(),
            ended_at: shown.ended_at,
            ended_by: shown.ended_by.clone(),
            end_reason: shown.end_reason.clone(),
            log_indexes,
            forge: Vec::new(),
        }
    }
}

/// `GET /v1/grants`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantList {
    pub grants: Vec<GrantView>,
}

/// `GET /v1/grants/{id}/status`: the hot path for hooks and CI steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantStatus {
    pub id: String,
    pub principal: String,
    pub state: GrantState,
    pub effective: bool,
    pub expires_at: Option<Timestamp>,
}

/// `GET /v1/check?principal=..&scope=..&capability=..`: is there an
/// effective grant held by the principal that covers the scope with the
/// capability?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckResponse {
    pub allowed: bool,
    /// The grant that allows it (the one that expires last), if any.
    pub grant: Option<GrantStatus>,
}

/// `POST /v1/grants/{id}/token`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The signed grant token (EdDSA JWT).
    pub token: String,
    pub key_id: String,
    pub expires_at: Timestamp,
}

/// `POST /v1/tokens`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    pub name: String,
    /// `admin`, `service` or `reader`.
    pub role: String,
    /// Optional lifetime in hours or days, e.g. `720h` or `90d` (at most ten years).
    #[serde(default)]
    pub expires_in: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiTokenView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: Timestamp,
    pub created_by: String,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiToken {
    /// The secret, shown this once; the server keeps only its hash.
    pub token: String,
    #[serde(flatten)]
    pub view: ApiTokenView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiTokenList {
    pub tokens: Vec<ApiTokenView>,
}

/// `POST /v1/policy/reload`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyReloaded {
    pub policies: usize,
    pub principals: usize,
    pub files: Vec<String>,
}

/// `GET /v1/log/checkpoint`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointView {
    pub size: u64,
    /// Base64 of the root hash.
    pub root: String,
    /// The signed note, verbatim.
    pub note: String,
}

/// `GET /v1/log/entries/{index}`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryView {
    pub index: u64,
    /// The entry's canonical JSON, parsed.
    pub entry: serde_json::Value,
}

/// `POST /v1/events`: an event a hook or CI step reports (it may have been
/// spooled while the server was unreachable). Recorded at most once per `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// Unique per event, chosen by the reporter (e.g. 32 random hex digits);
    /// a second delivery of the same id is acknowledged and not recorded again.
    pub id: String,
    /// `git.push.decision`, `git.push`, …
    pub kind: String,
    /// Who acted (the pusher), as the reporting server established it.
    pub actor: String,
    #[serde(default)]
    pub grant: Option<String>,
    /// When it happened, at the reporter (it may reach the server later).
    pub at: Timestamp,
    pub data: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventRecorded {
    pub id: String,
    /// True when this id had been recorded before (nothing new was written).
    pub duplicate: bool,
    /// The log index of the entry, when this delivery wrote it.
    pub index: Option<u64>,
}

/// `POST /v1/repos`: a repository whose hooks breakglass installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RepoRegistration {
    /// The repository's name in scopes: `git:<name>@<ref>`.
    pub name: String,
    /// Protected ref patterns (`refs/heads/main`, `refs/heads/release/*`).
    pub protected: Vec<String>,
    /// Principals who may update protected refs normally (fast-forward only).
    #[serde(default)]
    pub updaters: Vec<String>,
    /// Where the repository is, on the Git server.
    pub path: String,
    pub host: String,
    /// SHA-256 of each hook script as installed, for drift checks.
    #[serde(default)]
    pub hooks: std::collections::BTreeMap<String, String>,
    /// False when `git uninstall` removed the hooks.
    #[serde(default = "yes")]
    pub installed: bool,
    /// The protected refs' values when the hooks were installed (the
    /// baseline drift compares with, until a recorded push moves them).
    #[serde(default)]
    pub refs: std::collections::BTreeMap<String, String>,
    /// Where the hooks spool undelivered events.
    #[serde(default)]
    pub spool: String,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoList {
    pub repos: Vec<RepoRegistration>,
}

/// The last value the log accounts for, of one protected ref: from the
/// baseline `git install` registered or the latest recorded `git.push`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefRecord {
    #[serde(rename = "ref")]
    pub refname: String,
    /// The object id (all zeros: deleted).
    pub value: String,
    /// When the update happened (the hook's clock) or the baseline was taken.
    pub at: Timestamp,
    /// `git.push` or `git.repo.installed`.
    pub source: String,
    /// Who pushed, or who installed.
    pub by: String,
    /// The grant the push was made under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// `GET /v1/repos/{name}/refs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefList {
    pub repo: String,
    pub refs: Vec<RefRecord>,
}

/// `GET /v1/ci/status?scope=..[&gate=..][&principal=..]`: whether
/// break-glass mode applies to a CI job's pipeline scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CiStatus {
    pub scope: String,
    /// Whose grants count: the person who triggered the job.
    pub principal: String,
    pub active: bool,
    pub grant: Option<CiGrant>,
    /// The grant's pipeline capabilities: `skip-gate:<name>`, `advisory-gate:<name>`, `deploy`.
    pub relaxations: Vec<String>,
    /// What to do with the gate asked about.
    pub gate: Option<GateDecision>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CiGrant {
    pub id: String,
    pub principal: String,
    pub reason: String,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateDecision {
    pub name: String,
    /// `run`, `skip` or `advisory`.
    pub mode: String,
    /// Policy forbids relaxing this gate: it runs and counts, grant or not.
    pub never_skippable: bool,
}

/// A person an incident names as responder: what the provider said, and
/// the principal the principals file maps them to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentResponder {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// `GET /v1/incidents/{id}`: an incident as the receivers recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentView {
    /// `<source>:<the provider's id>`, e.g. `pagerduty:Q1ABCD`.
    pub id: String,
    /// `pagerduty`, `opsgenie`, `alertmanager` or `generic`.
    pub source: String,
    pub external_id: String,
    pub title: String,
    /// 1 (most severe) to 5.
    pub severity: i64,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    pub services: Vec<String>,
    pub responders: Vec<IncidentResponder>,
    pub url: Option<String>,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentList {
    pub incidents: Vec<IncidentView>,
}

/// What an incident receiver answers (`POST /v1/incidents/<source>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentReceipt {
    /// Incidents whose change was recorded now.
    pub recorded: Vec<String>,
    /// Incidents whose change had been recorded before (a re-delivery).
    pub duplicates: Vec<String>,
    /// What was not recorded, and why (a ping, a service not watched).
    pub ignored: Vec<String>,
    /// Grants that now end because their incident resolved.
    pub ending_grants: Vec<String>,
}

/// A queued notification and its delivery state (`GET /v1/notifications`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationView {
    /// Also the idempotency id receivers see on every attempt.
    pub id: String,
    pub channel: String,
    /// `requested`, `approved`, `activated`, `extended`, `expiring_soon`,
    /// `expired`, `revoked` or `incident_resolved_ended`.
    pub event: String,
    pub grant: String,
    /// `pending`, `delivered`, `failed` (given up) or `skipped` (no longer true when due).
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
}

/// One log entry of a review's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    /// The entry's index in the log (prove it with `breakglass audit prove`).
    pub index: u64,
    pub time: String,
    pub kind: String,
    pub actor: String,
    /// One line for people.
    pub summary: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// `GET /v1/reviews/{id}`: a post-event review, with the timeline of
/// everything recorded under its grant (empty in lists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewView {
    pub id: String,
    pub grant: String,
    pub principal: String,
    pub scopes: Vec<String>,
    /// `open`, `approved` or `flagged`.
    pub status: String,
    pub overdue: bool,
    pub grant_end: String,
    pub opened_at: Timestamp,
    pub deadline: Timestamp,
    pub escalated_at: Option<Timestamp>,
    pub reviewer: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub notes: String,
    pub lessons: Vec<String>,
    pub follow_ups: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewList {
    pub reviews: Vec<ReviewView>,
}

/// `POST /v1/reviews/{id}/approve` and `/flag`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    pub notes: String,
    #[serde(default)]
    pub lessons: Vec<String>,
    #[serde(default)]
    pub follow_ups: Vec<String>,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DurationStats {
    pub count: u64,
    pub p50_ms: i64,
    pub p90_ms: i64,
    pub max_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CountBy {
    pub name: String,
    pub count: u64,
}

/// `GET /v1/stats`: the friction figures a team watches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsView {
    /// Grants requested since `since` (all when absent).
    pub since: Option<Timestamp>,
    pub requested: u64,
    /// Grants that became active, and of those how many with no human approval.
    pub activated: u64,
    pub auto_approved: u64,
    pub refused_or_lapsed: u64,
    /// From request to active.
    pub request_to_active: DurationStats,
    /// How long grants were active (to their end, or to now while active).
    pub active_for: DurationStats,
    /// Who breaks glass, and where, most first.
    pub by_principal: Vec<CountBy>,
    pub by_scope: Vec<CountBy>,
    pub reviews_open: u64,
    pub reviews_overdue: u64,
    pub reviews_approved: u64,
    pub reviews_flagged: u64,
}

/// One thing that drifted from how breakglass left it, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftFinding {
    /// `grant.past_expiry`, `grant.state_mismatch`, `policy.standing_backdoor`,
    /// `repo.hook_missing`, `repo.hook_modified`, `repo.push_options_off`,
    /// `repo.spool_pending`, `ref.unrecorded`, `log.inconsistent`.
    pub kind: String,
    /// What it is about: a grant id, a policy id, a repository path, a checkpoint.
    pub subject: String,
    pub what: String,
    pub fix: String,
}

/// `GET /v1/drift`: what the server can see for itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftReport {
    pub findings: Vec<DriftFinding>,
}

/// `POST /v1/drift/check`: what the server's drift check (the periodic one,
/// run now) found, and what it recorded in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftCheck {
    /// The host whose repositories were inspected.
    pub host: String,
    /// Everything found now.
    pub findings: Vec<DriftFinding>,
    /// Findings new since the last check: each became a `drift.found` entry
    /// and a `drift_detected` notification.
    pub found: Vec<DriftFinding>,
    /// Findings of earlier checks that are gone: each became a `drift.cleared` entry.
    pub cleared: Vec<DriftFinding>,
    /// Why nothing could be recorded (the log itself may be what drifted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_recorded: Option<String>,
}

/// `GET /v1/log/consistency?old=N`: a consistency proof from size N to the
/// latest checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyView {
    pub old: u64,
    pub new: u64,
    /// Base64 hashes.
    pub proof: Vec<String>,
    /// The latest signed checkpoint (of size `new`).
    pub checkpoint: String,
}
