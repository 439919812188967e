//! Incident webhooks: authenticating and parsing what PagerDuty (v3
//! webhooks), Opsgenie (the outgoing Webhook integration), Prometheus
//! Alertmanager (`webhook_config`) and breakglass's own generic signed JSON
//! form send, and normalising each delivery into [`IncidentUpdate`]s that the
//! server records as incident state.
//!
//! **Security-sensitive.** Policy may approve a break-glass request at once
//! because an incident of severity 1 or 2 is open and the requester responds
//! to it, so what this module accepts decides who reaches production without
//! a human approver. Everything fails closed: a receiver with no secret
//! refuses every delivery, signatures and tokens are compared in constant
//! time, bodies are bounded and strictly typed, and every refusal says what is
//! wrong without repeating a secret, a signature or a token (untrusted strings
//! are cut short before they go into a message).
//!
//! Nothing here does IO or reads the clock: the server passes the raw body,
//! the header values and `now`. The server authenticates first and parses
//! second; the parsers trust nothing either way.
//!
//! # Authentication
//!
//! | Provider | Function | Header(s) |
//! |---|---|---|
//! | PagerDuty v3 | [`verify_pagerduty`], then [`check_fresh`] on the parsed `occurred_at` | `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]` |
//! | Opsgenie | [`verify_opsgenie`] | `Authorization: Bearer <token>` or `Authorization: Basic <base64(user:password)>` |
//! | Alertmanager | [`verify_bearer`] | `Authorization: Bearer <token>` |
//! | generic | [`verify_generic`] (replay window included) | `X-Breakglass-Timestamp`, `X-Breakglass-Signature` |
//!
//! - **PagerDuty** signs the raw body with HMAC-SHA256 under each of the
//!   subscription's secrets and sends the hex results as comma-separated
//!   `v1=` entries (several during a secret rotation). A delivery is accepted
//!   when any `v1` entry matches the HMAC under any configured secret, so both
//!   PagerDuty's side and ours can rotate. Entries of other versions are
//!   ignored, but a header with no `v1` entry is refused. The signature does
//!   not cover a time, so the server must also call [`check_fresh`] with the
//!   body's `event.occurred_at` (from [`parse_pagerduty`]) to refuse replays;
//!   `max_age` must exceed PagerDuty's retry window.
//! - **Opsgenie**'s outgoing Webhook integration neither signs its requests
//!   nor has an authentication setting of its own; what it has is *custom
//!   headers* (a name and a value, sent with every call). The operator adds
//!   a header named `Authorization` whose value is `Bearer <token>` or
//!   `Basic <base64 of user:password>`, and configures the same token, or the
//!   same `user:password`, here. (`GenieKey` is how callers authenticate *to*
//!   Opsgenie's API, not what its webhooks send, so it is refused.) Nothing
//!   binds such a header to the body or to a time: serve the receiver over
//!   TLS only and use a long random token.
//! - **Alertmanager**'s `webhook_config.http_config.authorization` sends
//!   `Authorization: Bearer <credentials>` (its default type).
//! - **generic**: see [the generic form](#the-generic-form).
//!
//! Tokens are compared through their SHA-256 digests, in constant time, with
//! every configured token; HMACs are compared in constant time with
//! [`hmac::digest::CtOutput`]. An empty secret or token in the configuration
//! is ignored (an empty HMAC key is known to everyone), and a configuration
//! with nothing else is [`AuthError::NotConfigured`].
//!
//! # What is recorded
//!
//! Each delivery becomes zero or more [`IncidentUpdate`]s. Some events say
//! nothing about the incident's state (a responder was added, a tag changed);
//! their update has [`IncidentUpdate::status_known`] `false`, and the server
//! then keeps the status it knows (a resolved incident is never reopened by a
//! note). Responders are the people *this event* names: the server adds them
//! to those it knows. `severity: None` means the payload does not say.
//!
//! Severity is 1 (most severe) to 5 everywhere.
//!
//! **PagerDuty** ([`parse_pagerduty`]). Events whose `event.data.type` is
//! `incident` (`incident.triggered`, `.acknowledged`, `.unacknowledged`,
//! `.resolved`, `.reopened`, `.reassigned`, `.escalated`, `.delegated`,
//! `.priority_updated`, …) give an update: `external_id` = `data.id`, status
//! from `data.status` (or from the event type when absent), title
//! `data.title`, service `data.service.summary`, responders `data.assignees[]`
//! (`id` and `summary`, the user's name; v3 payloads carry no e-mail, so the
//! server maps PagerDuty user ids to principals), URL `data.html_url`.
//! Severity: `data.priority.summary` `P1`..`P5` gives 1..5; without a
//! priority, or with a custom priority name, `data.urgency` `high` gives 2 and
//! `low` gives 4. `incident.responder.added` (and `incident.responder.replied`
//! when `data.state` is `accepted`) give an update with `status_known: false`
//! whose one responder is `data.user`. Notes, status updates, `pagey.ping`,
//! service events and every other resource give `None`: nothing to record.
//! `event_id` = `event.id`.
//!
//! **Opsgenie** ([`parse_opsgenie`]). `external_id` = `alert.alertId`, title
//! `alert.message`. Status by `action`: `Create` and `UnAcknowledge` are
//! triggered, `Acknowledge` is acknowledged, `Close` and `Delete` are
//! resolved; every other action (`AddNote`, `AddTags`, `AssignOwnership`,
//! `Escalate`, custom actions, …) has `status_known: false`. Severity from
//! `alert.priority` (`"P1"`..`"P5"`, or the number 1..5 that some deliveries
//! carry). **Services** come from tags of the form `service:<name>`
//! (`service:payments-api` → `payments-api`), the prefix matched ignoring
//! case: tags are the one free-text field present on most actions, and
//! `teams` carries team ids, not service names. **Responders**, from the
//! documented fields only: for `Acknowledge` and `TakeOwnership` the acting
//! user (`alert.userId`, `alert.username`), for `AssignOwnership`
//! `alert.owner`, for `AddRecipient` `alert.recipient`, for `Escalate` the
//! notified user in `escalationNotify` (when its `entity` is `user`).
//! `alert.recipients` on `Create` are routing targets (ids, possibly teams or
//! schedules), not people who respond, so they are not used. A login with an
//! `@` is taken as an e-mail, otherwise as a name. `occurred_at` is
//! `alert.updatedAt` (Opsgenie sends nanoseconds; microseconds and
//! milliseconds are recognised by magnitude), else `alert.createdAt`.
//! Opsgenie gives no delivery id, so `event_id` is the SHA-256 of the body.
//!
//! **Alertmanager** ([`parse_alertmanager`]). `version` must be `"4"`. By
//! default one update per notification, for the alert group: `external_id` =
//! `groupKey`, status `firing` → triggered, `resolved` → resolved, `event_id`
//! = SHA-256 hex of the body, URL `externalURL`, title
//! `commonAnnotations.summary`, else the `alertname` (common, group, or of the
//! first alert). With [`AlertmanagerOptions::one_incident_per_alert`], one
//! update per alert instead: `external_id` = `fingerprint`, `event_id` =
//! `<body sha256>:<index>`, URL `generatorURL`. Severity is the most severe
//! value of the severity label ([`AlertmanagerOptions::severity_label`]) among
//! the firing alerts (among all alerts once the group is resolved), mapped,
//! ignoring case:
//!
//! | Label value | Severity |
//! |---|---|
//! | `critical`, `crit`, `page`, `emergency`, `fatal`, `sev1`, `sev-1`, `p1`, `1` | 1 |
//! | `high`, `error`, `major`, `sev2`, `sev-2`, `p2`, `2` | 2 |
//! | `warning`, `warn`, `minor`, `medium`, `sev3`, `sev-3`, `p3`, `3` | 3 |
//! | `info`, `informational`, `low`, `notice`, `sev4`, `sev-4`, `p4`, `4` | 4 |
//! | any other value | 5 |
//! | no alert has the label | `None` |
//!
//! Services are the distinct values of the service label
//! ([`AlertmanagerOptions::service_label`]). Responders come from the
//! annotation, or else the label, named by
//! [`AlertmanagerOptions::responders_key`] (default `responders`), on each
//! alert and in `commonAnnotations`: a comma-separated list in which an entry
//! with an `@` is an e-mail and any other entry a name, for example
//! `responders: "alice@example.com, bob@example.com"` in the alerting rule's
//! annotations. `occurred_at` is the latest `startsAt` of a firing alert or
//! `endsAt` of a resolved one (Go's zero time, `0001-01-01T00:00:00Z`, and
//! other times before 1970 count as absent).
//!
//! # The generic form
//!
//! For any other tool, breakglass defines one JSON body ([`parse_generic`]):
//!
//! ```json
//! {
//!   "id": "INC-2021-0042",
//!   "event_id": "evt-0042-triggered",
//!   "title": "Payments API error rate above 5%",
//!   "severity": 1,
//!   "status": "triggered",
//!   "services": ["payments-api"],
//!   "responders": [{"email": "alice@example.com", "name": "Alice Example", "id": "alice"}],
//!   "occurred_at": "2021-03-04T10:00:00Z",
//!   "url": "https://status.example.com/incidents/INC-2021-0042"
//! }
//! ```
//!
//! `id`, `title` and `status` (`triggered`, `acknowledged` or `resolved`) are
//! required. `severity` is an integer from 1 (most severe) to 5, or absent
//! (the previous value is kept). `event_id` (default: SHA-256 of the body)
//! lets the sender's retries be recognised. Each responder needs at least one
//! of `email`, `name` and `id`. `occurred_at` is RFC 3339; `url` is http(s).
//! Unknown members are ignored, so senders may add their own.
//!
//! It is sent with two headers:
//!
//! ```text
//! X-Breakglass-Timestamp: 1614852000
//! X-Breakglass-Signature: v1=<hex HMAC-SHA256(secret, "1614852000." + body)>
//! ```
//!
//! The timestamp is whole Unix seconds, and the signature covers it, so a
//! captured delivery cannot be replayed outside the tolerance window
//! ([`verify_generic`]). Several comma-separated `v1=` entries are accepted
//! for secret rotation, as for PagerDuty. [`sign_generic`] makes the header
//! value; with a shell:
//!
//! ```text
//! ts=$(date +%s)
//! sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
//! curl -H "X-Breakglass-Timestamp: $ts" -H "X-Breakglass-Signature: v1=$sig" --data "$body" …
//! ```
//!
//! # Limits
//!
//! Bodies over [`MAX_BODY_BYTES`] are refused before parsing; JSON nesting is
//! bounded by `serde_json` (128 levels); an object that names a member twice,
//! at any depth, is refused ([`crate::json`]), as the API refuses it. Ids longer than [`MAX_ID_CHARS`],
//! names (services, responders) longer than [`MAX_NAME_CHARS`], URLs longer
//! than [`MAX_URL_CHARS`] or not http(s), and more than [`MAX_LIST_ITEMS`]
//! services or responders in one update are errors, as are control
//! characters in any of them: a truncated e-mail could name someone else.
//! Titles are only displayed, so they are cut to [`MAX_TITLE_CHARS`] and their
//! control characters become spaces (no terminal escapes reach a CLI).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// Webhook bodies longer than this are refused before any parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Authentication headers longer than this are refused before any parsing.
pub const MAX_HEADER_BYTES: usize = 4096;
/// A signature header holds at most this many entries.
pub const MAX_SIGNATURES: usize = 16;
/// The longest incident or event id accepted, in characters (Alertmanager
/// group keys repeat label values, so they can be long).
pub const MAX_ID_CHARS: usize = 1024;
/// The longest service or responder name, e-mail or id, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Titles are cut to this many characters.
pub const MAX_TITLE_CHARS: usize = 512;
/// The longest URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// One update names at most this many services, and this many responders.
pub const MAX_LIST_ITEMS: usize = 256;
/// PagerDuty's signature header.
pub const PAGERDUTY_SIGNATURE_HEADER: &str = "X-PagerDuty-Signature";
/// The generic form's timestamp header: whole Unix seconds.
pub const GENERIC_TIMESTAMP_HEADER: &str = "X-Breakglass-Timestamp";
/// The generic form's signature header: `v1=<hex>`, comma-separated.
pub const GENERIC_SIGNATURE_HEADER: &str = "X-Breakglass-Signature";
/// The header that carries bearer tokens and basic credentials.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// Untrusted strings are cut to this many characters in error messages.
const MAX_ECHO_CHARS: usize = 64;
/// A v1 signature: HMAC-SHA256, 32 bytes.
const SIGNATURE_BYTES: usize = 32;
/// The longest `X-Breakglass-Timestamp` (seconds until the year 33658).
const MAX_TIMESTAMP_DIGITS: usize = 12;

