//! Configuration: one TOML file (`breakglass.toml` in the data directory, or
//! `--config FILE`), every key overridable by a `BREAKGLASS_*` environment
//! variable. Only this crate reads files named by the user and the environment.
//!
//! ```toml
//! [database]
//! # PostgreSQL for several servers over one database, e.g.
//! # "postgres://breakglass@db.internal/breakglass". Empty: SQLite in the data directory.
//! url = ""
//!
//! [log]
//! # The checkpoint origin line and the name of the log's signing key.
//! origin = "breakglass.local/ci-runner-1"
//! # The JSON-lines copy of the log; relative paths are under the data directory.
//! sink = "audit.jsonl"
//! # The most entries committed in one transaction (group commit).
//! max_batch = 256
//!
//! [server]
//! # Where `breakglass serve` listens. Loopback by default; to serve other
//! # machines, configure TLS below or put a TLS-terminating reverse proxy in front.
//! listen = "127.0.0.1:7468"
//! # The URL clients use to reach this server: the issuer (iss) of grant
//! # tokens and the origin bound into login challenges. Default: http(s)://<listen>.
//! public_url = ""
//! # PEM certificate chain and private key: when both are set, the server speaks HTTPS (rustls).
//! tls_cert = ""
//! tls_key = ""
//! # The largest request body accepted, in bytes (larger: 413).
//! max_body_bytes = 65536
//! # How long a login session lasts.
//! session_ttl = "12h"
//! # How long a request waits for approvals before it lapses.
//! pending_ttl = "30m"
//! # How long a login challenge may be used.
//! challenge_ttl = "2m"
//!
//! [policy]
//! # The directory of *.cedar policies; relative paths are under the data directory.
//! dir = "policy"
//! # The principals file (TOML): names, groups, SSH keys, e-mail addresses.
//! principals = "principals.toml"
//!
//! [ci]
//! # The audience CI jobs must request their OIDC ID tokens for.
//! audience = "breakglass"
//! # The longest ID-token lifetime (exp - iat) accepted. GitLab sets exp to the
//! # job's timeout plus 5 minutes, so this must exceed your longest job timeout.
//! max_token_lifetime = "6h"
//!
//! # One table per CI system whose jobs may call the server with OIDC ID tokens.
//! [[ci.issuer]]
//! # github (GitHub Actions), gitlab (a GitLab instance; set issuer) or custom (set every claim).
//! kind = "github"
//! # The name used in projects below and in principals' accounts ("github:id:4242"). Default: kind.
//! name = "github"
//! # The exact iss claim. Default for github: https://token.actions.githubusercontent.com
//! issuer = ""
//! # Where the issuer's keys are. Default: github <issuer>/.well-known/jwks, gitlab <issuer>/oauth/discovery/keys
//! jwks_url = ""
//! # Claims (defaults: github actor, actor_id, repository, repository_id, environment;
//! # gitlab user_login, user_id, project_path, project_id, environment). The
//! # person who triggered a job is a principal by actor_id_claim, the immutable
//! # id of their account (accounts = ["github:id:4242"]); the login is for display.
//! actor_claim = ""
//! actor_id_claim = ""
//! repository_claim = ""
//! repository_id_claim = ""
//! environment_claim = ""
//!
//! # One table per pipeline project: the repository that is this project.
//! [[ci.project]]
//! # The project in pipeline:<project>/<stage>[@<environment>] scopes.
//! project = "payments/api"
//! # The issuer's name.
//! issuer = "github"
//! # Both must match the token: the repository's name and its immutable id.
//! repository = "acme/payments-api"
//! repository_id = "123456789"
//!
//! [incidents]
//! # Receivers: POST /v1/incidents/{pagerduty,opsgenie,alertmanager,generic}. A
//! # receiver with no secret configured refuses everything. Lists take several
//! # values so that secrets can be rotated without downtime.
//! # PagerDuty v3 webhook signing secrets (X-PagerDuty-Signature).
//! pagerduty_secrets = []
//! # What Opsgenie's outgoing webhook sends as Authorization (see the README).
//! opsgenie_credentials = []
//! # Bearer tokens Alertmanager sends (http_config.authorization.credentials).
//! alertmanager_tokens = []
//! # The alert labels that give an Alertmanager incident its severity and services.
//! alertmanager_severity_label = "severity"
//! alertmanager_service_label = "service"
//! # HMAC secrets of the generic signed form (X-Breakglass-Signature).
//! generic_secrets = []
//! # Signed deliveries whose own time is further than this from now are replays.
//! max_age = "10m"
//! # Only incidents on these services are recorded (all when empty).
//! services = []
//! # Active grants tied to an incident end when it resolves, this long after.
//! end_grants_on_resolve = true
//! resolve_grace = "15m"
//! # Responders are principals by provider user id (accounts = ["pagerduty:P..."])
//! # or e-mail. true also matches display names, which users choose themselves.
//! match_responder_names = false
//!
//! [review]
//! # How long after a grant ends its review is due; then it is overdue,
//! # escalated, and counts in policy's context.requester.overdue_reviews.
//! deadline = "72h"
//!
//! [drift]
//! # How often the server checks for drift (grants, policy, the log, the
//! # repositories on its own host) and records what it finds in the log,
//! # in metrics and as drift_detected notifications. "0": never.
//! interval = "5m"
//!
//! [notify]
//! # "expiring soon" is sent this long before a grant ends ("0": never).
//! expiring_soon = "10m"
//!
//! # Generic webhooks: JSON, signed like the generic incident form.
//! [[notify.webhook]]
//! name = "ops-bus"
//! url = "https://hooks.example.com/breakglass"
//! secret = "…"
//! # Which events (all when empty): requested, approved, activated, extended,
//! # expiring_soon, expired, revoked, incident_resolved_ended, review_overdue,
//! # drift_detected.
//! events = []
//!
//! # Slack incoming webhooks (the URL is the secret).
//! [[notify.slack]]
//! name = "sre-channel"
//! url = "https://hooks.slack.com/services/…"
//! events = ["requested", "activated", "revoked", "incident_resolved_ended"]
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliResult, bad_input};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub server: ServerConfig,
    pub policy: PolicyConfig,
    pub ci: CiSection,
    pub incidents: IncidentsSection,
    pub notify: NotifySection,
    pub review: ReviewSection,
    pub drift: DriftSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DriftSection {
    pub interval: String,
}

