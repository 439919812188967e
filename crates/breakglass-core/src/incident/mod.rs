//! Incident webhooks: authenticating and parsing what PagerDuty (v3
//! webhooks), Opsgenie (the outgoing Webhook integration), Prometheus
//! Alertmanager (`webhook_config`) and breakglass's own generic signed JSON
//! form send, and normalising each delivery into [`IncidentUpdate`]s that the
//! server records as incident state.
//!
//! Security: a webhook's sender controls its body and headers, and a
//! provider's users name themselves. Policy may approve a break-glass request at once
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

mod alertmanager;
mod auth;
mod generic;
mod opsgenie;
mod pagerduty;
mod parse;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

pub use alertmanager::{AlertmanagerOptions, parse_alertmanager};
pub use auth::{check_fresh, sign_generic, verify_bearer, verify_generic, verify_opsgenie, verify_pagerduty};
pub use generic::parse_generic;
pub use opsgenie::parse_opsgenie;
pub use pagerduty::parse_pagerduty;
use parse::has_control;

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

use crate::signed::echo;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_round_trip() {
        for src in Source::ALL {
            assert_eq!(src.as_str().parse::<Source>(), Ok(src));
            assert_eq!(serde_json::to_string(&src).unwrap(), format!("\"{}\"", src.as_str()));
        }
        assert!("PagerDuty".parse::<Source>().is_err());
    }
}