type HmacSha256 = Hmac<Sha256>;

/// Where an incident update came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    PagerDuty,
    Opsgenie,
    Alertmanager,
    Generic,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::PagerDuty, Source::Opsgenie, Source::Alertmanager, Source::Generic];

    /// `pagerduty`, `opsgenie`, `alertmanager` or `generic` (also the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::PagerDuty => "pagerduty",
            Source::Opsgenie => "opsgenie",
            Source::Alertmanager => "alertmanager",
            Source::Generic => "generic",
        }
    }

    /// The provider's name for people.
    fn display_name(self) -> &'static str {
        match self {
            Source::PagerDuty => "PagerDuty",
            Source::Opsgenie => "Opsgenie",
            Source::Alertmanager => "Alertmanager",
            Source::Generic => "generic incident",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Source, String> {
        Source::ALL.into_iter().find(|src| src.as_str() == s).ok_or_else(|| {
            format!("unknown incident source {:?}: expected pagerduty, opsgenie, alertmanager or generic", echo(s))
        })
    }
}

/// Checks an incident id as a grant names it: `<source>:<provider id>`, the
/// source one of [`Source::ALL`] and the provider's id not blank, without
/// control characters, at most [`MAX_ID_CHARS`]. Anything else (`none`,
/// `INC-1` alone, `jira:INC-1`) is refused, so that a grant never records an
/// incident that no receiver could have recorded. The problem, for a
/// message that names the input.
pub fn check_incident_id(id: &str) -> Result<(), String> {
    let sources = "pagerduty, opsgenie, alertmanager or generic";
    let Some((source, external)) = id.split_once(':') else {
        return Err(format!(
            "expected <source>:<provider id>, where the source is {sources} (e.g. pagerduty:PABC123), \
             and no recorded incident has that provider id; a request that rides on no incident names none"
        ));
    };
    if Source::from_str(source).is_err() {
        return Err(format!("the source {:?} is not {sources}", echo(source)));
    }
    if external.trim().is_empty() {
        return Err("the provider id after the source is empty".into());
    }
    if has_control(external) {
        return Err("the provider id contains control characters".into());
    }
    if external.chars().count() > MAX_ID_CHARS {
        return Err(format!("the provider id is longer than {MAX_ID_CHARS} characters"));
    }
    Ok(())
}

