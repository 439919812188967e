//! GitHub: `X-Hub-Signature-256` over the raw body, `X-GitHub-Delivery` for
//! de-duplication, and the `push` event.

use super::auth::{self, Headers};
use super::read::{self, Obj};
use super::{AuthError, Delivery, Forge, ForgeActor, ForgePush, GITHUB_MAX_LISTED_COMMITS, ParseError};
use crate::push_input::is_zero;

pub(super) const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub(super) const LEGACY_SIGNATURE_HEADER: &str = "X-Hub-Signature";
pub(super) const EVENT_HEADER: &str = "X-GitHub-Event";
pub(super) const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

/// Authenticates a GitHub delivery: `X-Hub-Signature-256: sha256=<hex>` must
/// be the HMAC-SHA256 of `body` under one of `secrets`. Then reads
/// `X-GitHub-Event` and `X-GitHub-Delivery` (both required).
pub fn verify_github<S: AsRef<[u8]>>(headers: &Headers<'_>, body: &[u8], secrets: &[S]) -> Result<Delivery, AuthError> {
    let secrets = auth::usable(Forge::GitHub, secrets)?;
    let Some(value) = headers.get(SIGNATURE_HEADER)? else {
        if headers.has(LEGACY_SIGNATURE_HEADER) {
            return Err(AuthError::LegacySha1Only);
        }
        return Err(AuthError::MissingHeader(SIGNATURE_HEADER));
    };
    let Some(hex) = value.trim().strip_prefix("sha256=") else {
        return Err(AuthError::Malformed {
            header: SIGNATURE_HEADER,
            problem: "expected sha256=<64 hex digits>".into(),
        });
    };
    let signature = auth::hex_signature(SIGNATURE_HEADER, hex)?;
    if !auth::hmac_matches(&secrets, &[body], &[signature]) {
        return Err(AuthError::BadSignature { header: SIGNATURE_HEADER });
    }
    let event = auth::header_word(EVENT_HEADER, headers.require(EVENT_HEADER)?)?;
    let delivery_id = auth::header_word(DELIVERY_HEADER, headers.require(DELIVERY_HEADER)?)?;
    Ok(auth::delivery(Forge::GitHub, event, delivery_id, body))
}

/// The value of `X-Hub-Signature-256` for `body` under `secret`.
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(auth::hmac(secret, &[body])))
}

pub(super) fn parse(delivery: &Delivery, body: &[u8]) -> Result<ForgePush, ParseError> {
    let value = read::parse_json(Forge::GitHub, body)?;
    let root = Obj::root(Forge::GitHub, &value)?;
    let repo = root.obj_req("repository")?;
    let pusher = root.obj_req("pusher")?;
    let login = pusher.name_req("name")?;
    // `pusher` has no id; `sender` is the account that caused the event, the
    // pusher for a push, so its id is taken only when its login is the same.
    let id = match root.obj_opt("sender")? {
        Some(sender) => {
            let sender_login = sender.name_opt("login")?;
            let sender_id = sender.u64_opt("id")?;
            if sender_login.as_deref() == Some(login.as_str()) { sender_id } else { None }
        }
        None => None,
    };
    let before = root.oid_req("before")?;
    let after = root.oid_req("after")?;
    let created = root.bool_req("created")?;
    let deleted = root.bool_req("deleted")?;
    if created != is_zero(&before) {
        return Err(root.invalid("created", format!("is {created}, but before is {before}")));
    }
    if deleted != is_zero(&after) {
        return Err(root.invalid("deleted", format!("is {deleted}, but after is {after}")));
    }
    let commits = read::commits(&root)?;
    Ok(ForgePush {
        forge: Forge::GitHub,
        delivery_id: delivery.delivery_id().to_owned(),
        repository: repo.name_req("full_name")?,
        repository_id: repo.u64_req("id")?,
        ref_name: root.ref_req("ref")?,
        before,
        after,
        created,
        deleted,
        forced: Some(root.bool_req("forced")?),
        pusher: ForgeActor { login, id, email: read::email(&pusher, "email")? },
        commits_truncated: commits.len() >= GITHUB_MAX_LISTED_COMMITS,
        commits,
        total_commits: None,
    })
}
