//! Push webhooks from hosted forges (GitHub, GitLab, Gitea and Forgejo):
//! authenticating a delivery and reading its `push` event into one shape,
//! [`ForgePush`], that the server records as evidence of what entered a
//! protected branch and whether each commit names a grant.
//!
//! Nothing here does IO or reads the clock: the server passes the raw body,
//! the request's headers ([`Headers`]) and, for GitLab's signed deliveries,
//! `now`. It calls a `verify_*` function first, which reads only headers and
//! the raw bytes, and gets a [`Delivery`]; only a [`Delivery`] can be parsed
//! ([`parse_push`]), so no byte of an unauthenticated body is interpreted.
//!
//! # Authentication
//!
//! | Forge | Function | What is checked |
//! |---|---|---|
//! | GitHub | [`verify_github`] | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` |
//! | GitLab, secret token | [`verify_gitlab`] with [`GitLabAuth::Token`] | `X-Gitlab-Token` equals a configured token |
//! | GitLab, signing token | [`verify_gitlab`] with [`GitLabAuth::Signing`] | `webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`, timestamp fresh |
//! | Gitea | [`verify_gitea`] with [`GiteaFlavour::Gitea`] | `X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>` |
//! | Forgejo | [`verify_gitea`] with [`GiteaFlavour::Forgejo`] | `X-Forgejo-Signature: <hex HMAC-SHA256(secret, body)>` |
//!
//! - Every configuration takes several secrets (or tokens): a delivery is
//!   accepted when it matches any of them, so a secret can be rotated without
//!   a window in which good deliveries are refused. Empty secrets are
//!   ignored; a configuration with nothing else is
//!   [`AuthError::NotConfigured`].
//! - HMACs are compared in constant time ([`hmac::digest::CtOutput`]), every
//!   configured secret against every presented signature; GitLab's static
//!   token is compared through its SHA-256 digest in constant time, so
//!   neither its length nor a prefix leaks.
//! - **GitHub**'s legacy `X-Hub-Signature` (HMAC-SHA1) is never checked: a
//!   delivery that carries only that header is refused with
//!   [`AuthError::LegacySha1Only`]. GitHub sends both headers whenever a
//!   secret is set, so this refuses only forgeries and very old servers.
//! - **GitLab**: the configuration names the scheme. With a signing token
//!   ([`GitLabAuth::Signing`], the [Standard Webhooks] scheme GitLab added
//!   behind the `webhook_signing_token` flag) the signature is required and
//!   `X-Gitlab-Token` is not looked at, so a delivery cannot fall back to the
//!   weaker scheme. The key may be configured as `whsec_<base64>` (the
//!   Standard Webhooks form: the bytes after the prefix, base64-decoded, are
//!   the HMAC key, see [`GitLabAuth::signing_key`]) or as raw bytes. The
//!   header may hold several space-separated signatures (`v1,<sig> v1,<sig>`);
//!   entries of other versions are skipped. The timestamp (whole Unix
//!   seconds, covered by the signature) must be within `max_age_ms` of `now`
//!   either way; the signature is checked first, so a forger learns only that
//!   the signature is bad. The static `X-Gitlab-Token` ([`GitLabAuth::Token`])
//!   binds nothing to the body and no time: serve the receiver over TLS only
//!   and prefer the signing token where the GitLab version has it.
//! - **Gitea and Forgejo** send the same HMAC under their own header names,
//!   and Gitea also sends GitHub's and Gogs's header names. The configuration
//!   says which server it is ([`GiteaFlavour`]) and only that server's own
//!   `X-Gitea-*` or `X-Forgejo-*` headers count: the others are ignored even
//!   when present, so that one receiver has exactly one header to check and
//!   one event name to read, and a delivery cannot choose which header is
//!   checked.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/
//!
//! # Replays and de-duplication
//!
//! [`Delivery::delivery_id`] is the forge's id of the delivery, the same on a
//! redelivery, and [`Delivery::body_sha256`] the hex SHA-256 of the raw body.
//! The caller records both and drops a delivery whose id, or whose body hash
//! for the same forge and repository, it has seen.
//!
//! | Forge | `delivery_id` from | Signed? |
//! |---|---|---|
//! | GitHub | `X-GitHub-Delivery` (a GUID) | no |
//! | GitLab, signing token | `webhook-id` (GitLab sends the `Idempotency-Key` value here) | yes |
//! | GitLab, secret token | `Idempotency-Key` (GitLab 17.4+), else `X-Gitlab-Event-UUID` | no |
//! | Gitea / Forgejo | `X-Gitea-Delivery` / `X-Forgejo-Delivery` | no |
//!
//! GitLab's `Idempotency-Key` stays the same across retries of one event,
//! which is what de-duplication needs; `X-Gitlab-Event-UUID` names the event
//! and is the fallback for servers older than 17.4. With a signing token the
//! id is covered by the signature (`webhook-id` is its first part), so it is
//! the one used. Where the id is not signed (GitHub, Gitea, Forgejo, GitLab
//! with a static token), whoever replays a captured body can send it with a
//! new id: the body hash is what catches that, and it cannot change without
//! breaking the signature. Neither GitHub's nor Gitea's signature covers a
//! time, so de-duplication is the only replay protection there.
//!
//! # The push event
//!
//! The event header decides: GitHub `X-GitHub-Event: push`, GitLab
//! `X-Gitlab-Event: Push Hook` (whose body must also say `"object_kind":
//! "push"`), Gitea `X-Gitea-Event: push`, Forgejo `X-Forgejo-Event: push`.
//! Any other event (GitHub `ping`, `repository_ruleset`, `membership`;
//! GitLab `Tag Push Hook`, `Merge Request Hook`, `System Hook`; …) is
//! [`ForgeEvent::Other`], not an error, and its body is not read.
//!
//! | [`ForgePush`] | GitHub | GitLab | Gitea / Forgejo |
//! |---|---|---|---|
//! | `repository` | `repository.full_name` | `project.path_with_namespace` | `repository.full_name` |
//! | `repository_id` | `repository.id` | `project_id` | `repository.id` |
//! | `ref_name`, `before`, `after` | `ref`, `before`, `after` | same | same |
//! | `created`, `deleted` | `created`, `deleted` | `before` / `after` all zeros | `before` / `after` all zeros |
//! | `forced` | `forced` | `None` | `None` |
//! | `pusher.login` | `pusher.name` | `user_username` | `pusher.login` (else `username`) |
//! | `pusher.id` | `sender.id` when `sender.login` is the pusher | `user_id` | `pusher.id` |
//! | `pusher.email` | `pusher.email` | `user_email` | `pusher.email` |
//! | `commits_truncated` | 2,048 commits listed (GitHub's cap) | `total_commits_count` > commits listed | `total_commits` > commits listed |
//!
//! GitLab and Gitea say nothing of force pushes: `forced` is `None` there and
//! the caller must decide ancestry itself (whether `before` is an ancestor of
//! `after`, through the forge's compare API). When `commits_truncated` is
//! set, the list is not every commit that entered the ref (GitLab lists only
//! the newest 20): the caller fetches the rest before it says that every
//! commit is tagged. GitLab sends no push hook at all for a push that
//! updates more than three branches (`push_event_hooks_limit`), so webhooks
//! never replace polling.
//!
//! Each commit's [`ForgeCommit::grant_tags`] are the values of its
//! `Break-Glass` trailers, read by the same rule as the Git hooks (git's own
//! trailer parsing; see [`grant_trailers`]).
//!
//! # Limits
//!
//! Bodies over [`MAX_BODY_BYTES`] are refused before parsing (GitHub sends
//! up to 25 MB; a bigger push is read from the API instead); JSON nesting is
//! bounded by `serde_json` (128 levels); an object that names a member twice,
//! at any depth, is refused ([`crate::json`]). At most [`MAX_COMMITS`]
//! commits and [`MAX_FILES`] paths per list. Ids, logins, names and e-mails
//! are bounded ([`MAX_NAME_CHARS`]) and may not hold control or invisible
//! format characters; object ids must be hex of git's lengths and the ref a
//! valid git ref name. A member of the wrong type is an error naming its
//! path (`commits[3].author.email`), never a default. Commit messages are
//! kept as sent (bounded by [`MAX_MESSAGE_BYTES`]): escape them before
//! display ([`crate::text::escape_multiline`]).