/// An incident's state, the same three words everywhere (policy's
/// `incident_status` uses them too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    /// `triggered`, `acknowledged` or `resolved` (also the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Triggered => "triggered",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }

    /// Triggered or acknowledged: someone is (or should be) working on it.
    pub fn is_open(self) -> bool {
        self != IncidentStatus::Resolved
    }

    fn parse(s: &str) -> Option<IncidentStatus> {
        match s {
            "triggered" => Some(IncidentStatus::Triggered),
            "acknowledged" => Some(IncidentStatus::Acknowledged),
            "resolved" => Some(IncidentStatus::Resolved),
            _ => None,
        }
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone the provider says responds to an incident. At least one field is
/// set. The server matches `email` against principals' e-mails (ignoring
/// case) and `id` against provider accounts; `name` is for people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Responder {
    /// The user's id in the provider (a PagerDuty user id, an Opsgenie user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user's e-mail address, if the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A display name or login that is not an e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One change to one incident, normalised from any provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentUpdate {
    pub source: Source,
    /// The provider's incident id: PagerDuty incident id, Opsgenie `alertId`,
    /// Alertmanager `groupKey` (or alert `fingerprint`), generic `id`.
    pub external_id: String,
    /// The provider's id of this delivery, for de-duplication: PagerDuty
    /// `event.id`, generic `event_id`; otherwise the SHA-256 hex of the body
    /// (with `:<index>` when one body gives several updates).
    pub event_id: String,
    /// The provider's name for what happened: `incident.acknowledged`,
    /// `Acknowledge`, `firing`; for the generic form, the status. For logs
    /// and the audit trail.
    pub event_type: String,
    /// Never empty (a placeholder naming the id when the payload has none);
    /// at most [`MAX_TITLE_CHARS`], without control characters.
    pub title: String,
    /// 1 = most severe .. 5; `None` when the payload says nothing (the server
    /// keeps the previous value).
    pub severity: Option<i64>,
    pub status: IncidentStatus,
    /// Whether the event says what `status` is. `false` for events that only
    /// add detail (a responder, a note, a tag): the server then keeps the
    /// status it knows, and records an incident it has never seen as
    /// `status` (`Triggered`, since such events concern open incidents).
    #[serde(default = "yes")]
    pub status_known: bool,
    /// Service names as the provider names them: PagerDuty
    /// `data.service.summary`, Opsgenie `service:<name>` tags, the
    /// Alertmanager service label, the generic `services`. Empty when the
    /// payload names none.
    pub services: Vec<String>,
    /// The responders this event names (to be added to those known).
    pub responders: Vec<Responder>,
    /// When the change happened, by the provider's clock.
    pub occurred_at: Option<Timestamp>,
    /// A link to the incident at the provider (http or https only).
    pub url: Option<String>,
}

fn yes() -> bool {
    true
}

/// Why a webhook delivery was not authenticated. The server answers 401 with
/// the message, which never contains a secret, token or signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this incident webhook receiver is not configured: no (non-empty) secret or token is set, so every delivery is refused"
    )]
    NotConfigured,
    /// The thing that is missing, e.g. `X-PagerDuty-Signature header`.
    #[error("missing {0}")]
    Missing(String),
    /// The header and what is wrong with it.
    #[error("malformed {0}")]
    Malformed(String),
    #[error("{header} header has no v1 signature (found versions: {found}); breakglass checks v1 (HMAC-SHA256) only")]
    NoSupportedSignature { header: String, found: String },
    #[error("Authorization header uses the {found:?} scheme; expected {expected}")]
    WrongScheme { found: String, expected: String },
    #[error("signature does not match: the body was not signed with any configured secret, or was changed on the way")]
    BadSignature,
    #[error("the credentials in the Authorization header do not match any configured token")]
    BadCredentials,
    #[error("event is {age_secs}s old, more than the {max_secs}s allowed (a stale or replayed delivery)")]
    Stale { age_secs: i64, max_secs: i64 },
    #[error("event time is {ahead_secs}s in the future, more than the {max_secs}s allowed (check the sender's clock)")]
    FromTheFuture { ahead_secs: i64, max_secs: i64 },
}

/// Why a webhook body was not understood. The server answers 400 (or 422)
/// with the message, which names the field (as a path like
/// `event.data.status` or `alerts[2].labels`) and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{} webhook body is {len} bytes, more than the {max}-byte limit", provider.display_name())]
    TooLarge { provider: Source, len: usize, max: usize },
    #[error("{} webhook body is not valid JSON: {detail}", provider.display_name())]
    NotJson { provider: Source, detail: String },
    #[error("{} webhook body has no {field}", provider.display_name())]
    MissingField { provider: Source, field: String },
    #[error("{} webhook field {field} is invalid: {problem}", provider.display_name())]
    InvalidField { provider: Source, field: String, problem: String },
}

/// Cuts an untrusted string for an error message; `{:?}` then escapes it.
fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

/// Checks PagerDuty's `X-PagerDuty-Signature` over the raw body: accepted when
/// any `v1` entry is the HMAC-SHA256 of `body` under any of `secrets`.
pub fn verify_pagerduty(signature_header: Option<&str>, body: &[u8], secrets: &[Vec<u8>]) -> Result<(), AuthError> {
    let secrets = usable_secrets(secrets)?;
    let signatures = parse_signatures(PAGERDUTY_SIGNATURE_HEADER, signature_header)?;
    if hmac_matches(&secrets, &[body], &signatures) { Ok(()) } else { Err(AuthError::BadSignature) }
}

/// The replay guard for signed bodies that carry their own time (PagerDuty's
/// `event.occurred_at`): refuses a missing time, one older than `max_age_ms`
/// and one more than `max_age_ms` in the future.
pub fn check_fresh(occurred_at: Option<Timestamp>, now: Timestamp, max_age_ms: i64) -> Result<(), AuthError> {
    let Some(at) = occurred_at else {
        return Err(AuthError::Missing(
            "event time (occurred_at): a signed delivery without its own time cannot be checked for replay".into(),
        ));
    };
    within_window(at, now, max_age_ms)
}

/// Checks the generic form's headers: `X-Breakglass-Timestamp` (whole Unix
/// seconds) within `tolerance_ms` of `now` either way, and
/// `X-Breakglass-Signature`, `v1=<hex HMAC-SHA256 over "<timestamp>.<body>">`
/// (comma-separated entries for rotation), under any of `secrets`. The
/// signature is checked before the time, so a forgery is told only that its
/// signature is bad.
pub fn verify_generic(
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    secrets: &[Vec<u8>],
    now: Timestamp,
    tolerance_ms: i64,
) -> Result<(), AuthError> {
    let secrets = usable_secrets(secrets)?;
    let Some(raw) = timestamp_header else {
        return Err(AuthError::Missing(format!("{GENERIC_TIMESTAMP_HEADER} header")));
    };
    let digits = raw.trim();
    if digits.is_empty() || digits.len() > MAX_TIMESTAMP_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::Malformed(format!(
            "{GENERIC_TIMESTAMP_HEADER} header {:?}: expected whole Unix seconds, like 1614852000",
            echo(raw)
        )));
    }
    let secs: i64 = digits.parse().map_err(|_| {
        AuthError::Malformed(format!("{GENERIC_TIMESTAMP_HEADER} header {:?}: number out of range", echo(raw)))
    })?;
    let signatures = parse_signatures(GENERIC_SIGNATURE_HEADER, signature_header)?;
    if !hmac_matches(&secrets, &[digits.as_bytes(), b".", body], &signatures) {
        return Err(AuthError::BadSignature);
    }
    within_window(Timestamp(secs * 1000), now, tolerance_ms)
}

