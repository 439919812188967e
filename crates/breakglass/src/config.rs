//! Configuration: one TOML file (`breakglass.toml` in the data directory, or
//! `--config FILE`), every key overridable by a `BREAKGLASS_*` environment
//! variable. Only this crate reads files named by the user and the environment.
//!
//! Security: the file may hold secrets (incident receivers' secrets,
//! notification webhooks' secrets and Slack URLs, a database password), and a
//! local user who reads one can forge what it authenticates (a severity-1
//! incident that auto-approves a grant, say). So a file holding any of them is
//! refused when group or others may access it, every secret key has a
//! `*_file` twin naming a file that holds the value alone (refused alike when
//! its mode is loose, and refused together with the inline key), and no
//! secret is ever written back into the file.
//!
//! ```toml
//! [database]
//! # PostgreSQL for several servers over one database, e.g.
//! # "postgres://breakglass@db.internal/breakglass". Empty: SQLite in the data directory.
//! url = ""
//! # Or: a file holding the URL (when it has a password); relative paths are
//! # under the data directory. Every secret key below has such a *_file twin.
//! # url_file = "database-url"
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
//! # How long a client may take to send a request's headers (and, with TLS,
//! # its handshake), from when the server starts waiting for them.
//! header_read_timeout = "10s"
//! # A connection that moves no byte either way for this long is closed.
//! idle_timeout = "60s"
//! # Connections open at once; more are refused (plain HTTP: 503) until one closes.
//! max_connections = 1024
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
//! # PagerDuty v3 webhook signing secrets (X-PagerDuty-Signature). Each list
//! # has a *_file twin (e.g. pagerduty_secrets_file): a file of one secret a line.
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
//! # Or secret_file = "ops-bus.secret" (and url_file, for a URL that holds a token).
//! # Which events (all when empty): requested, approved, activated, extended,
//! # expiring_soon, expired, revoked, incident_resolved_ended, review_overdue,
//! # drift_detected, untagged_commits.
//! events = []
//!
//! # Slack incoming webhooks (the URL is the secret).
//! [[notify.slack]]
//! name = "sre-channel"
//! url = "https://hooks.slack.com/services/…"
//! # Or url_file = "slack-sre.url".
//! events = ["requested", "activated", "revoked", "incident_resolved_ended"]
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult, bad_input};

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
    /// Hosted forges (`[[forge]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forge: Vec<ForgeSection>,
}

/// `[[forge]]`: a hosted forge breakglass opens protected branches on.
/// Its credentials are only ever read from files (0600).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ForgeSection {
    /// Unique; principals' `accounts` name their account on it `<name>:<login>`.
    pub name: String,
    /// `github` (GitHub and GitHub Enterprise Server).
    pub kind: String,
    /// The REST API's base URL; for github, `https://api.github.com` by default.
    pub api_url: String,
    /// A GitHub App: its id, the installation's id, and its private key file.
    pub app_id: String,
    pub installation_id: u64,
    #[serde(skip_serializing_if = "is_unset")]
    pub private_key_file: PathBuf,
    /// Or a file holding a token.
    #[serde(skip_serializing_if = "is_unset")]
    pub token_file: PathBuf,
    /// A file of the push webhook's secrets, one a line (several while rotating).
    #[serde(skip_serializing_if = "is_unset")]
    pub webhook_secret_file: PathBuf,
    pub repo: Vec<ForgeRepoSection>,
}

/// `[[forge.repo]]`: one repository breakglass manages on the forge.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ForgeRepoSection {
    /// The repository's name in scopes (`git:<name>@<ref>`).
    pub name: String,
    /// `owner/repo` on the forge.
    pub forge_repo: String,
    /// The protected refs.
    pub protected: Vec<String>,
    /// `team` (the default): the team (`org/slug`) that is the bypass actor
    /// of the protected refs' ruleset; or `user`: each holder is a `User`
    /// bypass actor of it.
    pub mechanism: String,
    /// The team (`org/slug`), for the team mechanism.
    pub team: String,
}

