//! Gitea and Forgejo: `X-Gitea-Signature` or `X-Forgejo-Signature` (hex
//! HMAC-SHA256 of the raw body, no prefix), the matching delivery and event
//! headers, and the `push` event.

use super::auth::{self, Headers};
use super::read::{self, Obj};
use super::{AuthError, Delivery, Forge, ForgeActor, ForgePush, GiteaFlavour, ParseError};
use crate::push_input::is_zero;

/// The headers one flavour reads: signature, event, delivery.
pub(super) fn header_names(flavour: GiteaFlavour) -> (&'static str, &'static str, &'static str) {
    match flavour {
        GiteaFlavour::Gitea => ("X-Gitea-Signature", "X-Gitea-Event", "X-Gitea-Delivery"),
        GiteaFlavour::Forgejo => ("X-Forgejo-Signature", "X-Forgejo-Event", "X-Forgejo-Delivery"),
    }
}

/// Authenticates a Gitea or Forgejo delivery: the flavour's own signature
/// header must be the hex HMAC-SHA256 of `body` under one of `secrets`;
/// then its event and delivery headers are read (both required). The
/// other flavour's headers, and the GitHub and Gogs names Gitea also sends,
/// are ignored.
pub fn verify_gitea<S: AsRef<[u8]>>(
    headers: &Headers<'_>,
    body: &[u8],
    secrets: &[S],
    flavour: GiteaFlavour,
) -> Result<Delivery, AuthError> {
    let forge = forge_of(flavour);
    let secrets = auth::usable(forge, secrets)?;
    let (sig_header, event_header, delivery_header) = header_names(flavour);
    let signature = auth::hex_signature(sig_header, headers.require(sig_header)?)?;
    if !auth::hmac_matches(&secrets, &[body], &[signature]) {
        return Err(AuthError::BadSignature { header: sig_header });
    }
    let event = auth::header_word(event_header, headers.require(event_header)?)?;
    let delivery_id = auth::header_word(delivery_header, headers.require(delivery_header)?)?;
    Ok(auth::delivery(forge, event, delivery_id, body))
}

/// The value of `X-Gitea-Signature` (or `X-Forgejo-Signature`) for `body`.
pub fn sign_gitea(secret: &[u8], body: &[u8]) -> String {
    hex::encode(auth::hmac(secret, &[body]))
}

fn forge_of(flavour: GiteaFlavour) -> Forge {
    match flavour {
        GiteaFlavour::Gitea => Forge::Gitea,
        GiteaFlavour::Forgejo => Forge::Forgejo,
    }
}

pub(super) fn parse(delivery: &Delivery, body: &[u8]) -> Result<ForgePush, ParseError> {
    let forge = delivery.forge();
    let value = read::parse_json(forge, body)?;
    let root = Obj::root(forge, &value)?;
    let repo = root.obj_req("repository")?;
    let pusher = root.obj_req("pusher")?;
    // `login` is the account name; older payloads also carry the same value
    // as `username`.
    let login = match pusher.name_opt("login")? {
        Some(login) => login,
        None => pusher.name_req("username")?,
    };
    let before = root.oid_req("before")?;
    let after = root.oid_req("after")?;
    let commits = read::commits(&root)?;
    let total = root.u64_opt("total_commits")?;
    Ok(ForgePush {
        forge,
        delivery_id: delivery.delivery_id().to_owned(),
        repository: repo.name_req("full_name")?,
        repository_id: repo.u64_req("id")?,
        ref_name: root.ref_req("ref")?,
        created: is_zero(&before),
        deleted: is_zero(&after),
        before,
        after,
        forced: None,
        pusher: ForgeActor { login, id: pusher.u64_opt("id")?, email: read::email(&pusher, "email")? },
        commits_truncated: total.is_some_and(|t| t > commits.len() as u64),
        commits,
        total_commits: total,
    })
}