/// The `X-Breakglass-Signature` value for `body` sent at `timestamp_secs`:
/// `v1=<hex HMAC-SHA256(secret, "<timestamp_secs>.<body>")>`.
pub fn sign_generic(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `Authorization: Bearer <token>` against the configured tokens (the
/// scheme's case is ignored, as RFC 9110 says). Used for Alertmanager.
pub fn verify_bearer(authorization_header: Option<&str>, expected: &[String]) -> Result<(), AuthError> {
    let expected = usable_tokens(expected)?;
    let (scheme, credentials) = split_authorization(authorization_header)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(AuthError::WrongScheme { found: echo(scheme), expected: "Bearer".into() });
    }
    if token_matches(&expected, credentials.as_bytes()) { Ok(()) } else { Err(AuthError::BadCredentials) }
}

/// Checks the `Authorization` custom header an Opsgenie Webhook integration
/// is configured to send: `Bearer <credential>`, or `Basic <base64>` whose
/// decoded `user:password` is a configured credential. Each configured
/// credential is accepted in either form.
pub fn verify_opsgenie(authorization_header: Option<&str>, expected: &[String]) -> Result<(), AuthError> {
    let expected = usable_tokens(expected)?;
    let (scheme, credentials) = split_authorization(authorization_header)?;
    let presented = if scheme.eq_ignore_ascii_case("Bearer") {
        credentials.as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("Basic") {
        let decoded = B64
            .decode(credentials)
            .map_err(|_| AuthError::Malformed("Authorization header: the Basic credentials are not base64".into()))?;
        if !decoded.contains(&b':') {
            return Err(AuthError::Malformed(
                "Authorization header: the Basic credentials are not user:password".into(),
            ));
        }
        decoded
    } else {
        return Err(AuthError::WrongScheme { found: echo(scheme), expected: "Bearer or Basic".into() });
    };
    if token_matches(&expected, &presented) { Ok(()) } else { Err(AuthError::BadCredentials) }
}

fn usable_secrets(secrets: &[Vec<u8>]) -> Result<Vec<&[u8]>, AuthError> {
    let usable: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).filter(|s| !s.is_empty()).collect();
    if usable.is_empty() { Err(AuthError::NotConfigured) } else { Ok(usable) }
}

fn usable_tokens(tokens: &[String]) -> Result<Vec<&[u8]>, AuthError> {
    let usable: Vec<&[u8]> = tokens.iter().map(String::as_bytes).filter(|t| !t.is_empty()).collect();
    if usable.is_empty() { Err(AuthError::NotConfigured) } else { Ok(usable) }
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes any key length")
}

/// The v1 signatures in a `v1=<hex>[,v1=<hex>…]` header. Entries of other
/// versions are skipped; a header without any v1 entry is refused. Signature
/// values never go into messages.
fn parse_signatures(header: &str, value: Option<&str>) -> Result<Vec<[u8; SIGNATURE_BYTES]>, AuthError> {
    let Some(value) = value else { return Err(AuthError::Missing(format!("{header} header"))) };
    if value.len() > MAX_HEADER_BYTES {
        return Err(AuthError::Malformed(format!("{header} header: longer than {MAX_HEADER_BYTES} bytes")));
    }
    if value.trim().is_empty() {
        return Err(AuthError::Malformed(format!("{header} header: empty; expected v1=<64 hex digits>")));
    }
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.len() > MAX_SIGNATURES {
        return Err(AuthError::Malformed(format!(
            "{header} header: {} entries, more than the {MAX_SIGNATURES} accepted",
            entries.len()
        )));
    }
    let mut v1 = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for (idx, entry) in entries.iter().enumerate() {
        let n = idx + 1;
        let Some((version, sig)) = entry.split_once('=') else {
            return Err(AuthError::Malformed(format!(
                "{header} header: entry {n} is not <version>=<signature> (expected v1=<64 hex digits>)"
            )));
        };
        if version.is_empty() {
            return Err(AuthError::Malformed(format!("{header} header: entry {n} has no version before '='")));
        }
        if version != "v1" {
            others.push(format!("{:?}", echo(version)));
            continue;
        }
        let mut bytes = [0u8; SIGNATURE_BYTES];
        if sig.len() != 2 * SIGNATURE_BYTES || hex::decode_to_slice(sig, &mut bytes).is_err() {
            return Err(AuthError::Malformed(format!(
                "{header} header: entry {n} is not v1=<64 hex digits> (an HMAC-SHA256)"
            )));
        }
        v1.push(bytes);
    }
    if v1.is_empty() {
        return Err(AuthError::NoSupportedSignature { header: header.to_owned(), found: others.join(", ") });
    }
    Ok(v1)
}

/// Whether any signature is the HMAC-SHA256 of the concatenated `parts` under
/// any secret. Every pair is compared, each in constant time.
fn hmac_matches(secrets: &[&[u8]], parts: &[&[u8]], signatures: &[[u8; SIGNATURE_BYTES]]) -> bool {
    let mut matched = false;
    for secret in secrets {
        let mut mac = new_mac(secret);
        for part in parts {
            mac.update(part);
        }
        let expected = mac.finalize();
        for sig in signatures {
            let presented = CtOutput::<HmacSha256>::new(Output::<HmacSha256>::clone_from_slice(sig));
            matched |= expected == presented;
        }
    }
    matched
}

/// Whether `presented` equals any of `expected`, compared as SHA-256 digests
/// in constant time (so neither the length nor a prefix leaks).
fn token_matches(expected: &[&[u8]], presented: &[u8]) -> bool {
    let presented = CtOutput::<Sha256>::new(Sha256::digest(presented));
    let mut matched = false;
    for token in expected {
        matched |= CtOutput::<Sha256>::new(Sha256::digest(token)) == presented;
    }
    matched
}

/// Splits `Authorization: <scheme> <credentials>`. Nothing of the
/// credentials goes into a message.
fn split_authorization(header: Option<&str>) -> Result<(&str, &str), AuthError> {
    let Some(value) = header else { return Err(AuthError::Missing(format!("{AUTHORIZATION_HEADER} header"))) };
    if value.len() > MAX_HEADER_BYTES {
        return Err(AuthError::Malformed(format!(
            "{AUTHORIZATION_HEADER} header: longer than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(AuthError::Malformed(format!("{AUTHORIZATION_HEADER} header: empty")));
    }
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return Err(AuthError::Malformed(format!(
            "{AUTHORIZATION_HEADER} header: expected \"<scheme> <credentials>\", like \"Bearer <token>\""
        )));
    };
    let credentials = credentials.trim_start_matches(' ');
    if credentials.is_empty() || credentials.chars().any(char::is_whitespace) {
        return Err(AuthError::Malformed(format!(
            "{AUTHORIZATION_HEADER} header: the credentials after {:?} are empty or contain spaces",
            echo(scheme)
        )));
    }
    Ok((scheme, credentials))
}

/// `at` within `max_ms` of `now`, either way.
fn within_window(at: Timestamp, now: Timestamp, max_ms: i64) -> Result<(), AuthError> {
    let max_ms = max_ms.max(0);
    let age = now.millis().saturating_sub(at.millis());
    if age > max_ms {
        return Err(AuthError::Stale { age_secs: age / 1000, max_secs: max_ms / 1000 });
    }
    if age < -max_ms {
        return Err(AuthError::FromTheFuture { ahead_secs: age.saturating_neg() / 1000, max_secs: max_ms / 1000 });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Parsing: shared helpers
// ---------------------------------------------------------------------------

/// A JSON object being read, with the path that names it in errors.
struct Obj<'a> {
    provider: Source,
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn new(provider: Source, path: String, value: &'a Value) -> Result<Obj<'a>, ParseError> {
        match value {
            Value::Object(map) => Ok(Obj { provider, path, map }),
            other => Err(invalid(
                provider,
                if path.is_empty() { "(the body)" } else { &path },
                format!("expected a JSON object, found {}", describe(other)),
            )),
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// The member, or `None` when it is absent or null.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> ParseError {
        ParseError::MissingField { provider: self.provider, field: self.field(key) }
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> ParseError {
        invalid(self.provider, &self.field(key), problem)
    }

    fn str_opt(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.invalid(key, format!("expected a string, found {}", describe(other)))),
        }
    }

    fn str_req(&self, key: &str) -> Result<&'a str, ParseError> {
        self.str_opt(key)?.ok_or_else(|| self.missing(key))
    }

    fn obj_opt(&self, key: &str) -> Result<Option<Obj<'a>>, ParseError> {
        self.get(key).map(|v| Obj::new(self.provider, self.field(key), v)).transpose()
    }

    fn obj_req(&self, key: &str) -> Result<Obj<'a>, ParseError> {
        self.obj_opt(key)?.ok_or_else(|| self.missing(key))
    }

    fn array_opt(&self, key: &str) -> Result<&'a [Value], ParseError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.invalid(key, format!("expected an array, found {}", describe(other)))),
        }
    }

    /// The members of an array of strings.
    fn strings_opt(&self, key: &str) -> Result<Vec<&'a str>, ParseError> {
        self.array_opt(key)?
            .iter()
            .enumerate()
            .map(|(idx, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                other => {
                    Err(self.invalid(&format!("{key}[{idx}]"), format!("expected a string, found {}", describe(other))))
                }
            })
            .collect()
    }

    /// The objects of an array, each with its path.
    fn objects_opt(&self, key: &str) -> Result<Vec<Obj<'a>>, ParseError> {
        self.array_opt(key)?
            .iter()
            .enumerate()
            .map(|(idx, v)| Obj::new(self.provider, format!("{}[{idx}]", self.field(key)), v))
            .collect()
    }

    /// A string-to-string map (Alertmanager labels and annotations).
    fn labels_opt(&self, key: &str) -> Result<Vec<(&'a str, &'a str)>, ParseError> {
        let Some(obj) = self.obj_opt(key)? else { return Ok(Vec::new()) };
        obj.map
            .iter()
            .map(|(name, v)| match v {
                Value::String(s) => Ok((name.as_str(), s.as_str())),
                // Member names are untrusted here: cut them in the path.
                other => Err(obj.invalid(&echo(name), format!("expected a string, found {}", describe(other)))),
            })
            .collect()
    }

    fn int_opt(&self, key: &str) -> Result<Option<i64>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| self.invalid(key, format!("expected an integer, found number {n}")))
            }
            Some(other) => Err(self.invalid(key, format!("expected an integer, found {}", describe(other)))),
        }
    }

    fn time_opt(&self, key: &str) -> Result<Option<Timestamp>, ParseError> {
        let Some(s) = self.str_opt(key)? else { return Ok(None) };
        Timestamp::parse(s).map(Some).map_err(|_| {
            self.invalid(key, format!("expected an RFC 3339 time like 2026-11-21T12:00:00Z, found {:?}", echo(s)))
        })
    }

    fn id_req(&self, key: &str) -> Result<String, ParseError> {
        clean_id(self.provider, &self.field(key), self.str_req(key)?)
    }

    fn name_opt(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.str_opt(key)? {
            Some(s) if !s.trim().is_empty() => clean_name(self.provider, &self.field(key), s).map(Some),
            _ => Ok(None),
        }
    }

    fn url_opt(&self, key: &str) -> Result<Option<String>, ParseError> {
        match self.str_opt(key)? {
            Some(s) if !s.trim().is_empty() => clean_url(self.provider, &self.field(key), s).map(Some),
            _ => Ok(None),
        }
    }
}