impl ForgeSection {
    /// The forges, their credentials read from their files (relative paths
    /// under `root`).
    pub fn to_server(
        sections: &[ForgeSection],
        root: &Path,
    ) -> CliResult<Vec<breakglass_server::service::config::ForgeConfig>> {
        use breakglass_server::service::config::{ForgeAuth, ForgeConfig, ForgeKind, ForgeRepo, Mechanism};
        let mut out: Vec<ForgeConfig> = Vec::new();
        for (k, f) in sections.iter().enumerate() {
            let bad = |m: String| bad_input(format!("invalid forge {:?} ([[forge]] {k}): {m}", f.name));
            let valid_name = !f.name.is_empty() && f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !valid_name {
                return Err(bad("name must be letters, digits and '-' (it prefixes principals' accounts)".into()));
            }
            if out.iter().any(|x| x.name == f.name) {
                return Err(bad("the name is used by another forge".into()));
            }
            let kind = match f.kind.as_str() {
                "github" => ForgeKind::Github,
                "gitlab" => ForgeKind::Gitlab,
                other => {
                    return Err(bad(format!("kind {other:?} is not supported: expected \"github\" or \"gitlab\"")));
                }
            };
            let api_url = match (kind, f.api_url.is_empty()) {
                (ForgeKind::Github, true) => "https://api.github.com".to_owned(),
                (ForgeKind::Gitlab, true) => {
                    return Err(bad("a gitlab forge needs api_url (https://gitlab.example.com/api/v4)".into()));
                }
                _ => f.api_url.clone(),
            };
            if kind == ForgeKind::Gitlab && !is_unset(&f.private_key_file) {
                return Err(bad("a gitlab forge authenticates with token_file, not a GitHub App key".into()));
            }
            if !(api_url.starts_with("https://")
                || api_url.starts_with("http://127.0.0.1")
                || api_url.starts_with("http://localhost"))
            {
                return Err(bad(format!("api_url {api_url:?} must be https:// (plain http only on loopback)")));
            }
            let auth = match (is_unset(&f.private_key_file), is_unset(&f.token_file)) {
                (false, true) => {
                    if f.app_id.trim().is_empty() || f.installation_id == 0 {
                        return Err(
                            bad("a GitHub App needs app_id and installation_id beside private_key_file".into()),
                        );
                    }
                    let key = format!("forge {:?} private_key_file", f.name);
                    ForgeAuth::GithubApp {
                        app_id: f.app_id.trim().to_owned(),
                        installation_id: f.installation_id,
                        private_key_pem: read_secret(&key, &root.join(&f.private_key_file))?,
                    }
                }
                (true, false) => {
                    ForgeAuth::Token(read_secret(&format!("forge {:?} token_file", f.name), &root.join(&f.token_file))?)
                }
                _ => return Err(bad("set exactly one of private_key_file (a GitHub App) and token_file".into())),
            };
            let mut repos: Vec<ForgeRepo> = Vec::new();
            for r in &f.repo {
                let bad = |m: String| bad_input(format!("invalid forge {:?} repo {:?}: {m}", f.name, r.name));
                breakglass_core::scope::Scope::parse(&format!("git:{}@refs/heads/x", r.name))
                    .map_err(|_| bad("name is not a repository name as scopes write it".into()))?;
                if r.forge_repo.split('/').count() != 2 || r.forge_repo.split('/').any(str::is_empty) {
                    return Err(bad(format!("forge_repo {:?} must be owner/repo", r.forge_repo)));
                }
                if r.protected.is_empty() {
                    return Err(bad("protected must name at least one ref (refs/heads/main)".into()));
                }
                for p in &r.protected {
                    breakglass_core::scope::Scope::parse(&format!("git:{}@{p}", r.name))
                        .map_err(|e| bad(format!("protected ref {p:?}: {e}")))?;
                }
                let mechanism = match r.mechanism.as_str() {
                    // GitLab: a per-user allowed_to_push entry.
                    "" | "user" if kind == ForgeKind::Gitlab && r.team.is_empty() => Mechanism::User,
                    _ if kind == ForgeKind::Gitlab => {
                        return Err(
                            bad("on gitlab the mechanism is user (per-user push entries), with no team".into()),
                        );
                    }
                    "" | "team" => {
                        let Some((org, slug)) = r.team.split_once('/').filter(|(o, s)| !o.is_empty() && !s.is_empty())
                        else {
                            return Err(bad(format!("team {:?} must be org/team-slug", r.team)));
                        };
                        Mechanism::Team { org: org.into(), slug: slug.into() }
                    }
                    "user" if r.team.is_empty() => Mechanism::User,
                    "user" => return Err(bad("the user mechanism takes no team".into())),
                    other => return Err(bad(format!("mechanism {other:?} is not team or user"))),
                };
                if repos.iter().any(|x| x.name == r.name) {
                    return Err(bad("listed twice".into()));
                }
                repos.push(ForgeRepo {
                    name: r.name.clone(),
                    forge_repo: r.forge_repo.clone(),
                    protected: r.protected.clone(),
                    mechanism,
                });
            }
            let webhook_secrets = if is_unset(&f.webhook_secret_file) {
                Vec::new()
            } else {
                let key = format!("forge {:?} webhook_secret_file", f.name);
                let secrets = read_secret_list(&key, &root.join(&f.webhook_secret_file))?;
                if secrets.iter().any(|s| s.len() < 16) {
                    return Err(bad("every webhook secret must be at least 16 characters".into()));
                }
                secrets.into_iter().map(String::into_bytes).collect()
            };
            out.push(ForgeConfig { name: f.name.clone(), kind, api_url, auth, webhook_secrets, repos });
        }
        Ok(out)
    }
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
    pub fn to_server(&self) -> CliResult<breakglass_server::service::config::ReviewConfig> {
        let deadline_ms = breakglass_core::grant::parse_duration(&self.deadline)
            .map_err(|e| bad_input(format!("invalid review.deadline: {e}")))?;
        Ok(breakglass_server::service::config::ReviewConfig { deadline_ms })
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
    #[serde(skip_serializing_if = "is_unset")]
    pub pagerduty_secrets_file: PathBuf,
    #[serde(skip_serializing_if = "is_unset")]
    pub opsgenie_credentials_file: PathBuf,
    #[serde(skip_serializing_if = "is_unset")]
    pub alertmanager_tokens_file: PathBuf,
    #[serde(skip_serializing_if = "is_unset")]
    pub generic_secrets_file: PathBuf,
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
            pagerduty_secrets_file: PathBuf::new(),
            opsgenie_credentials_file: PathBuf::new(),
            alertmanager_tokens_file: PathBuf::new(),
            generic_secrets_file: PathBuf::new(),
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
    pub fn to_server(&self) -> CliResult<breakglass_server::service::config::IncidentConfig> {
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
        Ok(breakglass_server::service::config::IncidentConfig {
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
    /// A file holding the URL, instead of `url`.
    #[serde(skip_serializing_if = "is_unset")]
    pub url_file: PathBuf,
    /// Webhooks only: a file holding the secret, instead of `secret`.
    #[serde(skip_serializing_if = "is_unset")]
    pub secret_file: PathBuf,
    pub events: Vec<String>,
}

impl NotifySection {
    pub fn to_server(&self) -> CliResult<breakglass_server::service::config::NotifyConfig> {
        use breakglass_server::service::config::{Channel, NotifyConfig, Target};
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
                    if !c.secret.is_empty() || !is_unset(&c.secret_file) {
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
    pub fn to_server(&self) -> CliResult<breakglass_server::service::config::CiConfig> {
        use breakglass_server::service::config::{CiConfig, CiProject, OidcIssuer};
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
    pub header_read_timeout: String,
    pub idle_timeout: String,
    pub max_connections: usize,
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
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            max_connections: 1024,
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
        self.connection_limits()?;
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

    /// The listener's timeouts and connection limit, each value checked.
    pub fn connection_limits(&self) -> CliResult<breakglass_server::listen::ConnectionLimits> {
        let timeout = |key: &str, value: &str, most_ms: u64| -> CliResult<std::time::Duration> {
            let ms = duration_ms(value).map_err(|e| {
                bad_input(format!("invalid server.{key} {value:?}: {e} (or a number of ms, like 500ms)"))
            })?;
            if ms > most_ms {
                return Err(bad_input(format!("invalid server.{key} {value:?}: at most {}s", most_ms / 1000)));
            }
            Ok(std::time::Duration::from_millis(ms))
        };
        if self.max_connections == 0 || self.max_connections > 1 << 20 {
            return Err(bad_input(format!(
                "invalid server.max_connections {}: between 1 and 1048576",
                self.max_connections
            )));
        }
        Ok(breakglass_server::listen::ConnectionLimits {
            header_read_timeout: timeout("header_read_timeout", &self.header_read_timeout, 600_000)?,
            idle_timeout: timeout("idle_timeout", &self.idle_timeout, 3_600_000)?,
            max_connections: self.max_connections,
        })
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
    /// A file holding the URL, instead of `url`.
    #[serde(skip_serializing_if = "is_unset")]
    pub url_file: PathBuf,
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

/// Whether a path key is left out (empty).
fn is_unset(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

/// Whether a URL carries a password (in its user info, or as a `password=` parameter).
fn url_has_password(url: &str) -> bool {
    let userinfo = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => &url[scheme + 3..at],
        _ => "",
    };
    userinfo.contains(':') || url.split_once('?').is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("password=")))
}

/// A duration: a number of milliseconds (`500ms`), or as grant durations (`10s`, `1m`).
fn duration_ms(value: &str) -> Result<u64, String> {
    let v = value.trim();
    if let Some(n) = v.strip_suffix("ms")
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
    {
        return match n.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(ms),
            _ => Err("expected a positive number of milliseconds".into()),
        };
    }
    breakglass_core::grant::parse_duration(v).map(|ms| ms as u64)
}

/// The whole of a `*_file` secret (surrounding whitespace, such as the final
/// newline, removed), refused if group or others may read the file.
fn read_secret(key: &str, path: &Path) -> CliResult<String> {
    let text = crate::datadir::read_private(path, &format!("the secret of {key}"))
        .map_err(|e| CliError { message: format!("{key}: {}", e.message), ..e })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(bad_input(format!("{key}: {} is empty; it must hold the secret", path.display())));
    }
    Ok(value.to_owned())
}

/// A `*_file` list of secrets: one a line, blank lines skipped.
fn read_secret_list(key: &str, path: &Path) -> CliResult<Vec<String>> {
    let text = read_secret(key, path)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

fn set_twice(key: &str) -> CliError {
    bad_input(format!("{key} and {key}_file are both set (in the configuration file or the environment): set only one"))
}

impl Config {
    /// Reads the file if it exists (a missing file means defaults), then
    /// applies the environment, then reads the `*_file` secrets (relative paths
    /// are under `root`, the data directory). A file that holds secrets itself
    /// is refused when group or others may access it.
    pub fn load(path: &Path, root: &Path) -> CliResult<Config> {
        let mut config = match std::fs::File::open(path) {
            Ok(mut file) => {
                use std::io::Read as _;
                let cannot_read =
                    |e: std::io::Error| bad_input(format!("cannot read configuration file {}: {e}", path.display()));
                let meta = file.metadata().map_err(cannot_read)?;
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(cannot_read)?;
                let config: Config = toml::from_str(&text)
                    .map_err(|e| bad_input(format!("invalid configuration file {}: {e}", path.display())))?;
                let held = config.inline_secrets();
                if !held.is_empty() {
                    crate::datadir::check_private(path, &meta, &format!("secrets ({})", held.join(", ")))?;
                }
                // Whoever may write the file may add a secret of their own (an
                // incident receiver's, to forge incidents) or point the policy
                // elsewhere: refused whatever it holds now.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o022 != 0 {
                        return Err(bad_input(format!(
                            "configuration file {} is writable by group or others (mode {mode:04o}); refusing to \
                             use it (fix: chmod go-w {})",
                            path.display(),
                            crate::datadir::shell_word(path)
                        )));
                    }
                }
                config
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(bad_input(format!("cannot read configuration file {}: {e}", path.display()))),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.read_secret_files(root)?;
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

    /// The keys that hold a secret value themselves (not through a `*_file`).
    pub fn inline_secrets(&self) -> Vec<String> {
        let mut held = Vec::new();
        if url_has_password(&self.database.url) {
            held.push("database.url".to_owned());
        }
        let i = &self.incidents;
        for (key, list) in [
            ("incidents.pagerduty_secrets", &i.pagerduty_secrets),
            ("incidents.opsgenie_credentials", &i.opsgenie_credentials),
            ("incidents.alertmanager_tokens", &i.alertmanager_tokens),
            ("incidents.generic_secrets", &i.generic_secrets),
        ] {
            if !list.is_empty() {
                held.push(key.to_owned());
            }
        }
        for (kind, list) in [("webhook", &self.notify.webhook), ("slack", &self.notify.slack)] {
            for c in list {
                if !c.secret.is_empty() {
                    held.push(format!("notify.{kind} {:?} secret", c.name));
                }
                // A Slack incoming webhook's URL is its credential.
                if (kind == "slack" && !c.url.is_empty()) || url_has_password(&c.url) {
                    held.push(format!("notify.{kind} {:?} url", c.name));
                }
            }
        }
        held
    }

    /// Reads every `*_file` secret into its key, refusing a key set both ways.
    fn read_secret_files(&mut self, root: &Path) -> CliResult {
        let d = &mut self.database;
        if !is_unset(&d.url_file) {
            if !d.url.is_empty() {
                return Err(set_twice("database.url"));
            }
            d.url = read_secret("database.url_file", &root.join(&d.url_file))?;
        }
        let i = &mut self.incidents;
        for (key, list, file) in [
            ("incidents.pagerduty_secrets", &mut i.pagerduty_secrets, &i.pagerduty_secrets_file),
            ("incidents.opsgenie_credentials", &mut i.opsgenie_credentials, &i.opsgenie_credentials_file),
            ("incidents.alertmanager_tokens", &mut i.alertmanager_tokens, &i.alertmanager_tokens_file),
            ("incidents.generic_secrets", &mut i.generic_secrets, &i.generic_secrets_file),
        ] {
            if is_unset(file) {
                continue;
            }
            if !list.is_empty() {
                return Err(set_twice(key));
            }
            *list = read_secret_list(&format!("{key}_file"), &root.join(file))?;
        }
        for (kind, list) in [("webhook", &mut self.notify.webhook), ("slack", &mut self.notify.slack)] {
            for c in list {
                for (what, value, file) in [("url", &mut c.url, &c.url_file), ("secret", &mut c.secret, &c.secret_file)]
                {
                    if is_unset(file) {
                        continue;
                    }
                    let key = format!("notify.{kind} {:?} {what}", c.name);
                    if !value.is_empty() {
                        return Err(set_twice(&key));
                    }
                    *value = read_secret(&format!("{key}_file"), &root.join(file))?;
                }
            }
        }
        Ok(())
    }

    /// This configuration as `init` writes it: no secret value in it. A
    /// secret read from a `*_file` stays there (the key naming the file is
    /// kept); one from the environment stays there, with the channel it
    /// belongs to; the database URL is never written (it may hold a password).
    pub fn without_secrets(&self) -> Config {
        let mut c = self.clone();
        c.database.url.clear();
        let i = &mut c.incidents;
        for list in
            [&mut i.pagerduty_secrets, &mut i.opsgenie_credentials, &mut i.alertmanager_tokens, &mut i.generic_secrets]
        {
            list.clear();
        }
        for (slack, list) in [(false, &mut c.notify.webhook), (true, &mut c.notify.slack)] {
            list.retain_mut(|ch| {
                if !is_unset(&ch.secret_file) {
                    ch.secret.clear();
                }
                if !is_unset(&ch.url_file) {
                    ch.url.clear();
                }
                let holds_secret = !ch.secret.is_empty() || (slack && !ch.url.is_empty()) || url_has_password(&ch.url);
                !holds_secret
            });
        }
        c
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
            ("BREAKGLASS_SERVER_HEADER_READ_TIMEOUT", &mut s.header_read_timeout),
            ("BREAKGLASS_SERVER_IDLE_TIMEOUT", &mut s.idle_timeout),
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
            ("BREAKGLASS_DATABASE_URL_FILE", &mut self.database.url_file),
            ("BREAKGLASS_INCIDENTS_PAGERDUTY_SECRETS_FILE", &mut self.incidents.pagerduty_secrets_file),
            ("BREAKGLASS_INCIDENTS_OPSGENIE_CREDENTIALS_FILE", &mut self.incidents.opsgenie_credentials_file),
            ("BREAKGLASS_INCIDENTS_ALERTMANAGER_TOKENS_FILE", &mut self.incidents.alertmanager_tokens_file),
            ("BREAKGLASS_INCIDENTS_GENERIC_SECRETS_FILE", &mut self.incidents.generic_secrets_file),
        ] {
            if let Some(v) = get(var) {
                *field = PathBuf::from(v);
            }
        }
        for (var, field) in [
            ("BREAKGLASS_SERVER_MAX_BODY_BYTES", &mut self.server.max_body_bytes),
            ("BREAKGLASS_SERVER_MAX_CONNECTIONS", &mut self.server.max_connections),
        ] {
            if let Some(v) = get(var) {
                *field =
                    v.parse().map_err(|_| bad_input(format!("invalid {var} {v:?}: expected a positive integer")))?;
            }
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
    fn forges_are_checked_and_their_secrets_read_only_from_private_files() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("gh.token");
        std::fs::write(&token, "ghp_token_value\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let hooks = dir.path().join("gh.webhook");
        std::fs::write(&hooks, "a-webhook-secret-0123456789\nthe-next-secret-0123456789\n").unwrap();
        std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o600)).unwrap();
        let repo = "[[forge.repo]]\nname = \"payments/api\"\nforge_repo = \"acme/payments-api\"\nprotected = [\"refs/heads/main\"]\nteam = \"acme/bg\"\n";
        let load = |forge: &str| {
            let c: Config = toml::from_str(&format!("[[forge]]\n{forge}\n{repo}")).unwrap();
            ForgeSection::to_server(&c.forge, dir.path())
        };
        let f = load(
            "name = \"github\"\nkind = \"github\"\ntoken_file = \"gh.token\"\nwebhook_secret_file = \"gh.webhook\"",
        )
        .unwrap();
        assert_eq!(f[0].api_url, "https://api.github.com");
        assert_eq!(f[0].webhook_secrets.len(), 2, "rotation: every line is a secret");
        assert!(
            matches!(&f[0].auth, breakglass_server::service::config::ForgeAuth::Token(t) if t == "ghp_token_value")
        );
        assert!(!format!("{:?}", f[0]).contains("ghp_token_value"), "secrets never reach a debug print");
        assert!(!format!("{:?}", f[0]).contains("a-webhook-secret"), "nor do webhook secrets");
        // GitLab: an api_url of its own, a token, and per-user entries (no team).
        let e = load("name = \"gitlab\"\nkind = \"gitlab\"\ntoken_file = \"gh.token\"").unwrap_err().message;
        assert!(e.contains("needs api_url"), "{e}");
        let e = load("name = \"gitlab\"\nkind = \"gitlab\"\napi_url = \"https://gitlab.example.com/api/v4\"\ntoken_file = \"gh.token\"")
            .unwrap_err()
            .message;
        assert!(e.contains("on gitlab the mechanism is user"), "{e}");
        for (forge, says) in [
            ("name = \"github\"\nkind = \"gitea\"\ntoken_file = \"gh.token\"", "kind \"gitea\" is not supported"),
            ("name = \"git hub\"\nkind = \"github\"\ntoken_file = \"gh.token\"", "name must be"),
            ("name = \"github\"\nkind = \"github\"", "exactly one of private_key_file"),
            (
                "name = \"github\"\nkind = \"github\"\ntoken_file = \"gh.token\"\napi_url = \"http://github.example\"",
                "must be https://",
            ),
            (
                "name = \"github\"\nkind = \"github\"\nprivate_key_file = \"gh.token\"",
                "needs app_id and installation_id",
            ),
        ] {
            let e = load(forge).unwrap_err().message;
            assert!(e.contains(says), "{forge}: {e}");
        }
        // A token file others may read is refused, naming it.
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load("name = \"github\"\nkind = \"github\"\ntoken_file = \"gh.token\"").unwrap_err().message;
        assert!(e.contains("token_file") && e.contains("gh.token"), "{e}");
        // A repository without its team or protected refs is refused.
        let c: Config = toml::from_str(
            "[[forge]]\nname = \"github\"\nkind = \"github\"\n[[forge.repo]]\nname = \"payments/api\"\nforge_repo = \"acme/payments-api\"\nprotected = [\"refs/heads/main\"]\n",
        )
        .unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = c;
        c.forge[0].token_file = "gh.token".into();
        let e = ForgeSection::to_server(&c.forge, dir.path()).unwrap_err().message;
        assert!(e.contains("team \"\" must be org/team-slug"), "{e}");
        // The user mechanism needs no team, and takes none; other mechanisms are refused.
        c.forge[0].repo[0].mechanism = "user".into();
        let f = ForgeSection::to_server(&c.forge, dir.path()).unwrap();
        assert_eq!(f[0].repos[0].mechanism, breakglass_server::service::config::Mechanism::User);
        c.forge[0].repo[0].team = "acme/bg".into();
        let e = ForgeSection::to_server(&c.forge, dir.path()).unwrap_err().message;
        assert!(e.contains("takes no team"), "{e}");
        c.forge[0].repo[0].mechanism = "exempt".into();
        let e = ForgeSection::to_server(&c.forge, dir.path()).unwrap_err().message;
        assert!(e.contains("mechanism \"exempt\" is not team or user"), "{e}");
    }

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

    #[test]
    fn connection_limits_are_checked_and_come_from_the_environment() {
        let limits = ServerConfig::default().connection_limits().unwrap();
        assert_eq!(limits, breakglass_server::listen::ConnectionLimits::default());
        let mut c = Config::default();
        let env = |k: &str| match k {
            "BREAKGLASS_SERVER_HEADER_READ_TIMEOUT" => Some("200ms".to_owned()),
            "BREAKGLASS_SERVER_IDLE_TIMEOUT" => Some("2m".to_owned()),
            "BREAKGLASS_SERVER_MAX_CONNECTIONS" => Some("8".to_owned()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        let limits = c.server.connection_limits().unwrap();
        assert_eq!(limits.header_read_timeout, std::time::Duration::from_millis(200));
        assert_eq!((limits.idle_timeout.as_secs(), limits.max_connections), (120, 8));
        for (toml, needle) in [
            (
                "[server]
header_read_timeout = \"0ms\"",
                "server.header_read_timeout",
            ),
            (
                "[server]
header_read_timeout = \"forever\"",
                "server.header_read_timeout",
            ),
            (
                "[server]
header_read_timeout = \"11m\"",
                "at most 600s",
            ),
            (
                "[server]
idle_timeout = \"2h\"",
                "server.idle_timeout",
            ),
            (
                "[server]
max_connections = 0",
                "server.max_connections",
            ),
        ] {
            let c: Config = toml::from_str(toml).unwrap();
            let err = c.server.validate().unwrap_err();
            assert!(err.message.contains(needle), "{toml}: {}", err.message);
        }
    }

    #[cfg(unix)]
    #[test]
    fn every_secret_key_has_a_file_twin_read_at_load() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        write("db", "postgres://bg:pw@db.internal/bg\n");
        write("pd", "pd-old-secret-0123456789\n\npd-new-secret-0123456789\n");
        write("og", "GenieKey og-0123456789abcdef\n");
        write("am", "am-token-0123456789abcdef\n");
        write("gen", "generic-secret-0123456789\n");
        write("hook.url", "https://hooks.example.com/with-token\n");
        write("hook.secret", "webhook-secret-0123456789\n");
        write("slack.url", "https://hooks.slack.com/services/T/B/X\n");
        let mut c: Config = toml::from_str(
            "[database]\nurl_file = \"db\"\n[incidents]\npagerduty_secrets_file = \"pd\"\n\
             opsgenie_credentials_file = \"og\"\nalertmanager_tokens_file = \"am\"\n\
             [[notify.webhook]]\nname = \"ops\"\nurl_file = \"hook.url\"\nsecret_file = \"hook.secret\"\n\
             [[notify.slack]]\nname = \"sre\"\nurl_file = \"slack.url\"\n",
        )
        .unwrap();
        assert!(c.inline_secrets().is_empty(), "{:?}", c.inline_secrets());
        let gen_path = dir.path().join("gen");
        c.apply_env(|k| (k == "BREAKGLASS_INCIDENTS_GENERIC_SECRETS_FILE").then(|| gen_path.display().to_string()))
            .unwrap();
        c.read_secret_files(dir.path()).unwrap();
        assert_eq!(c.database.url, "postgres://bg:pw@db.internal/bg");
        assert_eq!(c.incidents.pagerduty_secrets, ["pd-old-secret-0123456789", "pd-new-secret-0123456789"]);
        assert_eq!(c.incidents.opsgenie_credentials, ["GenieKey og-0123456789abcdef"]);
        assert_eq!(c.incidents.alertmanager_tokens, ["am-token-0123456789abcdef"]);
        assert_eq!(c.incidents.generic_secrets, ["generic-secret-0123456789"]);
        assert_eq!(c.notify.webhook[0].url, "https://hooks.example.com/with-token");
        assert_eq!(c.notify.webhook[0].secret, "webhook-secret-0123456789");
        assert_eq!(c.notify.slack[0].url, "https://hooks.slack.com/services/T/B/X");
        c.incidents.to_server().unwrap();
        c.notify.to_server().unwrap();

        // What init would write keeps the file names and none of the values.
        let written = c.without_secrets().to_toml();
        for secret in
            ["pw@", "pd-old", "og-0123", "am-token", "generic-secret", "with-token", "webhook-secret", "T/B/X"]
        {
            assert!(!written.contains(secret), "{secret} in {written}");
        }
        let reread: Config = toml::from_str(&written).unwrap();
        assert_eq!(reread.notify.slack[0].url_file, PathBuf::from("slack.url"));
        assert!(reread.inline_secrets().is_empty());

        // Both forms of one secret are refused together.
        let mut c: Config = toml::from_str(
            "[[notify.webhook]]\nname = \"ops\"\nurl = \"https://x\"\nsecret = \"s\"\nsecret_file = \"hook.secret\"\n",
        )
        .unwrap();
        let err = c.read_secret_files(dir.path()).unwrap_err();
        assert!(err.message.contains("both set"), "{}", err.message);
        // A loose secret file is refused with the fix.
        std::fs::set_permissions(dir.path().join("gen"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut c = Config::default();
        c.incidents.generic_secrets_file = PathBuf::from("gen");
        let err = c.read_secret_files(dir.path()).unwrap_err();
        assert!(
            err.message.contains("incidents.generic_secrets_file") && err.message.contains("chmod 600"),
            "{}",
            err.message
        );
    }
}
