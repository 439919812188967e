//! GitLab: the static `X-Gitlab-Token` or the signing token (Standard
//! Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`), and
//! the `Push Hook` event.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::auth::{self, Headers, SIGNATURE_BYTES};
use super::read::{self, Obj};
use super::{AuthError, Delivery, Forge, ForgeActor, ForgePush, GitLabAuth, MAX_SIGNATURES, ParseError, echo};
use crate::push_input::is_zero;
use crate::time::Timestamp;

pub(super) const TOKEN_HEADER: &str = "X-Gitlab-Token";
pub(super) const EVENT_HEADER: &str = "X-Gitlab-Event";
pub(super) const EVENT_UUID_HEADER: &str = "X-Gitlab-Event-UUID";
pub(super) const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
pub(super) const ID_HEADER: &str = "webhook-id";
pub(super) const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub(super) const SIGNATURE_HEADER: &str = "webhook-signature";

/// The longest `webhook-timestamp` (seconds until the year 33658).
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// Authenticates a GitLab delivery by the configured scheme (see
/// [`GitLabAuth`]), then reads `X-Gitlab-Event` (required) and the delivery
/// id: `webhook-id` with a signing token; `Idempotency-Key`, else
/// `X-Gitlab-Event-UUID`, with a static token. `now` is used only for the
/// signing token's timestamp.
pub fn verify_gitlab(
    headers: &Headers<'_>,
    body: &[u8],
    config: &GitLabAuth,
    now: Timestamp,
) -> Result<Delivery, AuthError> {
    let delivery_id = match config {
        GitLabAuth::Token(tokens) => {
            let tokens = auth::usable(Forge::GitLab, tokens.as_slice())?;
            let Some(token) = headers.get(TOKEN_HEADER)? else {
                return Err(AuthError::MissingHeader(TOKEN_HEADER));
            };
            if !auth::token_matches(&tokens, token.as_bytes()) {
                return Err(AuthError::BadToken);
            }
            match headers.get(IDEMPOTENCY_HEADER)? {
                Some(id) => auth::header_word(IDEMPOTENCY_HEADER, id)?,
                None => auth::header_word(EVENT_UUID_HEADER, headers.require(EVENT_UUID_HEADER)?)?,
            }
        }
        GitLabAuth::Signing { keys, max_age_ms } => {
            let keys = auth::usable(Forge::GitLab, keys.as_slice())?;
            let Some(signature) = headers.get(SIGNATURE_HEADER)? else {
                let hint = if headers.has(TOKEN_HEADER) {
                    " (it has X-Gitlab-Token, which this receiver does not accept: set the webhook's signing token)"
                } else {
                    ""
                };
                return Err(AuthError::SignatureRequired { hint });
            };
            let id = headers.require(ID_HEADER)?;
            let raw_ts = headers.require(TIMESTAMP_HEADER)?;
            let secs = timestamp_secs(raw_ts)?;
            let signatures = signatures(signature)?;
            // The id and timestamp are signed as sent; `secs` came from the
            // same digits.
            let parts: [&[u8]; 5] = [id.as_bytes(), b".", raw_ts.as_bytes(), b".", body];
            if !auth::hmac_matches(&keys, &parts, &signatures) {
                return Err(AuthError::BadSignature { header: SIGNATURE_HEADER });
            }
            auth::within_window(secs, now, *max_age_ms)?;
            auth::header_word(ID_HEADER, id)?
        }
    };
    let event = auth::header_word(EVENT_HEADER, headers.require(EVENT_HEADER)?)?;
    Ok(auth::delivery(Forge::GitLab, event, delivery_id, body))
}