fn invalid(provider: Source, field: &str, problem: impl Into<String>) -> ParseError {
    ParseError::InvalidField { provider, field: field.to_owned(), problem: problem.into() }
}

/// What a JSON value is, for a message, with strings cut short.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {}", echo(&n.to_string())),
        Value::String(s) => format!("string {:?}", echo(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The body as JSON, after the size check.
fn parse_json(provider: Source, body: &[u8]) -> Result<Value, ParseError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ParseError::TooLarge { provider, len: body.len(), max: MAX_BODY_BYTES });
    }
    // serde_json's syntax errors do not quote the input: they say what was
    // expected and where (including "recursion limit exceeded" for nesting).
    // A member named twice in one object is refused at any depth, as the API
    // refuses it: which of the two a reader takes is not defined, and the
    // signature covers both.
    crate::json::from_slice(body).map_err(|e| ParseError::NotJson {
        provider,
        detail: match crate::json::duplicate_member(&e) {
            Some(name) => format!(
                "member {name} appears twice in one object (line {}, column {}); which one counts would be ambiguous",
                e.line(),
                e.column()
            ),
            None => echo(&e.to_string()),
        },
    })
}

fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Control characters, and the invisible format characters (zero-width
/// spaces and joiners, bidirectional overrides, the BOM) that can make one
/// name look like another: the one definition in [`crate::text`].
use crate::text::is_unsafe_char;

fn has_control(s: &str) -> bool {
    s.chars().any(is_unsafe_char)
}

/// An incident or event id: not blank, no control characters, bounded.
fn clean_id(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    if s.trim().is_empty() {
        return Err(invalid(provider, field, "must not be empty"));
    }
    if has_control(s) {
        return Err(invalid(provider, field, format!("contains control characters: {:?}", echo(s))));
    }
    if s.chars().count() > MAX_ID_CHARS {
        return Err(invalid(provider, field, format!("longer than {MAX_ID_CHARS} characters: {:?}", echo(s))));
    }
    Ok(s.to_owned())
}

/// A service or responder name, e-mail or id: trimmed, not empty, no control
/// characters, bounded. Never cut: a shortened e-mail could be someone else's.
fn clean_name(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(invalid(provider, field, "must not be empty"));
    }
    if has_control(t) {
        return Err(invalid(provider, field, format!("contains control characters: {:?}", echo(t))));
    }
    if t.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(provider, field, format!("longer than {MAX_NAME_CHARS} characters: {:?}", echo(t))));
    }
    Ok(t.to_owned())
}

/// An e-mail: a name with an `@` and no spaces.
fn clean_email(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    let t = clean_name(provider, field, s)?;
    let well_formed = t.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !t.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(invalid(provider, field, format!("not an e-mail address: {:?}", echo(&t))));
    }
    Ok(t)
}

/// An http(s) URL without spaces or control characters, bounded.
fn clean_url(provider: Source, field: &str, s: &str) -> Result<String, ParseError> {
    let t = s.trim();
    let lower = t.get(..8).unwrap_or(t).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(invalid(provider, field, format!("not an http or https URL: {:?}", echo(t))));
    }
    if t.chars().any(|c| is_unsafe_char(c) || c.is_whitespace()) {
        return Err(invalid(provider, field, format!("contains spaces or control characters: {:?}", echo(t))));
    }
    if t.chars().count() > MAX_URL_CHARS {
        return Err(invalid(provider, field, format!("longer than {MAX_URL_CHARS} characters: {:?}", echo(t))));
    }
    Ok(t.to_owned())
}