mod auth;
mod gitea;
mod github;
mod gitlab;
mod read;
mod trailer;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

pub use auth::Headers;
pub use gitea::{sign_gitea, verify_gitea};
pub use github::{sign_github, verify_github};
pub use gitlab::{sign_gitlab, verify_gitlab};
pub use trailer::{GRANT_TRAILER, grant_trailers};

/// The largest body read.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// The longest header value read.
pub const MAX_HEADER_BYTES: usize = 4096;
/// The most signatures one header may hold.
pub const MAX_SIGNATURES: usize = 16;
/// The most commits one push may list (GitHub's own cap).
pub const MAX_COMMITS: usize = 2048;
/// The most paths in one commit's `added`, `removed` or `modified` list
/// (GitHub lists at most 3,000 files per commit).
pub const MAX_FILES: usize = 3000;
/// The longest id, login, name, e-mail or repository name.
pub const MAX_NAME_CHARS: usize = 1024;
/// The longest file path.
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest commit message.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// GitHub lists at most this many commits in one push event.
pub const GITHUB_MAX_LISTED_COMMITS: usize = 2048;

/// Which forge sent a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forge {
    #[serde(rename = "github")]
    GitHub,
    #[serde(rename = "gitlab")]
    GitLab,
    Gitea,
    Forgejo,
}

