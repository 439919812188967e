//! Every setting the service takes, in one place: the binary builds a
//! [`ServiceConfig`] from `breakglass.toml` and the environment and hands it
//! over; nothing under `service` reads a file of settings or the environment.
//! The server's secrets travel separately, in [`Keys`].

use std::path::PathBuf;
use std::time::Duration;

use breakglass_core::entry::SecretDigester;
use breakglass_core::incident::AlertmanagerOptions;
use breakglass_core::login::ChallengeKey;
use breakglass_core::notify::NotifyEvent;
use breakglass_core::token::TokenSigner;

/// Server settings the service needs.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The server's public URL: the `iss` of grant tokens and the origin of
    /// login challenges.
    pub issuer: String,
    pub policy_dir: PathBuf,
    pub principals_file: PathBuf,
    pub session_ttl_ms: i64,
    pub pending_ttl_ms: i64,
    pub challenge_ttl_ms: i64,
    /// The CI systems whose OIDC ID tokens are accepted, and their projects.
    pub ci: CiConfig,
    /// The incident receivers, and what incidents do to grants.
    pub incidents: IncidentConfig,
    /// Where notifications go.
    pub notify: NotifyConfig,
    /// Post-event reviews.
    pub review: ReviewConfig,
    /// Hosted forges whose protection breakglass opens for a grant's holder.
    pub forges: Vec<ForgeConfig>,
}

/// The server's secrets.
pub struct Keys {
    pub token_signer: TokenSigner,
    pub challenge_key: ChallengeKey,
    pub digester: SecretDigester,
}

// ---- CI ------------------------------------------------------------------

/// One accepted OIDC issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIssuer {
    /// A short name: the `<issuer>` of principals' `accounts` and of projects.
    pub name: String,
    /// The exact `iss` claim.
    pub issuer: String,
    /// The `aud` tokens must carry for breakglass.
    pub audience: String,
    /// Where the issuer's keys are.
    pub jwks_url: String,
    /// The claims that name the triggering person (the login, for display,
    /// and the account's immutable id, which maps it to a principal), the
    /// repository (name and immutable id) and the deployment environment.
    pub actor_claim: String,
    pub actor_id_claim: String,
    pub repository_claim: String,
    pub repository_id_claim: String,
    pub environment_claim: String,
}

impl OidcIssuer {
    /// GitHub Actions' issuer and claim names.
    pub fn github(audience: &str) -> OidcIssuer {
        let issuer = "https://token.actions.githubusercontent.com".to_owned();
        OidcIssuer {
            name: "github".into(),
            jwks_url: format!("{issuer}/.well-known/jwks"),
            issuer,
            audience: audience.into(),
            actor_claim: "actor".into(),
            actor_id_claim: "actor_id".into(),
            repository_claim: "repository".into(),
            repository_id_claim: "repository_id".into(),
            environment_claim: "environment".into(),
        }
    }

    /// A GitLab instance's issuer and claim names.
    pub fn gitlab(issuer: &str, audience: &str) -> OidcIssuer {
        let issuer = issuer.trim_end_matches('/').to_owned();
        OidcIssuer {
            name: "gitlab".into(),
            jwks_url: format!("{issuer}/oauth/discovery/keys"),
            issuer,
            audience: audience.into(),
            actor_claim: "user_login".into(),
            actor_id_claim: "user_id".into(),
            repository_claim: "project_path".into(),
            repository_id_claim: "project_id".into(),
            environment_claim: "environment".into(),
        }
    }
}

/// A pipeline project: which repository of which issuer it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiProject {
    /// The project in `pipeline:<project>/<stage>` scopes.
    pub project: String,
    /// The issuer's name.
    pub issuer: String,
    /// The repository's name claim value (`acme/payments-api`).
    pub repository: String,
    /// The repository's immutable id claim value (`123456`).
    pub repository_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiConfig {
    pub issuers: Vec<OidcIssuer>,
    pub projects: Vec<CiProject>,
    /// The longest ID-token lifetime accepted.
    pub max_token_lifetime: Duration,
}

// ---- incidents -------------------------------------------------------------

/// How the receivers authenticate, and what incidents do to grants.
#[derive(Clone, Debug)]
pub struct IncidentConfig {
    /// PagerDuty v3 webhook signing secrets (several while rotating).
    pub pagerduty_secrets: Vec<Vec<u8>>,
    /// Opsgenie: the credentials its outgoing webhook sends.
    pub opsgenie_credentials: Vec<String>,
    /// Alertmanager: bearer tokens.
    pub alertmanager_tokens: Vec<String>,
    pub alertmanager: AlertmanagerOptions,
    /// The generic signed form's HMAC secrets.
    pub generic_secrets: Vec<Vec<u8>>,
    /// Signed deliveries older (or newer) than this are refused as replays (ms).
    pub max_age_ms: i64,
    /// Only incidents on these services are recorded (all when empty).
    pub services: Vec<String>,
    /// Active grants tied to an incident end when it resolves, after the grace.
    pub end_grants_on_resolve: bool,
    pub resolve_grace_ms: i64,
    /// Whether a responder's display name may identify a principal (through
    /// an account `<source>:<name>` or the principal's own name). Off by
    /// default: anyone can name themselves anything at most providers.
    pub match_responder_names: bool,
}