/// A title for display: control and invisible format characters become
/// spaces, runs of spaces one,
/// cut to [`MAX_TITLE_CHARS`]. `None` when nothing is left.
fn clean_title(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut n_chars = 0;
    for word in s.split(|c: char| is_unsafe_char(c) || c.is_whitespace()).filter(|w| !w.is_empty()) {
        for c in (!out.is_empty()).then_some(' ').into_iter().chain(word.chars()) {
            if n_chars == MAX_TITLE_CHARS {
                return Some(out);
            }
            out.push(c);
            n_chars += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A responder from a provider login: an e-mail if it has an `@`, else a name.
fn responder_from_login(
    provider: Source,
    field: &str,
    id: Option<String>,
    login: Option<&str>,
) -> Result<Option<Responder>, ParseError> {
    let login = login.map(str::trim).filter(|l| !l.is_empty());
    let (email, name) = match login {
        Some(l) if l.contains('@') => (Some(clean_email(provider, field, l)?), None),
        Some(l) => (None, Some(clean_name(provider, field, l)?)),
        None => (None, None),
    };
    if id.is_none() && email.is_none() && name.is_none() {
        return Ok(None);
    }
    Ok(Some(Responder { id, email, name }))
}

/// Adds `item` unless it is already there.
fn push_distinct<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Refuses lists longer than [`MAX_LIST_ITEMS`].
fn check_list_len<T>(provider: Source, field: &str, list: &[T]) -> Result<(), ParseError> {
    if list.len() > MAX_LIST_ITEMS {
        return Err(invalid(
            provider,
            field,
            format!("{} distinct entries, more than the {MAX_LIST_ITEMS} accepted", list.len()),
        ));
    }
    Ok(())
}

/// `P1`..`P5` (any case, surrounding spaces ignored) as 1..5.
fn priority_level(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix('P').or_else(|| t.strip_prefix('p'))?;
    match digits {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        "4" => Some(4),
        "5" => Some(5),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// PagerDuty
// ---------------------------------------------------------------------------

/// Parses a PagerDuty v3 webhook body. `Ok(None)` for deliveries with nothing
/// to record (`pagey.ping`, notes, non-incident events); see the module
/// documentation for the mapping.
pub fn parse_pagerduty(body: &[u8]) -> Result<Option<IncidentUpdate>, ParseError> {
    let p = Source::PagerDuty;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let event = root.obj_req("event")?;
    let event_type = event.str_req("event_type")?;
    let resource_type = event.str_opt("resource_type")?;
    if !event_type.starts_with("incident.") || resource_type.is_some_and(|r| r != "incident") {
        return Ok(None);
    }
    let event_id = event.id_req("id")?;
    let occurred_at = event.time_opt("occurred_at")?;
    let data = event.obj_req("data")?;
    match data.str_req("type")? {
        "incident" => pagerduty_incident(&data, event_type, event_id, occurred_at).map(Some),
        "incident_responder" => pagerduty_responder(&data, event_type, event_id, occurred_at),
        _ => Ok(None),
    }
}

/// An event whose `data` is the incident itself.
fn pagerduty_incident(
    data: &Obj<'_>,
    event_type: &str,
    event_id: String,
    occurred_at: Option<Timestamp>,
) -> Result<IncidentUpdate, ParseError> {
    let p = Source::PagerDuty;
    let external_id = data.id_req("id")?;
    let status = match data.str_opt("status")? {
        Some(s) => IncidentStatus::parse(s).ok_or_else(|| {
            data.invalid("status", format!("expected triggered, acknowledged or resolved, found {:?}", echo(s)))
        })?,
        None => match event_type {
            "incident.triggered" | "incident.unacknowledged" | "incident.reopened" => IncidentStatus::Triggered,
            "incident.acknowledged" => IncidentStatus::Acknowledged,
            "incident.resolved" => IncidentStatus::Resolved,
            _ => return Err(data.missing("status")),
        },
    };
    let from_priority = match data.obj_opt("priority")? {
        Some(priority) => priority.str_opt("summary")?.and_then(priority_level),
        None => None,
    };
    let severity = match from_priority {
        Some(level) => Some(level),
        None => match data.str_opt("urgency")? {
            Some("high") => Some(2),
            Some("low") => Some(4),
            _ => None,
        },
    };
    let mut services = Vec::new();
    if let Some(service) = data.obj_opt("service")?
        && let Some(name) = service.name_opt("summary")?
    {
        services.push(name);
    }
    let mut responders = Vec::new();
    for assignee in data.objects_opt("assignees")? {
        if let Some(r) = pagerduty_user(&assignee)? {
            push_distinct(&mut responders, r);
        }
    }
    check_list_len(p, &data.field("assignees"), &responders)?;
    let title = data
        .str_opt("title")?
        .and_then(clean_title)
        .unwrap_or_else(|| format!("PagerDuty incident {}", echo(&external_id)));
    Ok(IncidentUpdate {
        source: p,
        external_id,
        event_id,
        event_type: event_type.to_owned(),
        title,
        severity,
        status,
        status_known: true,
        services,
        responders,
        occurred_at,
        url: data.url_opt("html_url")?,
    })
}

/// `incident.responder.*` events: `data` names the incident and the user.
fn pagerduty_responder(
    data: &Obj<'_>,
    event_type: &str,
    event_id: String,
    occurred_at: Option<Timestamp>,
) -> Result<Option<IncidentUpdate>, ParseError> {
    let responds = match event_type {
        "incident.responder.added" => true,
        "incident.responder.replied" => data.str_opt("state")? == Some("accepted"),
        _ => false,
    };
    if !responds {
        return Ok(None);
    }
    let incident = data.obj_req("incident")?;
    let external_id = incident.id_req("id")?;
    let responders = match data.obj_opt("user")? {
        Some(user) => pagerduty_user(&user)?.into_iter().collect(),
        None => Vec::new(),
    };
    let title = incident
        .str_opt("summary")?
        .and_then(clean_title)
        .unwrap_or_else(|| format!("PagerDuty incident {}", echo(&external_id)));
    Ok(Some(IncidentUpdate {
        source: Source::PagerDuty,
        external_id,
        event_id,
        event_type: event_type.to_owned(),
        title,
        severity: None,
        status: IncidentStatus::Triggered,
        status_known: false,
        services: Vec::new(),
        responders,
        occurred_at,
        url: incident.url_opt("html_url")?,
    }))
}

/// A PagerDuty `user_reference`: `id` and `summary` (the name). An `email`
/// member, which v3 references do not carry today, is used if present.
fn pagerduty_user(user: &Obj<'_>) -> Result<Option<Responder>, ParseError> {
    let id = user.name_opt("id")?;
    let name = user.name_opt("summary")?;
    let email = match user.str_opt("email")? {
        Some(e) if !e.trim().is_empty() => Some(clean_email(user.provider, &user.field("email"), e)?),
        _ => None,
    };
    if id.is_none() && name.is_none() && email.is_none() {
        return Ok(None);
    }
    Ok(Some(Responder { id, email, name }))
}

// ---------------------------------------------------------------------------
// Opsgenie
// ---------------------------------------------------------------------------

/// Parses an Opsgenie Webhook integration body. Every alert action gives an
/// update (`Ok(None)` is kept for symmetry with PagerDuty and future actions
/// with nothing to record); see the module documentation for the mapping.
pub fn parse_opsgenie(body: &[u8]) -> Result<Option<IncidentUpdate>, ParseError> {
    let p = Source::Opsgenie;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let action = root.str_req("action")?;
    let action_name = clean_name(p, "action", action)?;
    let alert = root.obj_req("alert")?;
    let external_id = alert.id_req("alertId")?;
    let (status, status_known) = match action {
        "Create" | "UnAcknowledge" => (IncidentStatus::Triggered, true),
        "Acknowledge" => (IncidentStatus::Acknowledged, true),
        "Close" | "Delete" => (IncidentStatus::Resolved, true),
        _ => (IncidentStatus::Triggered, false),
    };
    let severity =
        match alert.get("priority") {
            None => None,
            Some(Value::String(s)) => Some(priority_level(s).ok_or_else(|| {
                alert.invalid("priority", format!("expected P1, P2, P3, P4 or P5, found {:?}", echo(s)))
            })?),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(level @ 1..=5) => Some(level),
                _ => return Err(alert.invalid("priority", format!("expected 1 to 5, found number {n}"))),
            },
            Some(other) => {
                return Err(alert.invalid("priority", format!("expected P1 to P5, found {}", describe(other))));
            }
        };
    let mut services = Vec::new();
    for (idx, tag) in alert.strings_opt("tags")?.into_iter().enumerate() {
        let tag = tag.trim();
        let Some(prefix) = tag.get(..8) else { continue };
        if !prefix.eq_ignore_ascii_case("service:") || tag[8..].trim().is_empty() {
            continue;
        }
        push_distinct(&mut services, clean_name(p, &alert.field(&format!("tags[{idx}]")), &tag[8..])?);
    }
    check_list_len(p, &alert.field("tags"), &services)?;
    let mut responders = Vec::new();
    match action {
        "Acknowledge" | "TakeOwnership" => {
            let id = alert.name_opt("userId")?;
            if let Some(r) = responder_from_login(p, &alert.field("username"), id, alert.str_opt("username")?)? {
                responders.push(r);
            }
        }
        "AssignOwnership" => {
            if let Some(r) = responder_from_login(p, &alert.field("owner"), None, alert.str_opt("owner")?)? {
                responders.push(r);
            }
        }
        "AddRecipient" => {
            if let Some(r) = responder_from_login(p, &alert.field("recipient"), None, alert.str_opt("recipient")?)? {
                responders.push(r);
            }
        }
        "Escalate" => {
            if let Some(notified) = root.obj_opt("escalationNotify")?
                && notified.str_opt("entity")? == Some("user")
            {
                let id = notified.name_opt("id")?;
                if let Some(r) = responder_from_login(p, &notified.field("name"), id, notified.str_opt("name")?)? {
                    responders.push(r);
                }
            }
        }
        _ => {}
    }
    let occurred_at = match alert.int_opt("updatedAt")? {
        Some(t) => Some(epoch_to_timestamp(t)),
        None => alert.int_opt("createdAt")?.map(epoch_to_timestamp),
    };
    // The tiny id is only displayed, in the placeholder title, so it is
    // cleaned as a title is (issue 14: it carried terminal escapes).
    let tiny_id = alert.str_opt("tinyId")?.and_then(clean_title);
    let title = alert
        .str_opt("message")?
        .and_then(clean_title)
        .unwrap_or_else(|| format!("Opsgenie alert {}", echo(tiny_id.as_deref().unwrap_or(&external_id))));
    Ok(Some(IncidentUpdate {
        source: p,
        external_id,
        event_id: sha256_hex(body),
        event_type: action_name,
        title,
        severity,
        status,
        status_known,
        services,
        responders,
        occurred_at,
        url: None,
    }))
}

/// An epoch time in nanoseconds (what Opsgenie's `updatedAt` holds),
/// microseconds or milliseconds, told apart by magnitude: until the year 5138
/// milliseconds stay below 10^14, and since 1973 microseconds are above it.
fn epoch_to_timestamp(t: i64) -> Timestamp {
    const E14: i64 = 100_000_000_000_000;
    const E17: i64 = 100_000_000_000_000_000;
    let abs = t.saturating_abs();
    Timestamp(if abs < E14 {
        t
    } else if abs < E17 {
        t / 1_000
    } else {
        t / 1_000_000
    })
}

// ---------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------

/// How Alertmanager notifications are read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerOptions {
    /// The label whose value gives the severity (default `severity`).
    pub severity_label: String,
    /// The label whose value names the service (default `service`).
    pub service_label: String,
    /// The annotation (or, failing that, label) listing responders,
    /// comma-separated (default `responders`).
    pub responders_key: String,
    /// One incident per alert (keyed by fingerprint) instead of one per group
    /// (keyed by group key). Default `false`.
    pub one_incident_per_alert: bool,
}

impl Default for AlertmanagerOptions {
    fn default() -> AlertmanagerOptions {
        AlertmanagerOptions {
            severity_label: "severity".into(),
            service_label: "service".into(),
            responders_key: "responders".into(),
            one_incident_per_alert: false,
        }
    }
}

/// One alert of a notification, as read.
struct AmAlert {
    fingerprint: Option<String>,
    firing: bool,
    severity: Option<i64>,
    service: Option<String>,
    responders: Vec<Responder>,
    title: Option<String>,
    changed_at: Option<Timestamp>,
    url: Option<String>,
}

/// Parses an Alertmanager webhook notification (`version` `"4"`): one update
/// for the group, or one per alert with
/// [`AlertmanagerOptions::one_incident_per_alert`]. See the module
/// documentation for the mapping and the severity table.
pub fn parse_alertmanager(body: &[u8], opts: &AlertmanagerOptions) -> Result<Vec<IncidentUpdate>, ParseError> {
    let p = Source::Alertmanager;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let version = root.str_req("version")?;
    if version != "4" {
        return Err(root.invalid(
            "version",
            format!("expected \"4\" (the only webhook version there is), found {:?}", echo(version)),
        ));
    }
    let group_key = root.id_req("groupKey")?;
    let group_firing = am_status(&root, "status")?;
    let common_annotations = root.labels_opt("commonAnnotations")?;
    let common_labels = root.labels_opt("commonLabels")?;
    let group_labels = root.labels_opt("groupLabels")?;
    if root.get("alerts").is_none() {
        return Err(root.missing("alerts"));
    }
    let alert_objs = root.objects_opt("alerts")?;
    let mut alerts = Vec::new();
    for alert in &alert_objs {
        alerts.push(am_alert(alert, opts)?);
    }
    let body_digest = sha256_hex(body);

    if opts.one_incident_per_alert {
        return alerts
            .into_iter()
            .enumerate()
            .map(|(idx, a)| {
                let Some(external_id) = a.fingerprint else {
                    return Err(alert_objs[idx].missing("fingerprint"));
                };
                let status = if a.firing { IncidentStatus::Triggered } else { IncidentStatus::Resolved };
                Ok(IncidentUpdate {
                    source: p,
                    title: a.title.unwrap_or_else(|| format!("Alertmanager alert {}", echo(&external_id))),
                    external_id,
                    event_id: format!("{body_digest}:{idx}"),
                    event_type: status_word(a.firing).to_owned(),
                    severity: a.severity,
                    status,
                    status_known: true,
                    services: a.service.into_iter().collect(),
                    responders: a.responders,
                    occurred_at: a.changed_at,
                    url: a.url,
                })
            })
            .collect();
    }

    // The group's severity: its firing alerts', or all once it is resolved.
    let counted = |a: &&AmAlert| !group_firing || a.firing;
    let severity = alerts.iter().filter(counted).filter_map(|a| a.severity).min();
    let mut services = Vec::new();
    let mut responders = Vec::new();
    if let Some(list) = label(&common_annotations, &opts.responders_key) {
        for r in am_responders(p, &format!("commonAnnotations.{}", opts.responders_key), list)? {
            push_distinct(&mut responders, r);
        }
    }
    for a in &alerts {
        if let Some(s) = &a.service {
            push_distinct(&mut services, s.clone());
        }
        for r in &a.responders {
            push_distinct(&mut responders, r.clone());
        }
    }
    check_list_len(p, &format!("alerts[].labels.{}", opts.service_label), &services)?;
    check_list_len(p, &format!("alerts[].annotations.{}", opts.responders_key), &responders)?;
    let title = label(&common_annotations, "summary")
        .and_then(clean_title)
        .or_else(|| label(&common_labels, "alertname").and_then(clean_title))
        .or_else(|| label(&group_labels, "alertname").and_then(clean_title))
        .or_else(|| alerts.first().and_then(|a| a.title.clone()))
        .unwrap_or_else(|| "Alertmanager alert group".to_owned());
    let occurred_at = alerts.iter().filter_map(|a| a.changed_at).max();
    Ok(vec![IncidentUpdate {
        source: p,
        external_id: group_key,
        event_id: body_digest,
        event_type: status_word(group_firing).to_owned(),
        title,
        severity,
        status: if group_firing { IncidentStatus::Triggered } else { IncidentStatus::Resolved },
        status_known: true,
        services,
        responders,
        occurred_at,
        url: root.url_opt("externalURL")?,
    }])
}

/// The trimmed value of one label or annotation.
fn label<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.trim())
}

fn status_word(firing: bool) -> &'static str {
    if firing { "firing" } else { "resolved" }
}

