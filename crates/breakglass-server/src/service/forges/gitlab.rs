//! GitLab's REST API (v4) for the per-user mechanism: a protected branch's
//! `allowed_to_push` gets one entry for the grant's holder (Premium), which
//! the grant's end removes by the entry's id (`_destroy`). Authenticated
//! with a token (`PRIVATE-TOKEN`).
//!
//! Security: the answers are checked for their documented shape; the token
//! goes only into its header; a removal is checked by reading the branch
//! back; the holder is matched by the immutable user id, never by name.

use std::time::Duration;

use breakglass_client::{ApiAnswer, ForgeHttp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ForgeError, ForgeUser};
use crate::service::kernel::config::{ForgeAuth, ForgeConfig, ForgeRepo, Mechanism};

pub(super) struct Gitlab {
    api: String,
    token: String,
    http: ForgeHttp,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    username: String,
}

#[derive(Clone, Deserialize)]
struct AccessLevel {
    id: u64,
    #[serde(default)]
    access_level: Option<u64>,
    #[serde(default)]
    user_id: Option<u64>,
    #[serde(default)]
    group_id: Option<u64>,
    #[serde(default)]
    deploy_key_id: Option<u64>,
}

#[derive(Deserialize)]
struct ProtectedBranch {
    name: String,
    push_access_levels: Vec<AccessLevel>,
    #[serde(default)]
    merge_access_levels: Vec<AccessLevel>,
    #[serde(default)]
    allow_force_push: bool,
    #[serde(default)]
    code_owner_approval_required: bool,
}

use super::segment;

fn decode<T: serde::de::DeserializeOwned>(what: &str, a: &ApiAnswer) -> Result<T, ForgeError> {
    serde_json::from_slice(&a.body).map_err(|e| ForgeError::Shape(format!("GitLab's answer is not {what}: {e}")))
}

fn refusal(doing: &str, a: &ApiAnswer) -> ForgeError {
    let message = serde_json::from_slice::<Value>(&a.body)
        .ok()
        .and_then(|v| v.get("message").or_else(|| v.get("error")).map(|m| m.to_string()))
        .unwrap_or_default();
    let message: String = message.chars().filter(|c| !c.is_control()).take(200).collect();
    let hint = match a.status {
        403 => " (the token needs Maintainer rights on the project)",
        422 => " (per-user push entries need GitLab Premium, and the user must be a member of the project)",
        _ => "",
    };
    ForgeError::Refused(format!("{doing}: GitLab answered {} {message}{hint}", a.status))
}

/// How long GitLab asks us to wait (429, or `Retry-After`).
fn rate_limited(a: &ApiAnswer) -> Option<i64> {
    if a.status != 429 {
        return None;
    }
    Some(a.header("retry-after").and_then(|v| v.trim().parse::<i64>().ok()).map_or(60_000, |s| s.clamp(0, 3600) * 1000))
}