impl Default for DriftSection {
    fn default() -> DriftSection {
        DriftSection { interval: "5m".into() }
    }
}

impl DriftSection {
    /// The periodic check's interval; `None` when it is off ("0").
    pub fn interval(&self) -> CliResult<Option<std::time::Duration>> {
        if self.interval.trim() == "0" {
            return Ok(None);
        }
        let ms = breakglass_core::grant::parse_duration(&self.interval).map_err(|e| {
            bad_input(format!("invalid drift.interval {:?}: {e} (\"0\" turns the check off)", self.interval))
        })?;
        if ms < 10_000 {
            return Err(bad_input(format!(
                "invalid drift.interval {:?}: at least 10s, or \"0\" for off",
                self.interval
            )));
        }
        Ok(Some(std::time::Duration::from_millis(ms as u64)))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewSection {
    pub deadline: String,
}

impl Default for ReviewSection {
    fn default() -> ReviewSection {
        ReviewSection { deadline: "72h".into() }
    }
}

impl ReviewSection {
    pub fn to_server(&self) -> CliResult<breakglass_server::reviews::ReviewConfig> {
        let deadline_ms = breakglass_core::grant::parse_duration(&self.deadline)
            .map_err(|e| bad_input(format!("invalid review.deadline: {e}")))?;
        Ok(breakglass_server::reviews::ReviewConfig { deadline_ms })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsSection {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pagerduty_secrets: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opsgenie_credentials: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alertmanager_tokens: Vec<String>,
    pub alertmanager_severity_label: String,
    pub alertmanager_service_label: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generic_secrets: Vec<String>,
    pub max_age: String,
    pub services: Vec<String>,
    pub end_grants_on_resolve: bool,
    pub resolve_grace: String,
    pub match_responder_names: bool,
}

impl Default for IncidentsSection {
    fn default() -> IncidentsSection {
        IncidentsSection {
            pagerduty_secrets: Vec::new(),
            opsgenie_credentials: Vec::new(),
            alertmanager_tokens: Vec::new(),
            alertmanager_severity_label: "severity".into(),
            alertmanager_service_label: "service".into(),
            generic_secrets: Vec::new(),
            max_age: "10m".into(),
            services: Vec::new(),
            end_grants_on_resolve: true,
            resolve_grace: "15m".into(),
            match_responder_names: false,
        }
    }
}

/// A duration where "0" (or "0s", or empty) means none.
fn duration_or_zero(what: &str, v: &str) -> CliResult<i64> {
    if matches!(v.trim(), "" | "0" | "0s" | "0m" | "0h") {
        return Ok(0);
    }
    breakglass_core::grant::parse_duration(v).map_err(|e| bad_input(format!("invalid {what}: {e}")))
}

impl IncidentsSection {
    pub fn to_server(&self) -> CliResult<breakglass_server::incidents::IncidentConfig> {
        let max_age = breakglass_core::grant::parse_duration(&self.max_age)
            .map_err(|e| bad_input(format!("invalid incidents.max_age: {e}")))?;
        let secrets = |what: &str, v: &[String]| -> CliResult<Vec<Vec<u8>>> {
            if let Some(k) = v.iter().position(|s| s.trim().len() < 16) {
                return Err(bad_input(format!(
                    "invalid incidents.{what}[{k}]: a secret must be at least 16 characters"
                )));
            }
            Ok(v.iter().map(|s| s.trim().as_bytes().to_vec()).collect())
        };
        let alertmanager = breakglass_core::incident::AlertmanagerOptions {
            severity_label: self.alertmanager_severity_label.clone(),
            service_label: self.alertmanager_service_label.clone(),
            ..breakglass_core::incident::AlertmanagerOptions::default()
        };
        Ok(breakglass_server::incidents::IncidentConfig {
            pagerduty_secrets: secrets("pagerduty_secrets", &self.pagerduty_secrets)?,
            opsgenie_credentials: self.opsgenie_credentials.clone(),
            alertmanager_tokens: secrets("alertmanager_tokens", &self.alertmanager_tokens)?
                .into_iter()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect(),
            alertmanager,
            generic_secrets: secrets("generic_secrets", &self.generic_secrets)?,
            max_age_ms: max_age,
            services: self.services.clone(),
            end_grants_on_resolve: self.end_grants_on_resolve,
            resolve_grace_ms: duration_or_zero("incidents.resolve_grace", &self.resolve_grace)?,
            match_responder_names: self.match_responder_names,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    pub expiring_soon: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook: Vec<NotifyChannelSection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slack: Vec<NotifyChannelSection>,
}

impl Default for NotifySection {
    fn default() -> NotifySection {
        NotifySection { expiring_soon: "10m".into(), webhook: Vec::new(), slack: Vec::new() }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyChannelSection {
    pub name: String,
    pub url: String,
    /// Webhooks only: the HMAC secret.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret: String,
    pub events: Vec<String>,
}

impl NotifySection {
    pub fn to_server(&self) -> CliResult<breakglass_server::notify::NotifyConfig> {
        use breakglass_server::notify::{Channel, NotifyConfig, Target};
        let mut channels: Vec<Channel> = Vec::new();
        let all = self.webhook.iter().map(|c| ("webhook", c)).chain(self.slack.iter().map(|c| ("slack", c)));
        for (k, (kind, c)) in all.enumerate() {
            let bad = |m: String| bad_input(format!("invalid notify.{kind} {:?}: {m}", c.name));
            if c.name.trim().is_empty() {
                return Err(bad_input(format!("invalid notify.{kind} (channel {k}): a name is required")));
            }
            if channels.iter().any(|x| x.name == c.name) {
                return Err(bad("the name is used by another channel".into()));
            }
            if !(c.url.starts_with("https://") || c.url.starts_with("http://")) {
                return Err(bad("url must be an http:// or https:// URL".into()));
            }
            let events = c
                .events
                .iter()
                .map(|e| breakglass_core::notify::NotifyEvent::parse(e).map_err(&bad))
                .collect::<CliResult<Vec<_>>>()?;
            let target = match kind {
                "webhook" => {
                    if c.secret.trim().len() < 16 {
                        return Err(bad("a webhook needs a secret of at least 16 characters".into()));
                    }
                    Target::Webhook { url: c.url.clone(), secret: c.secret.trim().as_bytes().to_vec() }
                }
                _ => {
                    if !c.secret.is_empty() {
                        return Err(bad("a Slack channel takes no secret (its URL is the secret)".into()));
                    }
                    Target::Slack { url: c.url.clone() }
                }
            };
            channels.push(Channel { name: c.name.clone(), target, events });
        }
        Ok(NotifyConfig { channels, expiring_soon_ms: duration_or_zero("notify.expiring_soon", &self.expiring_soon)? })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CiSection {
    pub audience: String,
    pub max_token_lifetime: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issuer: Vec<CiIssuerSection>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub project: Vec<CiProjectSection>,
}

impl Default for CiSection {
    fn default() -> CiSection {
        CiSection {
            audience: "breakglass".into(),
            max_token_lifetime: "6h".into(),
            issuer: Vec::new(),
            project: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CiIssuerSection {
    pub kind: String,
    pub name: String,
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
    pub actor_claim: String,
    pub actor_id_claim: String,
    pub repository_claim: String,
    pub repository_id_claim: String,
    pub environment_claim: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CiProjectSection {
    pub project: String,
    pub issuer: String,
    pub repository: String,
    pub repository_id: String,
}

impl CiSection {
    /// The server's CI configuration, every value checked.
    pub fn to_server(&self) -> CliResult<breakglass_server::ci::CiConfig> {
        use breakglass_server::ci::{CiConfig, CiProject, OidcIssuer};
        let bad = |m: String| bad_input(format!("invalid [ci] configuration: {m}"));
        let lifetime = breakglass_core::grant::parse_duration(&self.max_token_lifetime)
            .map_err(|e| bad(format!("max_token_lifetime: {e}")))?;
        let mut issuers: Vec<OidcIssuer> = Vec::new();
        for (k, i) in self.issuer.iter().enumerate() {
            let audience = if i.audience.is_empty() { &self.audience } else { &i.audience };
            let mut o = match i.kind.as_str() {
                "github" => OidcIssuer::github(audience),
                "gitlab" if !i.issuer.is_empty() => OidcIssuer::gitlab(&i.issuer, audience),
                "gitlab" => return Err(bad(format!("ci.issuer[{k}]: a gitlab issuer needs its issuer URL"))),
                "custom" => OidcIssuer {
                    name: String::new(),
                    issuer: i.issuer.clone(),
                    audience: audience.clone(),
                    jwks_url: i.jwks_url.clone(),
                    actor_claim: i.actor_claim.clone(),
                    actor_id_claim: i.actor_id_claim.clone(),
                    repository_claim: i.repository_claim.clone(),
                    repository_id_claim: i.repository_id_claim.clone(),
                    environment_claim: i.environment_claim.clone(),
                },
                other => return Err(bad(format!("ci.issuer[{k}]: kind {other:?}: expected github, gitlab or custom"))),
            };
            o.name = if i.name.is_empty() { i.kind.clone() } else { i.name.clone() };
            for (field, value) in [
                (&mut o.issuer, &i.issuer),
                (&mut o.jwks_url, &i.jwks_url),
                (&mut o.actor_claim, &i.actor_claim),
                (&mut o.actor_id_claim, &i.actor_id_claim),
                (&mut o.repository_claim, &i.repository_claim),
                (&mut o.repository_id_claim, &i.repository_id_claim),
                (&mut o.environment_claim, &i.environment_claim),
            ] {
                if !value.is_empty() {
                    *field = value.clone();
                }
            }
            if o.issuer.is_empty()
                || o.jwks_url.is_empty()
                || o.actor_id_claim.is_empty()
                || o.repository_id_claim.is_empty()
            {
                return Err(bad(format!("ci.issuer[{k}] ({}): issuer, jwks_url and the claims must be set", o.name)));
            }
            if !(o.jwks_url.starts_with("https://")
                || o.jwks_url.starts_with("http://127.0.0.1")
                || o.jwks_url.starts_with("http://localhost"))
            {
                return Err(bad(format!("ci.issuer[{k}] ({}): jwks_url must be https:// (or loopback)", o.name)));
            }
            if issuers.iter().any(|x| x.name == o.name || x.issuer == o.issuer) {
                return Err(bad(format!("ci.issuer[{k}]: {} is configured twice", o.name)));
            }
            issuers.push(o);
        }
        let mut projects = Vec::new();
        for (k, p) in self.project.iter().enumerate() {
            if !issuers.iter().any(|i| i.name == p.issuer) {
                return Err(bad(format!("ci.project[{k}] ({}): no issuer named {:?}", p.project, p.issuer)));
            }
            if p.repository.is_empty() || p.repository_id.is_empty() {
                return Err(bad(format!(
                    "ci.project[{k}] ({}): repository and repository_id are both required",
                    p.project
                )));
            }
            breakglass_core::scope::Scope::parse(&format!("pipeline:{}/stage", p.project))
                .map_err(|e| bad(format!("ci.project[{k}]: project {:?}: {e}", p.project)))?;
            projects.push(CiProject {
                project: p.project.clone(),
                issuer: p.issuer.clone(),
                repository: p.repository.clone(),
                repository_id: p.repository_id.clone(),
            });
        }
        Ok(CiConfig { issuers, projects, max_token_lifetime: std::time::Duration::from_millis(lifetime as u64) })
    }
}

/// The default port of `breakglass serve` (and of client commands' default server URL).
pub const DEFAULT_PORT: u16 = 7468;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub public_url: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub max_body_bytes: usize,
    pub session_ttl: String,
    pub pending_ttl: String,
    pub challenge_ttl: String,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: format!("127.0.0.1:{DEFAULT_PORT}"),
            public_url: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            max_body_bytes: 64 * 1024,
            session_ttl: "12h".into(),
            pending_ttl: "30m".into(),
            challenge_ttl: "2m".into(),
        }
    }
}

impl ServerConfig {
    /// Checks every value, naming the key at fault.
    pub fn validate(&self) -> CliResult {
        self.listen.parse::<std::net::SocketAddr>().map_err(|_| {
            bad_input(format!("invalid server.listen {:?}: expected IP:PORT like 127.0.0.1:7468", self.listen))
        })?;
        for (key, value) in [
            ("server.session_ttl", &self.session_ttl),
            ("server.pending_ttl", &self.pending_ttl),
            ("server.challenge_ttl", &self.challenge_ttl),
        ] {
            breakglass_core::grant::parse_duration(value).map_err(|e| bad_input(format!("invalid {key}: {e}")))?;
        }
        if self.challenge_ttl_ms() > 600_000 {
            return Err(bad_input("invalid server.challenge_ttl: at most 10m"));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > 16 << 20 {
            return Err(bad_input(format!(
                "invalid server.max_body_bytes {}: between 1 and 16777216",
                self.max_body_bytes
            )));
        }
        if self.tls_cert.as_os_str().is_empty() != self.tls_key.as_os_str().is_empty() {
            return Err(bad_input("server.tls_cert and server.tls_key must be set together"));
        }
        let scheme_ok = self.public_url.starts_with("http://") || self.public_url.starts_with("https://");
        if !self.public_url.is_empty() && !scheme_ok {
            return Err(bad_input(format!(
                "invalid server.public_url {:?}: expected http://… or https://…",
                self.public_url
            )));
        }
        Ok(())
    }

    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }

    fn ms(value: &str) -> i64 {
        breakglass_core::grant::parse_duration(value).unwrap_or(0)
    }

    pub fn session_ttl_ms(&self) -> i64 {
        Self::ms(&self.session_ttl)
    }

    pub fn pending_ttl_ms(&self) -> i64 {
        Self::ms(&self.pending_ttl)
    }

    pub fn challenge_ttl_ms(&self) -> i64 {
        Self::ms(&self.challenge_ttl)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub dir: PathBuf,
    pub principals: PathBuf,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig { dir: PathBuf::from("policy"), principals: PathBuf::from("principals.toml") }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A `postgres://` URL, or empty for SQLite in the data directory.
    pub url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub origin: String,
    pub sink: PathBuf,
    pub max_batch: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig { origin: default_origin(), sink: PathBuf::from("audit.jsonl"), max_batch: 256 }
    }
}

/// `breakglass.local/<hostname>`: unique enough for one deployment, and easy to override.
pub fn default_origin() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("breakglass.local/{host}")
}

pub fn validate_origin(origin: &str) -> CliResult {
    if origin.is_empty() || origin.contains('+') || origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad_input(format!("invalid log origin {origin:?}: must be non-empty with no spaces or '+'")));
    }
    Ok(())
}

pub fn validate_database_url(url: &str) -> CliResult {
    if url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    let shown = breakglass_store::postgres::redact_url(url);
    Err(bad_input(format!(
        "invalid database URL {shown:?}: expected postgres://… (or nothing, for SQLite in the data directory)"
    )))
}

impl Config {
    /// Reads the file if it exists (a missing file means defaults), then applies the environment.
    pub fn load(path: &Path) -> CliResult<Config> {
        let mut config = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| bad_input(format!("invalid configuration file {}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(bad_input(format!("cannot read configuration file {}: {e}", path.display()))),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        validate_origin(&config.log.origin)?;
        validate_database_url(&config.database.url)?;
        if config.log.max_batch == 0 {
            return Err(bad_input("invalid log.max_batch 0: must be at least 1"));
        }
        config.server.validate()?;
        config.ci.to_server()?;
        config.incidents.to_server()?;
        config.notify.to_server()?;
        config.review.to_server()?;
        config.drift.interval()?;
        Ok(config)
    }

    /// `BREAKGLASS_<SECTION>_<KEY>` for every key, e.g. `BREAKGLASS_LOG_ORIGIN`,
    /// `BREAKGLASS_SERVER_LISTEN`, `BREAKGLASS_POLICY_DIR`; and `BREAKGLASS_DATABASE_URL`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> CliResult {
        let s = &mut self.server;
        for (var, field) in [
            ("BREAKGLASS_SERVER_LISTEN", &mut s.listen),
            ("BREAKGLASS_SERVER_PUBLIC_URL", &mut s.public_url),
            ("BREAKGLASS_SERVER_SESSION_TTL", &mut s.session_ttl),
            ("BREAKGLASS_SERVER_PENDING_TTL", &mut s.pending_ttl),
            ("BREAKGLASS_SERVER_CHALLENGE_TTL", &mut s.challenge_ttl),
            ("BREAKGLASS_CI_AUDIENCE", &mut self.ci.audience),
            ("BREAKGLASS_CI_MAX_TOKEN_LIFETIME", &mut self.ci.max_token_lifetime),
        ] {
            if let Some(v) = get(var) {
                *field = v;
            }
        }
        for (var, field) in [
            ("BREAKGLASS_SERVER_TLS_CERT", &mut s.tls_cert),
            ("BREAKGLASS_SERVER_TLS_KEY", &mut s.tls_key),
            ("BREAKGLASS_POLICY_DIR", &mut self.policy.dir),
            ("BREAKGLASS_POLICY_PRINCIPALS", &mut self.policy.principals),
        ] {
            if let Some(v) = get(var) {
                *field = PathBuf::from(v);
            }
        }
        if let Some(v) = get("BREAKGLASS_SERVER_MAX_BODY_BYTES") {
            self.server.max_body_bytes = v.parse().map_err(|_| {
                bad_input(format!("invalid BREAKGLASS_SERVER_MAX_BODY_BYTES {v:?}: expected a positive integer"))
            })?;
        }
        if let Some(v) = get("BREAKGLASS_DATABASE_URL") {
            self.database.url = v;
        }
        if let Some(v) = get("BREAKGLASS_LOG_ORIGIN") {
            self.log.origin = v;
        }
        if let Some(v) = get("BREAKGLASS_LOG_SINK") {
            self.log.sink = PathBuf::from(v);
        }
        // The lists of tables take a TOML array of inline tables, e.g.
        // BREAKGLASS_CI_ISSUER='[{ kind = "github" }]'; they replace the file's list.
        if let Some(v) = get("BREAKGLASS_CI_ISSUER") {
            self.ci.issuer = toml_list("BREAKGLASS_CI_ISSUER", &v)?;
        }
        if let Some(v) = get("BREAKGLASS_CI_PROJECT") {
            self.ci.project = toml_list("BREAKGLASS_CI_PROJECT", &v)?;
        }
        let list = |v: String| v.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect();
        let i = &mut self.incidents;
        for (var, field) in [
            ("BREAKGLASS_INCIDENTS_PAGERDUTY_SECRETS", &mut i.pagerduty_secrets),
            ("BREAKGLASS_INCIDENTS_OPSGENIE_CREDENTIALS", &mut i.opsgenie_credentials),
            ("BREAKGLASS_INCIDENTS_ALERTMANAGER_TOKENS", &mut i.alertmanager_tokens),
            ("BREAKGLASS_INCIDENTS_GENERIC_SECRETS", &mut i.generic_secrets),
            ("BREAKGLASS_INCIDENTS_SERVICES", &mut i.services),
        ] {
            if let Some(v) = get(var) {
                *field = list(v);
            }
        }
        for (var, field) in [
            ("BREAKGLASS_INCIDENTS_ALERTMANAGER_SEVERITY_LABEL", &mut i.alertmanager_severity_label),
            ("BREAKGLASS_INCIDENTS_ALERTMANAGER_SERVICE_LABEL", &mut i.alertmanager_service_label),
            ("BREAKGLASS_INCIDENTS_MAX_AGE", &mut i.max_age),
            ("BREAKGLASS_INCIDENTS_RESOLVE_GRACE", &mut i.resolve_grace),
            ("BREAKGLASS_NOTIFY_EXPIRING_SOON", &mut self.notify.expiring_soon),
            ("BREAKGLASS_REVIEW_DEADLINE", &mut self.review.deadline),
            ("BREAKGLASS_DRIFT_INTERVAL", &mut self.drift.interval),
        ] {
            if let Some(v) = get(var) {
                *field = v;
            }
        }
        if let Some(v) = get("BREAKGLASS_INCIDENTS_END_GRANTS_ON_RESOLVE") {
            self.incidents.end_grants_on_resolve = match v.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(bad_input(format!(
                        "invalid BREAKGLASS_INCIDENTS_END_GRANTS_ON_RESOLVE {v:?}: expected true or false"
                    )));
                }
            };
        }
        if let Some(v) = get("BREAKGLASS_INCIDENTS_MATCH_RESPONDER_NAMES") {
            self.incidents.match_responder_names = match v.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(bad_input(format!(
                        "invalid BREAKGLASS_INCIDENTS_MATCH_RESPONDER_NAMES {v:?}: expected true or false"
                    )));
                }
            };
        }
        if let Some(v) = get("BREAKGLASS_NOTIFY_WEBHOOK") {
            self.notify.webhook = toml_list("BREAKGLASS_NOTIFY_WEBHOOK", &v)?;
        }
        if let Some(v) = get("BREAKGLASS_NOTIFY_SLACK") {
            self.notify.slack = toml_list("BREAKGLASS_NOTIFY_SLACK", &v)?;
        }
        if let Some(v) = get("BREAKGLASS_LOG_MAX_BATCH") {
            self.log.max_batch = v.parse().map_err(|_| {
                bad_input(format!("invalid BREAKGLASS_LOG_MAX_BATCH {v:?}: expected a positive integer"))
            })?;
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

/// A list of tables from an environment variable holding a TOML array of
/// inline tables, checked as strictly as the file's.
fn toml_list<T: serde::de::DeserializeOwned>(var: &str, value: &str) -> CliResult<Vec<T>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapper<T> {
        v: Vec<T>,
    }
    toml::from_str::<Wrapper<T>>(&format!("v = {value}")).map(|w| w.v).map_err(|e| {
        bad_input(format!(
            "invalid {var}: expected a TOML array of inline tables like [{{ key = \"value\" }}]: {}",
            e.message()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file() {
        let mut c: Config = toml::from_str("[log]\norigin = \"a.example/log\"\n").unwrap();
        assert_eq!(c.log.max_batch, 256);
        c.apply_env(|k| (k == "BREAKGLASS_LOG_ORIGIN").then(|| "b.example/log".to_owned())).unwrap();
        assert_eq!(c.log.origin, "b.example/log");
        assert!(c.apply_env(|k| (k == "BREAKGLASS_LOG_MAX_BATCH").then(|| "lots".to_owned())).is_err());
        assert!(toml::from_str::<Config>("[log]\norigin_typo = 1\n").is_err());
        assert!(validate_origin("has space").is_err());
    }

    #[test]
    fn incident_and_notify_keys_are_checked_and_come_from_the_environment() {
        let mut c = Config::default();
        let env = |k: &str| match k {
            "BREAKGLASS_INCIDENTS_PAGERDUTY_SECRETS" => Some("old-secret-0123456789, new-secret-0123456789".to_owned()),
            "BREAKGLASS_INCIDENTS_RESOLVE_GRACE" => Some("0".to_owned()),
            "BREAKGLASS_INCIDENTS_END_GRANTS_ON_RESOLVE" => Some("false".to_owned()),
            "BREAKGLASS_NOTIFY_SLACK" => Some(
                r#"[{ name = "sre", url = "https://hooks.slack.com/services/T/B/X", events = ["activated"] }]"#.into(),
            ),
            _ => None,
        };
        c.apply_env(env).unwrap();
        let i = c.incidents.to_server().unwrap();
        assert_eq!(i.pagerduty_secrets.len(), 2, "comma-separated, trimmed");
        assert_eq!((i.resolve_grace_ms, i.end_grants_on_resolve), (0, false));
        let n = c.notify.to_server().unwrap();
        assert_eq!((n.channels[0].name.as_str(), n.expiring_soon_ms), ("sre", 600_000));
        // The Slack URL is a secret: Debug never shows its path.
        assert!(!format!("{n:?}").contains("T/B/X"), "{n:?}");

        for (toml, needle) in [
            ("[incidents]\npagerduty_secrets = [\"short\"]", "at least 16"),
            ("[incidents]\nmax_age = \"soon\"", "incidents.max_age"),
            ("[[notify.webhook]]\nname = \"a\"\nurl = \"https://x.example\"", "secret"),
            ("[[notify.slack]]\nname = \"a\"\nurl = \"ftp://x.example\"", "http"),
            ("[[notify.slack]]\nname = \"a\"\nurl = \"https://x.example\"\nevents = [\"exploded\"]", "exploded"),
            (
                "[[notify.slack]]\nname = \"a\"\nurl = \"https://x\"\n[[notify.slack]]\nname = \"a\"\nurl = \"https://y\"",
                "another channel",
            ),
        ] {
            let c: Config = toml::from_str(toml).unwrap();
            let err = c.incidents.to_server().err().or_else(|| c.notify.to_server().err()).expect(toml);
            assert!(err.message.contains(needle), "{toml}: {}", err.message);
        }
    }

    #[test]
    fn ci_keys_come_from_the_environment_too() {
        let mut c: Config = toml::from_str(
            "[ci]\naudience = \"file\"\n[[ci.issuer]]\nkind = \"gitlab\"\nissuer = \"https://gitlab.example.com\"\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "BREAKGLASS_CI_AUDIENCE" => Some("env-audience".to_owned()),
            "BREAKGLASS_CI_MAX_TOKEN_LIFETIME" => Some("2h".to_owned()),
            "BREAKGLASS_CI_ISSUER" => Some(r#"[{ kind = "github" }]"#.to_owned()),
            "BREAKGLASS_CI_PROJECT" => Some(
                r#"[{ project = "payments/api", issuer = "github", repository = "acme/api", repository_id = "12" }]"#
                    .to_owned(),
            ),
            _ => None,
        };
        c.apply_env(env).unwrap();
        let server = c.ci.to_server().unwrap();
        assert_eq!(server.issuers.len(), 1, "the environment's list replaces the file's");
        assert_eq!(server.issuers[0].name, "github");
        assert_eq!(server.issuers[0].audience, "env-audience");
        assert_eq!(server.max_token_lifetime, std::time::Duration::from_secs(7200));
        assert_eq!(server.projects[0].repository_id, "12");

        // Bad values name the variable; unknown keys are refused as in the file.
        for (var, value) in [
            ("BREAKGLASS_CI_ISSUER", r#"[{ kind = "github", typo = 1 }]"#),
            ("BREAKGLASS_CI_ISSUER", "github"),
            ("BREAKGLASS_CI_PROJECT", "[]\nextra = 1"),
        ] {
            let err = c.clone().apply_env(|k| (k == var).then(|| value.to_owned())).unwrap_err();
            assert!(err.message.contains(var), "{}", err.message);
        }
    }
}