/// `firing` (true) or `resolved` (false).
fn am_status(obj: &Obj<'_>, key: &str) -> Result<bool, ParseError> {
    match obj.str_req(key)? {
        "firing" => Ok(true),
        "resolved" => Ok(false),
        other => Err(obj.invalid(key, format!("expected firing or resolved, found {:?}", echo(other)))),
    }
}

fn am_alert(alert: &Obj<'_>, opts: &AlertmanagerOptions) -> Result<AmAlert, ParseError> {
    let p = Source::Alertmanager;
    let firing = am_status(alert, "status")?;
    let labels = alert.labels_opt("labels")?;
    let annotations = alert.labels_opt("annotations")?;
    let severity = label(&labels, &opts.severity_label).filter(|v| !v.is_empty()).map(alertmanager_severity);
    let service = match label(&labels, &opts.service_label).filter(|v| !v.is_empty()) {
        Some(s) => Some(clean_name(p, &format!("{}.labels.{}", alert.path, opts.service_label), s)?),
        None => None,
    };
    let responders = match (label(&annotations, &opts.responders_key), label(&labels, &opts.responders_key)) {
        (Some(list), _) => am_responders(p, &format!("{}.annotations.{}", alert.path, opts.responders_key), list)?,
        (None, Some(list)) => am_responders(p, &format!("{}.labels.{}", alert.path, opts.responders_key), list)?,
        (None, None) => Vec::new(),
    };
    let title = label(&annotations, "summary")
        .and_then(clean_title)
        .or_else(|| label(&labels, "alertname").and_then(clean_title));
    // Go's zero time (0001-01-01T00:00:00Z) means "not set".
    let set = |t: Option<Timestamp>| t.filter(|t| t.millis() >= 0);
    let changed_at = if firing { set(alert.time_opt("startsAt")?) } else { set(alert.time_opt("endsAt")?) };
    let fingerprint = match alert.str_opt("fingerprint")? {
        Some(f) if !f.trim().is_empty() => Some(clean_id(p, &alert.field("fingerprint"), f)?),
        _ => None,
    };
    Ok(AmAlert {
        fingerprint,
        firing,
        severity,
        service,
        responders,
        title,
        changed_at,
        url: alert.url_opt("generatorURL")?,
    })
}