impl Forge {
    pub const ALL: [Forge; 4] = [Forge::GitHub, Forge::GitLab, Forge::Gitea, Forge::Forgejo];

    /// `github`, `gitlab`, `gitea` or `forgejo` (also the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            Forge::GitHub => "GitHub",
            Forge::GitLab => "GitLab",
            Forge::Gitea => "Gitea",
            Forge::Forgejo => "Forgejo",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the two related servers a Gitea-style receiver trusts; only its
/// own headers count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiteaFlavour {
    /// `X-Gitea-Signature`, `X-Gitea-Event`, `X-Gitea-Delivery`.
    Gitea,
    /// `X-Forgejo-Signature`, `X-Forgejo-Event`, `X-Forgejo-Delivery`.
    Forgejo,
}

/// How a GitLab receiver authenticates deliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitLabAuth {
    /// The webhook's secret token, echoed in `X-Gitlab-Token`; any of these.
    Token(Vec<String>),
    /// The webhook's signing token (Standard Webhooks). `keys` are HMAC keys
    /// (see [`GitLabAuth::signing_key`] for the `whsec_` form); `max_age_ms`
    /// is how far `webhook-timestamp` may be from `now`, either way.
    Signing { keys: Vec<Vec<u8>>, max_age_ms: i64 },
}

impl GitLabAuth {
    /// The HMAC key of a configured signing token: the base64-decoded rest of
    /// a `whsec_<base64>` secret (the Standard Webhooks form), otherwise the
    /// secret's bytes as they are. A `whsec_` secret whose rest is not base64
    /// is an error, so that a typo is not silently taken as a raw key.
    pub fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        match secret.strip_prefix("whsec_") {
            Some(rest) => base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| "the signing secret starts with whsec_ but the rest is not base64".to_owned()),
            None => Ok(secret.as_bytes().to_vec()),
        }
    }
}

/// An authenticated delivery: what the `verify_*` functions return and the
/// only thing [`parse_push`] reads. It cannot be made outside this module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    forge: Forge,
    event: String,
    delivery_id: String,
    body_sha256: String,
    body_len: usize,
}

impl Delivery {
    pub fn forge(&self) -> Forge {
        self.forge
    }

