//! Outgoing webhooks as GitHub sends them: a JSON body, `X-GitHub-Event`,
//! a fresh `X-GitHub-Delivery` GUID, `X-Hub-Signature-256: sha256=<hex
//! HMAC-SHA256(secret, body)>` and a `GitHub-Hookshot/...` user agent; and
//! the `push` payload in its documented shape.

use std::io;

use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::client::{self, HttpResponse};
use crate::world::{Repo, User, World, ZERO_SHA, rfc3339};

/// One commit of a push, for [`crate::PushSpec`].
#[derive(Debug, Clone, Default)]
pub struct PushCommit {
    pub id: String,
    pub message: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

/// What a delivery got back, and the delivery GUID it was sent with.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_id: String,
    pub response: HttpResponse,
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature_256(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A random version-4 GUID, as `X-GitHub-Delivery` carries.
pub(crate) fn guid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random bytes for a delivery id");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// POSTs `payload` to `url` as a GitHub webhook delivery of `event`.
pub async fn deliver(url: &str, event: &str, secret: &[u8], payload: &Value) -> io::Result<Delivery> {
    let body = serde_json::to_vec(payload).map_err(io::Error::other)?;
    let delivery_id = guid();
    let signature = signature_256(secret, &body);
    let headers = [
        ("User-Agent", "GitHub-Hookshot/breakglass-forgefake"),
        ("Accept", "*/*"),
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery_id.as_str()),
        ("X-GitHub-Hook-ID", "1"),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    let response = client::send("POST", url, &headers, Some(&body)).await?;
    Ok(Delivery { delivery_id, response })
}

fn fake_tree(commit: &str) -> String {
    hex::encode(Sha256::digest(commit.as_bytes()))[..40].to_owned()
}

/// The `push` event payload for a push of `commits` moving `git_ref` of
/// `repo` from `before` to `after`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_payload(
    world: &World,
    repo: &Repo,
    git_ref: &str,
    before: &str,
    after: &str,
    forced: bool,
    pusher: &User,
    commits: &[PushCommit],
) -> Value {
    let html = format!("{}/{}", world.base_url, repo.full_name());
    let now = rfc3339(world.now());
    let email = format!("{}+{}@users.noreply.github.com", pusher.id, pusher.login);
    let person = json!({"name": pusher.login, "email": email, "username": pusher.login});
    let commits: Vec<Value> = commits
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "tree_id": fake_tree(&c.id),
                "distinct": true,
                "message": c.message,
                "timestamp": now,
                "url": format!("{html}/commit/{}", c.id),
                "author": person,
                "committer": person,
                "added": c.added,
                "removed": c.removed,
                "modified": c.modified,
            })
        })
        .collect();
    let created = before == ZERO_SHA;
    let deleted = after == ZERO_SHA;
    let compare = if created {
        format!("{html}/commit/{after}")
    } else {
        format!("{html}/compare/{}...{}", &before[..before.len().min(12)], &after[..after.len().min(12)])
    };
    let mut owner = match world.user(&repo.owner) {
        Some(u) => world.simple_user(u),
        None => world.org_as_owner(),
    };
    if let Some(m) = owner.as_object_mut() {
        m.remove("user_view_type");
        let login = m.get("login").cloned().unwrap_or(Value::Null);
        m.insert("name".into(), login);
        m.insert("email".into(), Value::Null);
    }
    let mut sender = world.simple_user(pusher);
    if let Some(m) = sender.as_object_mut() {
        m.remove("user_view_type");
    }
    let mut out = json!({
        "ref": git_ref,
        "before": before,
        "after": after,
        "repository": {
            "id": repo.id,
            "node_id": format!("R_fake{}", repo.id),
            "name": repo.name,
            "full_name": repo.full_name(),
            "private": true,
            "owner": owner,
            "html_url": html,
            "description": null,
            "fork": false,
            "url": html,
            "created_at": 1_557_933_565,
            "updated_at": now,
            "pushed_at": world.now(),
            "git_url": format!("git://fake/{}.git", repo.full_name()),
            "ssh_url": format!("git@fake:{}.git", repo.full_name()),
            "clone_url": format!("{html}.git"),
            "default_branch": repo.default_branch,
            "master_branch": repo.default_branch,
            "is_template": false,
        },
        "pusher": {"name": pusher.login, "email": email},
        "sender": sender,
        "created": created,
        "deleted": deleted,
        "forced": forced,
        "base_ref": null,
        "compare": compare,
        "head_commit": commits.last().cloned().unwrap_or(Value::Null),
        "commits": commits,
    });
    if let Some(app) = &world.cfg.app
        && let Some(m) = out.as_object_mut()
    {
        m.insert(
            "installation".into(),
            json!({"id": app.installation_id, "node_id": format!("I_fake{}", app.installation_id)}),
        );
    }
    out
}