/// A comma-separated responders list: `@` makes an e-mail, else a name.
fn am_responders(provider: Source, field: &str, list: &str) -> Result<Vec<Responder>, ParseError> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if let Some(r) = responder_from_login(provider, field, None, Some(entry))? {
            push_distinct(&mut out, r);
        }
    }
    check_list_len(provider, field, &out)?;
    Ok(out)
}

/// The severity table of the module documentation.
fn alertmanager_severity(value: &str) -> i64 {
    match value.trim().to_ascii_lowercase().as_str() {
        "critical" | "crit" | "page" | "emergency" | "fatal" | "sev1" | "sev-1" | "p1" | "1" => 1,
        "high" | "error" | "major" | "sev2" | "sev-2" | "p2" | "2" => 2,
        "warning" | "warn" | "minor" | "medium" | "sev3" | "sev-3" | "p3" | "3" => 3,
        "info" | "informational" | "low" | "notice" | "sev4" | "sev-4" | "p4" | "4" => 4,
        _ => 5,
    }
}

// ---------------------------------------------------------------------------
// Generic
// ---------------------------------------------------------------------------

/// Parses breakglass's generic incident form (shape in the module
/// documentation). Strict: every listed member has one type and range.
pub fn parse_generic(body: &[u8]) -> Result<IncidentUpdate, ParseError> {
    let p = Source::Generic;
    let value = parse_json(p, body)?;
    let root = Obj::new(p, String::new(), &value)?;
    let external_id = root.id_req("id")?;
    let event_id = match root.str_opt("event_id")? {
        Some(id) => clean_id(p, "event_id", id)?,
        None => sha256_hex(body),
    };
    let title = clean_title(root.str_req("title")?).ok_or_else(|| root.invalid("title", "must not be empty"))?;
    let severity = match root.get("severity") {
        None => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|s| (1..=5).contains(&s)) => n.as_i64(),
        Some(other) => {
            return Err(root.invalid(
                "severity",
                format!("expected an integer from 1 (most severe) to 5, found {}", describe(other)),
            ));
        }
    };
    let status_word = root.str_req("status")?;
    let status = IncidentStatus::parse(status_word).ok_or_else(|| {
        root.invalid("status", format!("expected triggered, acknowledged or resolved, found {:?}", echo(status_word)))
    })?;
    let mut services = Vec::new();
    for (idx, s) in root.strings_opt("services")?.into_iter().enumerate() {
        push_distinct(&mut services, clean_name(p, &format!("services[{idx}]"), s)?);
    }
    check_list_len(p, "services", &services)?;
    let mut responders = Vec::new();
    for r in root.objects_opt("responders")? {
        let email = match r.str_opt("email")? {
            Some(e) => Some(clean_email(p, &r.field("email"), e)?),
            None => None,
        };
        let name = match r.str_opt("name")? {
            Some(n) => Some(clean_name(p, &r.field("name"), n)?),
            None => None,
        };
        let id = match r.str_opt("id")? {
            Some(i) => Some(clean_name(p, &r.field("id"), i)?),
            None => None,
        };
        if email.is_none() && name.is_none() && id.is_none() {
            return Err(invalid(p, &r.path, "a responder needs at least one of email, name and id"));
        }
        push_distinct(&mut responders, Responder { id, email, name });
    }
    check_list_len(p, "responders", &responders)?;
    Ok(IncidentUpdate {
        source: p,
        external_id,
        event_id,
        event_type: status.as_str().to_owned(),
        title,
        severity,
        status,
        status_known: true,
        services,
        responders,
        occurred_at: root.time_opt("occurred_at")?,
        url: match root.str_opt("url")? {
            Some(u) => Some(clean_url(p, "url", u)?),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_levels() {
        for (input, expect) in [
            ("P1", Some(1)),
            ("p5", Some(5)),
            (" P3 ", Some(3)),
            ("P0", None),
            ("P6", None),
            ("P10", None),
            ("SEV1", None),
            ("", None),
        ] {
            assert_eq!(priority_level(input), expect, "{input:?}");
        }
    }

    #[test]
    fn alertmanager_severity_table() {
        for (input, expect) in [
            ("critical", 1),
            ("CRITICAL", 1),
            ("page", 1),
            ("sev1", 1),
            ("p1", 1),
            ("1", 1),
            ("high", 2),
            ("error", 2),
            ("major", 2),
            ("P2", 2),
            ("warning", 3),
            ("minor", 3),
            ("3", 3),
            ("info", 4),
            ("4", 4),
            ("none", 5),
            ("debug", 5),
            ("5", 5),
        ] {
            assert_eq!(alertmanager_severity(input), expect, "{input:?}");
        }
    }

    #[test]
    fn epoch_units_are_told_apart() {
        let ms = 1_614_852_000_123;
        assert_eq!(epoch_to_timestamp(ms), Timestamp(ms));
        assert_eq!(epoch_to_timestamp(ms * 1_000), Timestamp(ms));
        assert_eq!(epoch_to_timestamp(ms * 1_000_000), Timestamp(ms));
        // The Opsgenie documentation's own example.
        assert_eq!(epoch_to_timestamp(1_420_452_193_166_002_000), Timestamp(1_420_452_193_166));
    }

    #[test]
    fn titles_are_cleaned_and_cut() {
        assert_eq!(clean_title("  a\u{1b}[2J  b\nc "), Some("a [2J b c".to_owned()));
        assert_eq!(clean_title(" \t\n"), None);
        let long = "x".repeat(MAX_TITLE_CHARS + 10);
        assert_eq!(clean_title(&long).map(|t| t.chars().count()), Some(MAX_TITLE_CHARS));
    }

    #[test]
    fn echo_cuts_and_marks() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(200);
        let cut = echo(&long);
        assert_eq!(cut.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn source_names_round_trip() {
        for src in Source::ALL {
            assert_eq!(src.as_str().parse::<Source>(), Ok(src));
            assert_eq!(serde_json::to_string(&src).unwrap(), format!("\"{}\"", src.as_str()));
        }
        assert!("PagerDuty".parse::<Source>().is_err());
    }
}