    /// The event header's value (`push`, `Push Hook`, `ping`, …).
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The forge's id of this delivery, for de-duplication (see the module
    /// documentation for which header, and whether it is signed).
    pub fn delivery_id(&self) -> &str {
        &self.delivery_id
    }

    /// The hex SHA-256 of the raw body, for de-duplication that a changed
    /// delivery id cannot evade.
    pub fn body_sha256(&self) -> &str {
        &self.body_sha256
    }

    /// Whether the event header names a push.
    pub fn is_push(&self) -> bool {
        match self.forge {
            Forge::GitHub | Forge::Gitea | Forge::Forgejo => self.event == "push",
            Forge::GitLab => self.event == "Push Hook",
        }
    }
}

/// What an authenticated delivery says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ForgeEvent {
    Push(ForgePush),
    /// Any other event, named by its event header; the body was not read.
    Other {
        forge: Forge,
        event: String,
        delivery_id: String,
    },
}

/// One push, the same for every forge (see the module documentation for
/// where each field comes from).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgePush {
    pub forge: Forge,
    pub delivery_id: String,
    /// `owner/name` (GitLab: the project's `path_with_namespace`, which may
    /// have several groups).
    pub repository: String,
    pub repository_id: u64,
    /// The full ref name, `refs/heads/main`.
    pub ref_name: String,
    /// The ref's old value (all zeros when the push created it).
    pub before: String,
    /// The ref's new value (all zeros when the push deleted it).
    pub after: String,
    pub created: bool,
    pub deleted: bool,
    /// Whether the push was not a fast-forward: GitHub says; `None` where the
    /// forge does not (GitLab, Gitea, Forgejo), and the caller must decide
    /// whether `before` is an ancestor of `after`.
    pub forced: Option<bool>,
    pub pusher: ForgeActor,
    /// The commits the forge lists, in its order.
    pub commits: Vec<ForgeCommit>,
    /// The number of commits the forge says the push brought, where it says
    /// (`total_commits_count`, `total_commits`).
    pub total_commits: Option<u64>,
    /// `commits` may not be every commit the push brought.
    pub commits_truncated: bool,
}

impl ForgePush {
    /// The listed commits that carry no `Break-Glass: <grant_id>` trailer.
    pub fn commits_not_tagged_with(&self, grant_id: &str) -> Vec<&ForgeCommit> {
        self.commits.iter().filter(|c| !c.is_tagged_with(grant_id)).collect()
    }
}

/// Who pushed, as the forge names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeActor {
    /// The forge login (username).
    pub login: String,
    /// The forge's numeric user id, when the payload gives it.
    pub id: Option<u64>,
    /// The e-mail the forge shows, when it shows one (GitLab's `[REDACTED]`
    /// is `None`).
    pub email: Option<String>,
}

/// One commit of a push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeCommit {
    /// The commit's object id (hex).
    pub id: String,
    /// The whole commit message, as sent (escape it before display).
    pub message: String,
    /// The commit's time by its author's clock.
    pub timestamp: Option<Timestamp>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

impl ForgeCommit {
    /// The values of the message's `Break-Glass` trailers: the grant ids the
    /// commit is tagged with, by the Git hooks' rule ([`grant_trailers`]).
    pub fn grant_tags(&self) -> Vec<String> {
        grant_trailers(&self.message)
    }

    /// Whether the commit carries `Break-Glass: <grant_id>`.
    pub fn is_tagged_with(&self, grant_id: &str) -> bool {
        self.grant_tags().iter().any(|g| g == grant_id)
    }
}