impl Gitlab {
    pub(super) fn new(config: &ForgeConfig) -> Result<Gitlab, ForgeError> {
        let token = match &config.auth {
            ForgeAuth::Token(t) => t.clone(),
            ForgeAuth::GithubApp { .. } => {
                return Err(ForgeError::Setup("a GitLab forge authenticates with token_file".into()));
            }
        };
        let http = ForgeHttp::new(Duration::from_secs(10)).map_err(|e| ForgeError::Setup(e.to_string()))?;
        Ok(Gitlab { api: config.api_url.trim_end_matches('/').to_owned(), token, http })
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<ApiAnswer, ForgeError> {
        let headers = [("private-token", self.token.clone()), ("accept", "application/json".to_owned())];
        let url = format!("{}{path}", self.api);
        let answer = self
            .http
            .send(method, &url, &headers, body.map(|b| b.to_string()))
            .await
            .map_err(ForgeError::Unreachable)?;
        if let Some(wait) = rate_limited(&answer) {
            return Err(ForgeError::RateLimited { retry_after_ms: wait });
        }
        Ok(answer)
    }

    fn branch_path(repo: &ForgeRepo) -> Result<String, ForgeError> {
        let Some(branch) =
            repo.protected.iter().find_map(|p| p.strip_prefix("refs/heads/").filter(|b| !b.contains('*')))
        else {
            return Err(ForgeError::Setup(format!("{} names no protected branch (refs/heads/<name>)", repo.name)));
        };
        Ok(format!("/projects/{}/protected_branches/{}", segment(&repo.forge_repo), segment(branch)))
    }

    async fn branch(&self, repo: &ForgeRepo) -> Result<Option<ProtectedBranch>, ForgeError> {
        let answer = self.send("GET", &Self::branch_path(repo)?, None).await?;
        match answer.status {
            200 => Ok(Some(decode("a protected branch", &answer)?)),
            404 => Ok(None),
            _ => Err(refusal(&format!("reading the protected branch of {}", repo.forge_repo), &answer)),
        }
    }

    fn per_user(repo: &ForgeRepo) -> Result<(), ForgeError> {
        match repo.mechanism {
            Mechanism::User => Ok(()),
            Mechanism::Team { .. } => Err(ForgeError::Setup(format!(
                "{}: on GitLab the mechanism is user (a per-user allowed_to_push entry)",
                repo.name
            ))),
        }
    }

    pub(super) async fn user(&self, login: &str) -> Result<ForgeUser, ForgeError> {
        let answer = self.send("GET", &format!("/users?username={}", segment(login)), None).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("finding the account {login}"), &answer));
        }
        let users: Vec<User> = decode("a list of users", &answer)?;
        let u = users
            .into_iter()
            .find(|u| u.username.eq_ignore_ascii_case(login))
            .ok_or_else(|| ForgeError::Refused(format!("GitLab has no account {login:?}")))?;
        Ok(ForgeUser { login: u.username, id: u.id })
    }

    async fn user_by_id(&self, id: u64) -> Result<ForgeUser, ForgeError> {
        let answer = self.send("GET", &format!("/users/{id}"), None).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("reading the account with id {id}"), &answer));
        }
        let u: User = decode("a user", &answer)?;
        Ok(ForgeUser { login: u.username, id: u.id })
    }

    /// Adds a push entry for `user`; its id is what the removal destroys.
    pub(super) async fn grant(&self, repo: &ForgeRepo, user: &ForgeUser) -> Result<Value, ForgeError> {
        Self::per_user(repo)?;
        if let Some(existing) = self.entry_of(repo, user.id).await? {
            return Ok(json!({ "entry_id": existing, "user_id": user.id, "login": user.login }));
        }
        let body = json!({ "allowed_to_push": [{ "user_id": user.id }] });
        let answer = self.send("PATCH", &Self::branch_path(repo)?, Some(body)).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("letting {} push to {}", user.login, repo.forge_repo), &answer));
        }
        let branch: ProtectedBranch = decode("a protected branch", &answer)?;
        let Some(entry) = branch.push_access_levels.iter().find(|l| l.user_id == Some(user.id)) else {
            return Err(ForgeError::Refused(format!(
                "GitLab accepted the change but lists no push entry for {} on {}",
                user.login, branch.name
            )));
        };
        Ok(json!({ "entry_id": entry.id, "user_id": user.id, "login": user.login, "branch": branch.name }))
    }

    async fn entry_of(&self, repo: &ForgeRepo, user_id: u64) -> Result<Option<u64>, ForgeError> {
        let Some(branch) = self.branch(repo).await? else {
            return Err(ForgeError::Refused(format!("{}: the branch is not protected on GitLab", repo.forge_repo)));
        };
        Ok(branch.push_access_levels.iter().find(|l| l.user_id == Some(user_id)).map(|l| l.id))
    }

    /// Destroys `user`'s push entry (gone already counts as removed), checked.
    pub(super) async fn revoke(&self, repo: &ForgeRepo, user: &ForgeUser) -> Result<Value, ForgeError> {
        Self::per_user(repo)?;
        let Some(entry) = self.entry_of(repo, user.id).await? else {
            return Ok(json!({ "user_id": user.id, "login": user.login, "already_absent": true }));
        };
        let body = json!({ "allowed_to_push": [{ "id": entry, "_destroy": true }] });
        let answer = self.send("PATCH", &Self::branch_path(repo)?, Some(body)).await?;
        if answer.status != 200 {
            return Err(refusal(&format!("removing {}'s push entry on {}", user.login, repo.forge_repo), &answer));
        }
        if self.entry_of(repo, user.id).await?.is_some() {
            return Err(ForgeError::Refused(format!(
                "{} still has a push entry on {} after its removal",
                user.login, repo.forge_repo
            )));
        }
        Ok(json!({ "entry_id": entry, "user_id": user.id, "login": user.login }))
    }

    pub(super) async fn holders(&self, repo: &ForgeRepo) -> Result<Vec<ForgeUser>, ForgeError> {
        let Some(branch) = self.branch(repo).await? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for id in branch.push_access_levels.iter().filter_map(|l| l.user_id) {
            out.push(self.user_by_id(id).await?);
        }
        Ok(out)
    }

    /// The branch's protection, normalized, without the holders' entries.
    pub(super) async fn protection(&self, repo: &ForgeRepo) -> Result<Option<Value>, ForgeError> {
        let Some(b) = self.branch(repo).await? else { return Ok(None) };
        let levels = |l: &[AccessLevel]| {
            let mut v: Vec<Value> = l
                .iter()
                .filter(|a| a.user_id.is_none())
                .map(|a| json!({ "access_level": a.access_level, "group_id": a.group_id, "deploy_key_id": a.deploy_key_id }))
                .collect();
            v.sort_by_key(|x| x.to_string());
            v
        };
        Ok(Some(json!({
            "name": b.name,
            "push_access_levels": levels(&b.push_access_levels),
            "merge_access_levels": levels(&b.merge_access_levels),
            "allow_force_push": b.allow_force_push,
            "code_owner_approval_required": b.code_owner_approval_required,
        })))
    }

    /// GitLab: the branch must already be protected (breakglass adds only
    /// per-user entries to it).
    pub(super) async fn install(&self, repo: &ForgeRepo) -> Result<bool, ForgeError> {
        Self::per_user(repo)?;
        match self.branch(repo).await? {
            Some(_) => Ok(false),
            None => Err(ForgeError::Refused(format!(
                "{}: protect the branch on GitLab first (Settings → Repository → Protected branches), then install again",
                repo.forge_repo
            ))),
        }
    }
}