/// The value of `webhook-signature` for `body` with this id and timestamp
/// under `key` (the HMAC key, see [`GitLabAuth::signing_key`]).
pub fn sign_gitlab(key: &[u8], webhook_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let ts = timestamp_secs.to_string();
    let mac = auth::hmac(key, &[webhook_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", B64.encode(mac))
}

/// Whole Unix seconds, digits only (no sign, no spaces: the signed text must
/// be exactly what was read).
fn timestamp_secs(raw: &str) -> Result<i64, AuthError> {
    if raw.is_empty() || raw.len() > MAX_TIMESTAMP_DIGITS || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::Malformed {
            header: TIMESTAMP_HEADER,
            problem: format!("{:?}: expected whole Unix seconds, like 1764680400", echo(raw)),
        });
    }
    raw.parse().map_err(|_| AuthError::Malformed { header: TIMESTAMP_HEADER, problem: "number out of range".into() })
}

/// The v1 signatures of a `v1,<base64> [v1,<base64> …]` header. Entries of
/// other versions are skipped; a header without a v1 entry is refused.
fn signatures(value: &str) -> Result<Vec<[u8; SIGNATURE_BYTES]>, AuthError> {
    let malformed = |problem: String| AuthError::Malformed { header: SIGNATURE_HEADER, problem };
    let entries: Vec<&str> = value.split_ascii_whitespace().collect();
    if entries.is_empty() {
        return Err(malformed("empty; expected v1,<base64 HMAC-SHA256>".into()));
    }
    if entries.len() > MAX_SIGNATURES {
        return Err(malformed(format!("{} entries, more than the {MAX_SIGNATURES} accepted", entries.len())));
    }
    let mut v1 = Vec::new();
    let mut others = Vec::new();
    for (idx, entry) in entries.iter().enumerate() {
        let n = idx + 1;
        let Some((version, sig)) = entry.split_once(',') else {
            return Err(malformed(format!("entry {n} is not <version>,<signature>")));
        };
        if version != "v1" {
            others.push(format!("{:?}", echo(version)));
            continue;
        }
        let bytes = B64.decode(sig).ok().and_then(|b| <[u8; SIGNATURE_BYTES]>::try_from(b).ok());
        let Some(bytes) = bytes else {
            return Err(malformed(format!("entry {n} is not v1,<base64 of 32 bytes> (an HMAC-SHA256)")));
        };
        v1.push(bytes);
    }
    if v1.is_empty() {
        return Err(AuthError::NoSupportedSignature { header: SIGNATURE_HEADER, found: others.join(", ") });
    }
    Ok(v1)
}

pub(super) fn parse(delivery: &Delivery, body: &[u8]) -> Result<ForgePush, ParseError> {
    let value = read::parse_json(Forge::GitLab, body)?;
    let root = Obj::root(Forge::GitLab, &value)?;
    let kind = root.str_req("object_kind")?;
    if kind != "push" {
        return Err(
            root.invalid("object_kind", format!("is {:?}, but the X-Gitlab-Event header says Push Hook", echo(kind)))
        );
    }
    let project = root.obj_req("project")?;
    let project_id = root.u64_req("project_id")?;
    match project.u64_opt("id")? {
        Some(id) if id != project_id => {
            return Err(project.invalid("id", format!("is {id}, but project_id is {project_id}")));
        }
        _ => {}
    }
    let before = root.oid_req("before")?;
    let after = root.oid_req("after")?;
    let commits = read::commits(&root)?;
    let total = root.u64_opt("total_commits_count")?;
    Ok(ForgePush {
        forge: Forge::GitLab,
        delivery_id: delivery.delivery_id().to_owned(),
        repository: project.name_req("path_with_namespace")?,
        repository_id: project_id,
        ref_name: root.ref_req("ref")?,
        created: is_zero(&before),
        deleted: is_zero(&after),
        before,
        after,
        forced: None,
        pusher: ForgeActor {
            login: root.name_req("user_username")?,
            id: root.u64_opt("user_id")?,
            email: read::email(&root, "user_email")?,
        },
        commits_truncated: total.is_some_and(|t| t > commits.len() as u64),
        commits,
        total_commits: total,
    })
}