/// Reads an authenticated delivery: [`ForgeEvent::Push`] for a push event,
/// [`ForgeEvent::Other`] (without reading the body) for any other.
pub fn parse_push(delivery: &Delivery, body: &[u8]) -> Result<ForgeEvent, ParseError> {
    if !delivery.is_push() {
        return Ok(ForgeEvent::Other {
            forge: delivery.forge,
            event: delivery.event.clone(),
            delivery_id: delivery.delivery_id.clone(),
        });
    }
    // The delivery was made from these bytes; another body is a caller's bug.
    if body.len() != delivery.body_len || read::sha256_hex(body) != delivery.body_sha256 {
        return Err(ParseError::NotTheVerifiedBody { forge: delivery.forge });
    }
    let push = match delivery.forge {
        Forge::GitHub => github::parse(delivery, body)?,
        Forge::GitLab => gitlab::parse(delivery, body)?,
        Forge::Gitea | Forge::Forgejo => gitea::parse(delivery, body)?,
    };
    Ok(ForgeEvent::Push(push))
}

/// Why a delivery was not authenticated. The server answers 401 with the
/// message, which never contains a secret, token or signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this {0} webhook receiver is not configured: no (non-empty) secret or token is set, so every delivery is refused"
    )]
    NotConfigured(&'static str),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("the {0} header appears more than once; which one counts would be ambiguous")]
    RepeatedHeader(&'static str),
    #[error("malformed {header} header: {problem}")]
    Malformed { header: &'static str, problem: String },
    #[error(
        "the delivery is signed only with the legacy X-Hub-Signature (HMAC-SHA1), which is not accepted; \
         GitHub sends X-Hub-Signature-256 whenever the webhook has a secret"
    )]
    LegacySha1Only,
    #[error(
        "the {header} header has no v1 signature (found versions: {found}); v1 (HMAC-SHA256) is the only one checked"
    )]
    NoSupportedSignature { header: &'static str, found: String },
    #[error(
        "the {header} signature does not match: the body was not signed with any configured secret, or was changed on the way"
    )]
    BadSignature { header: &'static str },
    #[error("the X-Gitlab-Token header does not match any configured token")]
    BadToken,
    #[error("this GitLab receiver requires the signing token (webhook-signature), and the delivery has none{hint}")]
    SignatureRequired { hint: &'static str },
    #[error("webhook-timestamp is {age_secs}s old, more than the {max_secs}s allowed (a stale or replayed delivery)")]
    Stale { age_secs: i64, max_secs: i64 },
    #[error(
        "webhook-timestamp is {ahead_secs}s in the future, more than the {max_secs}s allowed (check the sender's clock)"
    )]
    FromTheFuture { ahead_secs: i64, max_secs: i64 },
}

/// Why an authenticated push was not understood. The server answers 400 (or
/// 422) with the message, which names the field as a path
/// (`commits[2].author.email`) and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{} webhook body is {len} bytes, more than the {max}-byte limit", forge.display_name())]
    TooLarge { forge: Forge, len: usize, max: usize },
    #[error("{} webhook body is not valid JSON: {detail}", forge.display_name())]
    NotJson { forge: Forge, detail: String },
    #[error("{} webhook body has no {field}", forge.display_name())]
    MissingField { forge: Forge, field: String },
    #[error("{} webhook field {field} is invalid: {problem}", forge.display_name())]
    InvalidField { forge: Forge, field: String, problem: String },
    #[error("the {} body passed to parse_push is not the one that was verified", forge.display_name())]
    NotTheVerifiedBody { forge: Forge },
}

use crate::signed::echo;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forge_names_round_trip_through_serde() {
        for forge in Forge::ALL {
            assert_eq!(serde_json::to_string(&forge).unwrap(), format!("\"{}\"", forge.as_str()));
            assert_eq!(serde_json::from_str::<Forge>(&format!("\"{forge}\"")).unwrap(), forge);
        }
    }

    #[test]
    fn whsec_secrets_are_base64_and_others_raw() {
        assert_eq!(GitLabAuth::signing_key("whsec_c2VjcmV0").unwrap(), b"secret");
        assert_eq!(GitLabAuth::signing_key("plain-secret").unwrap(), b"plain-secret");
        let err = GitLabAuth::signing_key("whsec_not base64!").unwrap_err();
        assert!(!err.contains("not base64!"), "{err}");
    }
}