impl Default for IncidentConfig {
    fn default() -> IncidentConfig {
        IncidentConfig {
            pagerduty_secrets: Vec::new(),
            opsgenie_credentials: Vec::new(),
            alertmanager_tokens: Vec::new(),
            alertmanager: AlertmanagerOptions::default(),
            generic_secrets: Vec::new(),
            max_age_ms: 10 * 60_000,
            services: Vec::new(),
            end_grants_on_resolve: true,
            resolve_grace_ms: 15 * 60_000,
            match_responder_names: false,
        }
    }
}

// ---- notifications ---------------------------------------------------------

/// Where notifications go.
#[derive(Clone, Debug, Default)]
pub struct NotifyConfig {
    pub channels: Vec<Channel>,
    /// How long before a grant's end "expiring soon" is sent (ms); 0: never.
    pub expiring_soon_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Channel {
    /// Unique; the outbox names the channel, not its URL or secret.
    pub name: String,
    pub target: Target,
    /// The events this channel gets; all when empty.
    pub events: Vec<NotifyEvent>,
}

impl Channel {
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

#[derive(Clone)]
pub enum Target {
    /// JSON, signed: `X-Breakglass-Signature: v1=<HMAC-SHA256 of "<timestamp>.<body>">`.
    Webhook { url: String, secret: Vec<u8> },
    /// A Slack incoming webhook.
    Slack { url: String },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Webhook { url, .. } => write!(f, "Webhook({}, secret: <redacted>)", redact_url(url)),
            Target::Slack { url } => write!(f, "Slack({})", redact_url(url)),
        }
    }
}

/// `scheme://host[:port]` of a URL: enough to say where, nothing of the path
/// (a Slack webhook's path is its secret).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<url>".into() };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}/…")
}

// ---- reviews ---------------------------------------------------------------

/// Review settings.
#[derive(Clone, Debug)]
pub struct ReviewConfig {
    /// How long after a grant ends its review is due (ms).
    pub deadline_ms: i64,
}

impl Default for ReviewConfig {
    fn default() -> ReviewConfig {
        ReviewConfig { deadline_ms: 72 * 3_600_000 }
    }
}

// ---- hosted forges ------------------------------------------------------------

/// A hosted forge (GitHub, GHES) breakglass opens protected branches on for
/// exactly a grant's holder, while the grant lasts.
#[derive(Clone)]
pub struct ForgeConfig {
    /// Unique; principals name their account on it as `<name>:<login>` or
    /// `<name>:id:<id>` in `accounts`.
    pub name: String,
    pub kind: ForgeKind,
    /// The REST API's base URL (`https://api.github.com`, or a GHES
    /// `https://HOST/api/v3`), without a trailing `/`.
    pub api_url: String,
    pub auth: ForgeAuth,
    /// The push webhook's secrets (several while rotating; none: no webhook).
    pub webhook_secrets: Vec<Vec<u8>>,
    /// The repositories breakglass manages on this forge.
    pub repos: Vec<ForgeRepo>,
}

impl std::fmt::Debug for ForgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("api_url", &self.api_url)
            .field("auth", &self.auth)
            .field("webhook_secrets", &format_args!("<{} redacted>", self.webhook_secrets.len()))
            .field("repos", &self.repos)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForgeKind {
    Github,
    /// GitLab (gitlab.com or self-managed), API v4.
    Gitlab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
        }
    }
}

/// How breakglass authenticates to a forge.
#[derive(Clone)]
pub enum ForgeAuth {
    /// A GitHub App installation: the server signs an RS256 app JWT with the
    /// key and exchanges it for installation tokens (an hour each).
    GithubApp { app_id: String, installation_id: u64, private_key_pem: String },
    /// A token with the permissions the mechanism needs.
    Token(String),
}

impl std::fmt::Debug for ForgeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForgeAuth::GithubApp { app_id, installation_id, .. } => {
                write!(f, "GithubApp(app {app_id}, installation {installation_id}, key: <redacted>)")
            }
            ForgeAuth::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// A repository on a forge, as breakglass's scopes name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeRepo {
    /// The repository in scopes: `git:<name>@<ref>`.
    pub name: String,
    /// `owner/repo` on the forge.
    pub forge_repo: String,
    /// The protected refs (`refs/heads/main`, `refs/heads/release/*`).
    pub protected: Vec<String>,
    pub mechanism: Mechanism,
}

/// What a bypass is on the forge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// Membership of a team that is the `always` bypass actor of the
    /// protected refs' ruleset: a grant adds its holder, its end removes them.
    Team { org: String, slug: String },
    /// The holder as a `User` bypass actor (`always`) of that ruleset, for
    /// repositories where teams do not fit. Each change is a read-modify-write
    /// of the ruleset (GitHub's PUT has no precondition), checked against the
    /// ruleset's history so a concurrent edit is noticed and kept.
    User,
}
